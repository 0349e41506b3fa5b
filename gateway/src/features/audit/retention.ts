/**
 * Audit retention (issue 4): entries older than the retention period are archived, then trimmed.
 *
 * Export before trim: the prefix to remove (up to the newest checkpoint whose entries are all
 * older than the cut-off) is first written as a verifiable export into the archive directory,
 * flushed to disk and verified from the file; only then are the entries removed. A chain is cut
 * only at a checkpoint, so what remains verifies from that checkpoint (the export's start anchor).
 * One gateway at a time does it (a store lease).
 */
import { open, mkdir, rename, unlink } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AuditExportVerifier, jsonlLine, trustedKeys, type Logger, type SigningKey } from '@smart-passage/protocol';
import type { StorePort } from '../../store/port.js';
import { buildingOfChain, type AuditLog } from './audit-log.js';
import { exportLines } from './export.js';

export interface AuditRetentionOptions {
  store: StorePort;
  log: Pick<AuditLog, 'record' | 'checkpoint'>;
  key: SigningKey & { publicKey: string };
  /** Keep entries this long (ms); 0 keeps everything. */
  retentionMs: number;
  archiveDir: string;
  /** Lease owner: this gateway instance. */
  owner: string;
  logger: Logger;
  /** How often to look (default 1 h). */
  intervalMs?: number;
  now?: () => number;
}

export interface TrimResult {
  chain: string;
  fromSeq: number;
  toSeq: number;
  archive: string;
}

const LEASE = 'audit-retention';

export class AuditRetention {
  readonly #o: AuditRetentionOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(o: AuditRetentionOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  start(): void {
    if (this.#o.retentionMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.runOnce()
        .catch((err: unknown) => this.#o.logger.warn('audit retention failed', { err: err instanceof Error ? err.message : String(err) }))
        .finally(() => (this.#running = undefined));
    }, this.#o.intervalMs ?? 3_600_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** Archive and trim every chain once; returns what was trimmed. */
  async runOnce(): Promise<TrimResult[]> {
    const { store, owner } = this.#o;
    if (this.#o.retentionMs <= 0) return [];
    if (!(await store.acquireLease(LEASE, owner, 15 * 60_000))) return [];
    try {
      const done: TrimResult[] = [];
      for (const chain of await store.auditChains()) {
        const r = await this.#trimChain(chain);
        if (r) done.push(r);
      }
      return done;
    } finally {
      await store.releaseLease(LEASE, owner);
    }
  }

  async #trimChain(chain: string): Promise<TrimResult | undefined> {
    const { store } = this.#o;
    const cutoff = this.#now() - this.#o.retentionMs;
    const head = await store.auditHead(chain);
    if (head.size <= head.trimmed) return undefined;
    // The first entry to keep: the first at or after the cut-off (none: all are old).
    let keepFrom = head.size + 1;
    for (let after: Awaited<ReturnType<StorePort['auditQuery']>>['next']; ; ) {
      const page = await store.auditQuery({ chains: [chain], from: cutoff, limit: 1, ...(after ? { after } : {}) });
      if (page.items[0]) {
        keepFrom = page.items[0].seq;
        break;
      }
      if (!page.next) break;
      after = page.next;
    }
    const [cp] = await store.auditCheckpoints(chain, { maxSize: keepFrom - 1, order: 'desc', limit: 1 });
    if (!cp || cp.size <= head.trimmed) return undefined;

    const fromSeq = head.trimmed + 1;
    const dir = join(this.#o.archiveDir, chain.replace(/[^A-Za-z0-9._-]/g, '_'));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${String(fromSeq).padStart(12, '0')}-${String(cp.size).padStart(12, '0')}.jsonl`);
    await this.#writeArchive(file, chain, cp);
    await this.#verifyArchive(file);
    const removed = await store.auditTrim(chain, cp.size);
    await this.#o.log.record({
      type: 'audit.trimmed',
      actor: { kind: 'system' },
      buildingId: buildingOfChain(chain),
      data: { fromSeq, toSeq: cp.size, removed, archive: file },
    });
    this.#o.logger.info('audit entries archived and trimmed', { chain, fromSeq, toSeq: cp.size, archive: file });
    return { chain, fromSeq, toSeq: cp.size, archive: file };
  }

  async #writeArchive(file: string, chain: string, end: NonNullable<Awaited<ReturnType<StorePort['auditCheckpoints']>>[number]>): Promise<void> {
    const tmp = `${file}.partial`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      let buf = '';
      for await (const line of exportLines({ store: this.#o.store, checkpoint: (c) => this.#o.log.checkpoint(c), key: this.#o.key, now: this.#now }, { chains: [chain], ends: { [chain]: end } })) {
        buf += jsonlLine(line);
        if (buf.length > 1 << 20) {
          await fh.write(buf);
          buf = '';
        }
      }
      await fh.write(buf);
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    await rename(tmp, file);
  }

  /** The archive must verify before anything is removed. */
  async #verifyArchive(file: string): Promise<void> {
    const verifier = new AuditExportVerifier({ keys: trustedKeys([{ kid: this.#o.key.kid, publicKey: this.#o.key.publicKey }]) });
    let n = 0;
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const text of lines) {
      if (!verifier.push(JSON.parse(text) as unknown, ++n)) break;
    }
    const r = verifier.finish();
    if (!r.ok) throw new Error(`audit archive ${file} does not verify (${r.problem.code}: ${r.problem.message}); nothing trimmed`);
  }
}
