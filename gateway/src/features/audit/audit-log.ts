/**
 * The audit trail's writer (DESIGN §8): one hash chain per building plus the system chain,
 * appended through the store's compare-and-append, and signed checkpoints every N entries or T
 * seconds.
 *
 * Appends to one chain are queued in this process and sent in batches: each batch is hashed on the
 * head this process last saw, and the store writes it only if that is still the head. Another
 * process that appended first makes the store answer `moved`; we take the new head, re-hash and
 * try again. So any number of gateways can write one chain and it never forks, and one process
 * writing fast pays one store round trip per batch, not per entry.
 *
 * Constructor stores; start() arms the checkpoint timer; stop() drains the queues and signs a last
 * checkpoint of what this process wrote.
 */
import { EventEmitter } from 'node:events';
import {
  AUDIT_GENESIS,
  SYSTEM_CHAIN,
  auditHash,
  signAuditCheckpoint,
  type AuditActor,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditItem,
  type AuditType,
  type Logger,
  type SigningKey,
} from '@smart-passage/protocol';
import type { AuditHead, StorePort } from '../../store/port.js';

/** What a feature hands to `record`: the entry without its chain position. */
export interface AuditInput {
  type: AuditType;
  actor: AuditActor;
  buildingId?: string | undefined;
  incidentId?: string | undefined;
  grantId?: string | undefined;
  doorId?: string | undefined;
  unitId?: string | undefined;
  tagId?: string | undefined;
  controllerId?: string | undefined;
  reason?: string | undefined;
  data?: Record<string, unknown> | undefined;
  /** Makes the append idempotent: a second record with the same key returns the first entry. */
  dedupe?: string | undefined;
}

/** Where features send entries; AuditLog implements it, tests may pass a recorder. */
export interface AuditSink {
  record(input: AuditInput): Promise<AuditItem>;
}

export const SYSTEM_ACTOR: AuditActor = { kind: 'system' };

/** The chain an entry about `buildingId` belongs to. */
export function chainOf(buildingId: string | undefined): string {
  return buildingId === undefined ? SYSTEM_CHAIN : `building:${buildingId}`;
}

/** The building of a `building:<id>` chain. */
export function buildingOfChain(chain: string): string | undefined {
  return chain.startsWith('building:') ? chain.slice('building:'.length) : undefined;
}

export interface AuditLogOptions {
  store: StorePort;
  /** The audit key (never the MQTT signing key). */
  key: SigningKey;
  logger: Logger;
  /** Sign a checkpoint after this many entries of a chain (default 1000). */
  checkpointEvery?: number;
  /** …or after this long, when a chain moved since its last checkpoint (default 60 s). */
  checkpointMs?: number;
  /** Entries per store call (default 256). */
  maxBatch?: number;
  now?: () => number;
}

export interface AuditLogEvents {
  /** A new entry, in append order within its chain. Not emitted for a deduplicated record. */
  entry: [item: AuditItem];
  checkpoint: [cp: AuditCheckpoint];
}

interface Waiting {
  input: AuditInput;
  resolve: (item: AuditItem) => void;
  reject: (err: unknown) => void;
}


interface ChainState {
  head: AuditHead | undefined;
  queue: Waiting[];
  /** A drain is working on the queue; set and cleared synchronously, so no record is left behind. */
  active: boolean;
  running: Promise<void> | undefined;
  /** Size at this process's last known checkpoint of the chain. */
  checkpointed: number | undefined;
}

/**
 * Records with the same dedupe key in one batch (a redelivery arriving while the first copy is
 * queued) become one: the store refuses a batch that repeats a key, and both get the same entry.
 */
function mergeTwins(batch: Waiting[]): Waiting[] {
  const first = new Map<string, Waiting>();
  return batch.filter((w) => {
    const key = w.input.dedupe;
    if (key === undefined) return true;
    const f = first.get(key);
    if (!f) {
      first.set(key, w);
      return true;
    }
    const { resolve, reject } = f;
    f.resolve = (item) => {
      resolve(item);
      w.resolve(item);
    };
    f.reject = (err) => {
      reject(err);
      w.reject(err);
    };
    return false;
  });
}

/** After this many `moved` answers in a row, give up (the store is being written faster than we can follow). */
const MAX_MOVES = 1000;

export class AuditLog extends EventEmitter<AuditLogEvents> implements AuditSink {
  readonly #o: AuditLogOptions;
  readonly #now: () => number;
  readonly #chains = new Map<string, ChainState>();
  /** Chains this process appended to since their last checkpoint. */
  readonly #dirty = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #sweep: Promise<void> | undefined;

