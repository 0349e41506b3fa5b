/**
 * A fleet of reference controllers in one process (DESIGN §5.8): N controllers with their doors,
 * responders presenting tags at random doors on a schedule, and, for demos, a stand-in dispatcher
 * granting some of those tags. Used by `sp-sim`, by `npm start` until the gateway lands, and by
 * tests as a library.
 *
 * Lifecycle (STYLE.md): the constructor only stores; `start()` builds and connects the controllers
 * (at most `concurrency` connecting at once, so a 1,000-controller fleet does not stampede the
 * broker) and starts presenting; `quiesce()` stops presenting and waits for the backlog to drain;
 * `stop()` stops every controller gracefully (retained offline state, §5.3).
 */
import { join } from 'node:path';
import { ReferenceController } from '../controller/reference-controller.js';
import { FileStateStore, MemoryStateStore } from '../controller/state-store.js';
import { silentLogger, type Logger } from '../log.js';
import type { ProvisioningBundle } from '../schemas.js';
import { DemoDispatcher } from './demo-dispatcher.js';
import type { FleetSpec } from './fleet-file.js';

export interface GrantDemoOptions {
  /** Time between grant rounds; default 5 s. */
  intervalMs?: number;
  /** Grant lifetime; default 60 s. */
  grantMs?: number;
  /** Share of online controllers granted each round; default 0.5. */
  share?: number;
}

export interface FleetOptions {
  fleet: FleetSpec;
  /** Overrides every bundle's `mqtt.url` (bundles name the production broker; a demo may not). */
  url?: string;
  /** `memory` (default) or `file`: one state file per controller under `<dataDir>/state/`. */
  state?: 'memory' | 'file';
  /** Where `file` state lives. */
  dataDir?: string;
  /** Responders' tag uids, upper-case hex. */
  tags: readonly string[];
  /** Presentations per second across the fleet; 0 = none. */
  rate?: number;
  /** Controllers connecting at once; default 50. */
  concurrency?: number;
  /** Run the stand-in dispatcher (needs `fleet.gateway`). */
  grantDemo?: boolean | GrantDemoOptions;
  /** How long `start()` waits for one controller to come online before moving on; default 10 s. */
  connectTimeoutMs?: number;
  logger?: Logger;
  /** For the controllers' own logs (one line per controller at info); defaults to `logger`. */
  controllerLogger?: Logger;
  random?: () => number;
}

/** A snapshot of what the fleet did so far. */
export interface FleetStats {
  controllers: number;
  online: number;
  /** Syncs applied, summed over controllers. */
  applied: number;
  presentations: number;
  access: number;
  granted: number;
  denied: number;
  /** Events made (access, door, tamper, rejected) and acknowledged by the broker. */
  events: number;
  acked: number;
  /** Events made but not yet acknowledged, summed over controllers. */
  backlog: number;
  /** Messages the controllers dropped (§5.2, P-11). */
  rejected: number;
  /** Syncs the demo dispatcher sent; undefined without `grantDemo`. */
  demoSyncs: number | undefined;
  elapsedMs: number;
}

export class Fleet {
  readonly #o: FleetOptions;
  readonly #log: Logger;
  readonly #random: () => number;
  #controllers: ReferenceController[] = [];
  #dispatcher: DemoDispatcher | undefined;
  #presentTimer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  /** Syncs sent by dispatchers already stopped, so the figures survive stop(). */
  #demoSyncsBefore = 0;
  #stopping = new AbortController();
  #stopped: Promise<void> = Promise.resolve();
  #counts = { applied: 0, presentations: 0, granted: 0, denied: 0, events: 0, acked: 0, rejected: 0 };

  constructor(o: FleetOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.#random = o.random ?? Math.random;
  }

  /** The controllers (empty before `start()`). */
  get controllers(): readonly ReferenceController[] {
    return this.#controllers;
  }