  constructor(o: AuditLogOptions) {
    super();
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  get publicKid(): string {
    return this.#o.key.kid;
  }

  start(): void {
    if (this.#timer) return;
    const ms = this.#o.checkpointMs ?? 60_000;
    // The first sweep also covers chains that moved before a crash and were never checkpointed.
    let first = true;
    this.#timer = setInterval(() => {
      if (this.#sweep) return;
      const all = first;
      first = false;
      this.#sweep = this.#checkpointSweep(all).finally(() => (this.#sweep = undefined));
    }, ms);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweep;
    await Promise.all([...this.#chains.values()].map((s) => s.running ?? Promise.resolve()));
    await this.#checkpointSweep(false);
  }

  /** Append one entry to its building's chain (or the system chain); resolves once it is stored. */
  record(input: AuditInput): Promise<AuditItem> {
    const chain = chainOf(input.buildingId);
    let state = this.#chains.get(chain);
    if (!state) {
      state = { head: undefined, queue: [], active: false, running: undefined, checkpointed: undefined };
      this.#chains.set(chain, state);
    }
    const s = state;
    return new Promise<AuditItem>((resolve, reject) => {
      s.queue.push({ input, resolve, reject });
      if (!s.active) {
        s.active = true;
        s.running = this.#drain(chain, s);
      }
    });
  }

  /**
   * Sign the chain's current head unless a checkpoint already covers it; returns the checkpoint
   * that covers the head now (undefined for an empty chain).
   */
  async checkpoint(chain: string): Promise<AuditCheckpoint | undefined> {
    const { store } = this.#o;
    const head = await store.auditHead(chain);
    if (head.size === 0) return undefined;
    const [last] = await store.auditCheckpoints(chain, { order: 'desc', limit: 1 });
    const state = this.#chains.get(chain);
    if (last && last.size >= head.size) {
      if (state) state.checkpointed = Math.max(state.checkpointed ?? 0, last.size);
      return last;
    }
    const cp = signAuditCheckpoint({ v: 1, chain, size: head.size, head: head.hash, at: this.#now() }, this.#o.key);
    await store.auditPutCheckpoint(cp);
    if (state) state.checkpointed = Math.max(state.checkpointed ?? 0, cp.size);
    this.emit('checkpoint', cp);
    return cp;
  }

  async #drain(chain: string, s: ChainState): Promise<void> {
    const max = this.#o.maxBatch ?? 256;
    for (;;) {
      // The look at the queue and the flag change happen in one tick: a record arriving after
      // this sees `active` false and starts a new drain, so none is left waiting.
      if (s.queue.length === 0) {
        s.active = false;
        return;
      }
      const batch = mergeTwins(s.queue.splice(0, max));
      try {
        await this.#appendBatch(chain, s, batch);
      } catch (err) {
        s.head = undefined; // unknown now: read it again next time
        for (const w of batch) w.reject(err);
      }
      try {
        await this.#maybeCheckpoint(chain, s);
      } catch (err) {
        this.#o.logger.warn('audit checkpoint failed', { chain, err: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  async #appendBatch(chain: string, s: ChainState, batch: Waiting[]): Promise<void> {
    const { store } = this.#o;
    let head = s.head ?? (await store.auditHead(chain));
    for (let moves = 0; batch.length > 0; ) {
      const items = this.#build(chain, head, batch.map((w) => w.input));
      const res = await store.auditAppend(
        chain,
        head,
        items.map((item, i) => ({ item, ...(batch[i]!.input.dedupe !== undefined ? { dedupe: batch[i]!.input.dedupe } : {}) })),
      );
      if (res.kind === 'ok') {
        const last = items[items.length - 1]!;
        s.head = { size: last.seq, hash: last.hash, at: last.at, trimmed: head.trimmed };
        this.#dirty.add(chain);
        items.forEach((item, i) => {
          const stored = { ...item, id: res.ids[i]! };
          batch[i]!.resolve(stored);
          this.emit('entry', stored);
        });
        return;
      }
      if (res.kind === 'moved') {
        if (++moves > MAX_MOVES) throw new Error(`audit chain ${chain}: gave up after ${MAX_MOVES} concurrent appends`);
        head = res.head;
        continue;
      }
      // An entry recorded before (a redelivered controller event): answer with the stored one.
      const [dup] = batch.splice(res.index, 1);
      const existing = await store.auditGet(res.id);
      if (existing) dup!.resolve(existing);
      else dup!.reject(new Error(`audit: deduplicated entry ${res.id} not found`));
    }
  }

  /** Chain the inputs on `head`: consecutive seqs, `at` never going back within the chain. */
  #build(chain: string, head: AuditHead, inputs: readonly AuditInput[]): AuditItem[] {
    let prev = head.size === 0 ? AUDIT_GENESIS : head.hash;
    let at = Math.max(this.#now(), head.at);
    return inputs.map((input, i) => {
      const entry: AuditEntry = { v: 1, chain, seq: head.size + i + 1, at, type: input.type, actor: input.actor };
      for (const f of ['buildingId', 'incidentId', 'grantId', 'doorId', 'unitId', 'tagId', 'controllerId', 'reason'] as const) {
        const v = input[f];
        if (v !== undefined) entry[f] = v;
      }
      if (input.data !== undefined) entry.data = input.data;
      const hash = auditHash(prev, entry);
      prev = hash;
      at = entry.at;
      return { ...entry, id: '', hash };
    });
  }

  async #maybeCheckpoint(chain: string, s: ChainState): Promise<void> {
    const every = this.#o.checkpointEvery ?? 1000;
    if (!s.head) return;
    if (s.checkpointed === undefined) {
      const [last] = await this.#o.store.auditCheckpoints(chain, { order: 'desc', limit: 1 }).catch(() => []);
      s.checkpointed = last?.size ?? 0;
    }
    if (s.head.size - s.checkpointed < every) return;
    await this.checkpoint(chain).then(
      () => this.#dirty.delete(chain),
      (err: unknown) => this.#o.logger.warn('audit checkpoint failed', { chain, err: err instanceof Error ? err.message : String(err) }),
    );
  }

  /** Checkpoint every chain this process moved (or, with `all`, every chain in the store). */
  async #checkpointSweep(all: boolean): Promise<void> {
    let chains: string[];
    try {
      chains = all ? await this.#o.store.auditChains() : [...this.#dirty];
    } catch (err) {
      this.#o.logger.warn('audit checkpoint sweep failed', { err: err instanceof Error ? err.message : String(err) });
      return;
    }
    for (const chain of chains) {
      this.#dirty.delete(chain);
      try {
        await this.checkpoint(chain);
      } catch (err) {
        this.#dirty.add(chain);
        this.#o.logger.warn('audit checkpoint failed', { chain, err: err instanceof Error ? err.message : String(err) });
      }
    }
  }
}