  /**
   * Build and connect every controller, then start the demo dispatcher and the presentations.
   * Resolves when each controller is online or its connect timeout passed (it keeps retrying).
   */
  async start(): Promise<void> {
    if (this.#o.grantDemo && !this.#o.fleet.gateway) throw new TypeError('grantDemo needs the fleet gateway key');
    this.#startedAt = Date.now();
    this.#stopping = new AbortController();
    const signal = this.#stopping.signal;
    // One promise for every controller's wait, rather than a listener each on the signal.
    this.#stopped = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    const bundles = this.#o.fleet.controllers.map((b) => (this.#o.url ? { ...b, mqtt: { ...b.mqtt, url: this.#o.url } } : b));
    this.#controllers = bundles.map((b) => this.#build(b));
    const concurrency = Math.max(1, this.#o.concurrency ?? 50);
    this.#log.info('fleet connecting', { controllers: bundles.length, concurrency, state: this.#o.state ?? 'memory' });
    await pool(this.#controllers, concurrency, (c) => this.#startOne(c), this.#stopping.signal);
    if (this.#stopping.signal.aborted) return;
    const online = this.#controllers.filter((c) => c.connected).length;
    this.#log.info('fleet started', { online, controllers: this.#controllers.length });
    // One line for the lot: a thousand controllers waiting for a broker need not say so each.
    if (online < this.#controllers.length) {
      this.#log.warn('controllers not online yet; they keep retrying', { offline: this.#controllers.length - online });
    }
    if (this.#o.grantDemo && this.#o.fleet.gateway) {
      const demo = this.#o.grantDemo === true ? {} : this.#o.grantDemo;
      this.#dispatcher = new DemoDispatcher({
        url: this.#o.url ?? bundles[0]?.mqtt.url ?? 'mqtt://127.0.0.1:1883',
        gateway: this.#o.fleet.gateway,
        controllers: bundles,
        tags: this.#o.tags,
        logger: this.#log,
        random: this.#random,
        ...demo,
      });
      await this.#dispatcher.start();
    }
    this.#startPresenting();
  }

  /** Stop presenting and wait until every event made is acknowledged; false on timeout. */
  async quiesce(timeoutMs = 5_000): Promise<boolean> {
    this.#stopPresenting();
    const deadline = Date.now() + timeoutMs;
    while (this.#backlog() > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  /** Stop presenting, stop the dispatcher, stop every controller gracefully. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#stopPresenting();
    const dispatcher = this.#dispatcher;
    this.#dispatcher = undefined;
    this.#demoSyncsBefore += dispatcher?.syncsSent ?? 0;
    await dispatcher?.stop().catch((err: unknown) => this.#log.warn('demo dispatcher stop failed', { err: String(err) }));
    const concurrency = Math.max(1, this.#o.concurrency ?? 50);
    await pool(this.#controllers, concurrency, (c) => withTimeout(c.stop(), 5_000).catch((err: unknown) => {
      this.#log.warn('controller stop failed', { ctrl: c.id, err: String(err) });
    }));
    this.#log.info('fleet stopped', { controllers: this.#controllers.length });
  }

  stats(): FleetStats {
    const c = this.#counts;
    return {
      controllers: this.#o.fleet.controllers.length,
      online: this.#controllers.filter((x) => x.connected).length,
      applied: c.applied,
      presentations: c.presentations,
      access: c.granted + c.denied,
      granted: c.granted,
      denied: c.denied,
      events: c.events,
      acked: c.acked,
      backlog: this.#backlog(),
      rejected: c.rejected,
      demoSyncs: this.#o.grantDemo ? this.#demoSyncsBefore + (this.#dispatcher?.syncsSent ?? 0) : undefined,
      elapsedMs: this.#startedAt === 0 ? 0 : Date.now() - this.#startedAt,
    };
  }

  /** One responder at a random door of a random controller with a random tag. */
  presentOnce(): void {
    const c = this.#controllers[Math.floor(this.#random() * this.#controllers.length)];
    const doors = c?.doorStates() ?? [];
    const door = doors[Math.floor(this.#random() * doors.length)];
    const uid = this.#o.tags[Math.floor(this.#random() * this.#o.tags.length)];
    if (!c || !door || uid === undefined) return;
    this.#counts.presentations += 1;
    c.presentTag(door.ref, uid);
  }

  #build(bundle: ProvisioningBundle): ReferenceController {
    const store =
      this.#o.state === 'file'
        ? new FileStateStore(join(this.#o.dataDir ?? '.', 'state', `${bundle.controllerId}.state.json`))
        : new MemoryStateStore();
    const c = new ReferenceController({ bundle, store, logger: this.#o.controllerLogger ?? this.#log });
    const n = this.#counts;
    c.on('applied', () => (n.applied += 1));
    c.on('acked', () => (n.acked += 1));
    c.on('rejected', () => (n.rejected += 1));
    c.on('event', (body) => {
      n.events += 1;
      if (body.kind === 'access') {
        if (body.result === 'granted') n.granted += 1;
        else n.denied += 1;
      }
    });
    return c;
  }

  async #startOne(c: ReferenceController): Promise<void> {
    const connected = new Promise<void>((resolve) => c.once('connected', resolve));
    // Not waiting inside start(): a controller decides locally with no broker at all, and one
    // that cannot connect must not hold up the rest of the fleet.
    await c.start({ waitForConnection: false });
    const timedOut = await withTimeout(Promise.race([connected, this.#stopped]), this.#o.connectTimeoutMs ?? 10_000).then(
      () => false,
      () => true,
    );
    if (timedOut) this.#log.debug('controller not online yet; it keeps retrying', { ctrl: c.id });
  }

  #startPresenting(): void {
    const rate = this.#o.rate ?? 0;
    if (rate <= 0 || this.#o.tags.length === 0 || this.#presentTimer || this.#stopping.signal.aborted) return;
    // A fixed tick with a running remainder: steady on average at any rate, without one timer
    // per presentation. After a stall, at most one second's worth is made up.
    const tickMs = rate >= 20 ? 50 : 100;
    let due = 0;
    let last = Date.now();
    this.#presentTimer = setInterval(() => {
      const now = Date.now();
      due = Math.min(due + (rate * (now - last)) / 1000, Math.max(rate, 1));
      last = now;
      for (; due >= 1; due -= 1) this.presentOnce();
    }, tickMs);
  }

  #stopPresenting(): void {
    clearInterval(this.#presentTimer);
    this.#presentTimer = undefined;
  }

  #backlog(): number {
    let n = 0;
    for (const c of this.#controllers) n += c.backlogSize;
    return n;
  }
}

/** Run `fn` over `items` with at most `limit` in flight; stops taking new items once `signal` aborts. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !signal?.aborted) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
