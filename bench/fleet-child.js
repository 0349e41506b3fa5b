// A slice of the bench fleet in a process of its own (forked by bench/gateway-lib.js): reference
// controllers (protocol's ReferenceController, as its Fleet runs them) — real mqtt.js clients with
// TCP_NODELAY that verify every gateway signature — driven by commands over the IPC channel. Each
// command answers once: { id, ok, result } or { id, ok: false, error }.
//
// Not the protocol's Fleet itself: its controllers keep state in a MemoryStateStore, which
// structuredClones the whole state (unacknowledged events included) at every event and every
// acknowledgement. While the gateway lags, that costs the simulator O(backlog) per event, so the
// fleet process saturated before the gateway did and inflated every latency it reported. Here
// the state is kept by reference (nothing reads it but the controller itself).
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { hasNoDelay, ReferenceController } from '../protocol/dist/controller/index.js';

const epochMs = () => performance.timeOrigin + performance.now();

/** @type {ReferenceController[]} */
let controllers = [];
/** @type {string[]} */
let tags = [];
const counts = { applied: 0, presentations: 0, events: 0, acked: 0 };

/**
 * In-memory controller state without copies.
 * @implements {import('../protocol/dist/controller/index.js').ControllerStateStore}
 */
class SharedStateStore {
  /** @type {import('../protocol/dist/controller/index.js').PersistedState | undefined} */
  #state;
  load() {
    return this.#state;
  }
  /** @param {import('../protocol/dist/controller/index.js').PersistedState} state */
  save(state) {
    this.#state = state;
  }
}

const backlog = () => controllers.reduce((n, c) => n + c.backlogSize, 0);
const online = () => controllers.filter((c) => c.connected).length;
/** Per controller: when it last applied a set, and which version. */
const applied = new Map();
/**
 * A lost-tag watch: when each controller first applied a set without the uid.
 * @type {{ uid: string, since: number, gone: Map<string, number> }}
 */
let watch = { uid: '', since: 0, gone: new Map() };

/**
 * A command from the parent; each uses the fields it needs.
 * @typedef {{ id: number, cmd: string, bundlesFile: string, from: number, to: number, url: string, tags: string[], concurrency: number,
 *   timeoutMs: number, quietMs: number, version: number, uid: string, rate: number, seconds: number }} Command
 */

/** @param {import('../protocol/dist/controller/index.js').ReferenceController} c @param {string} uid */
const holds = (c, uid) => c.grants.some((g) => g.tags.includes(uid));

/** @type {Record<string, (m: Command) => Promise<unknown>>} */
const commands = {
  /** Load bundles [from, to) and connect them (at most `concurrency` connecting at once). */
  async start(m) {
    /** @type {unknown} */
    const parsed = JSON.parse(readFileSync(m.bundlesFile, 'utf8'));
    const bundles = /** @type {import('../protocol/dist/simulator/index.js').FleetSpec['controllers']} */ (parsed).slice(m.from, m.to);
    tags = m.tags;
    controllers = bundles.map((b) => new ReferenceController({ bundle: { ...b, mqtt: { ...b.mqtt, url: m.url } }, store: new SharedStateStore() }));
    for (const c of controllers) {
      c.on('acked', () => (counts.acked += 1));
      c.on('event', () => (counts.events += 1));
      c.on('applied', (version) => {
        counts.applied += 1;
        const at = epochMs();
        applied.set(c.id, { version, at });
        if (watch.uid !== '' && !watch.gone.has(c.id) && !holds(c, watch.uid)) watch.gone.set(c.id, at);
      });
    }
    // At most `concurrency` connecting at once, each until it has announced itself (as Fleet does).
    let next = 0;
    const worker = async () => {
      while (next < controllers.length) {
        const c = /** @type {ReferenceController} */ (controllers[next++]);
        const connected = new Promise((resolve) => c.once('connected', () => resolve(undefined)));
        await c.start({ waitForConnection: false });
        await Promise.race([connected, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(m.concurrency, controllers.length) }, worker));
    const noDelay = controllers.filter((c) => c.mqttClient !== undefined && hasNoDelay(c.mqttClient.stream)).length;
    return { online: online(), noDelay };
  },

  /** Resolve once no controller applied anything for `quietMs` (bounded by `timeoutMs`). */
  async settle(m) {
    const deadline = Date.now() + m.timeoutMs;
    let last = -1;
    let quietSince = Date.now();
    for (;;) {
      const n = counts.applied;
      if (n !== last) {
        last = n;
        quietSince = Date.now();
      }
      if (Date.now() - quietSince >= m.quietMs) return { applied: n, settled: true };
      if (Date.now() > deadline) return { applied: n, settled: false };
      await new Promise((r) => setTimeout(r, 50));
    }
  },

  /** How many controllers applied at least `version`. */
  async appliedAtLeast(m) {
    return Promise.resolve(controllers.filter((c) => c.appliedVersion >= m.version).length);
  },

  /** Start watching for sets without `uid`; controllers holding it now are the ones to reach. */
  async watchUid(m) {
    watch = { uid: m.uid, since: epochMs(), gone: new Map() };
    const holding = controllers.filter((c) => holds(c, m.uid)).length;
    return Promise.resolve({ holding });
  },

  /** Wait until no controller holds the watched uid: the time the last one applied a set without it. */
  async awaitUidGone(m) {
    const deadline = Date.now() + m.timeoutMs;
    for (;;) {
      const still = controllers.filter((c) => holds(c, watch.uid)).length;
      if (still === 0 || Date.now() > deadline) {
        const times = [...watch.gone.values()];
        return { still, reached: watch.gone.size, lastAt: times.length > 0 ? Math.max(...times) : NaN };
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  },

  /**
   * Present tags at `rate` per second for `seconds`, on a 10 ms tick with a running remainder, so
   * the rate holds on average without bursts of more than a tick's worth.
   */
  async present(m) {
    if (controllers.length === 0 || tags.length === 0) throw new Error('no controllers or no tags');
    const before = { ...counts };
    const t0 = Date.now();
    let made = 0;
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const elapsed = Date.now() - t0;
        const due = Math.floor((m.rate * Math.min(elapsed, m.seconds * 1000)) / 1000);
        for (; made < due; made++) {
          // A responder at a random door of a random controller, with a random tag (as Fleet.presentOnce).
          const c = /** @type {ReferenceController} */ (controllers[Math.floor(Math.random() * controllers.length)]);
          const doors = c.doorStates();
          const door = doors[Math.floor(Math.random() * doors.length)];
          if (door === undefined) continue;
          counts.presentations += 1;
          c.presentTag(door.ref, /** @type {string} */ (tags[Math.floor(Math.random() * tags.length)]));
        }
        if (elapsed >= m.seconds * 1000) {
          clearInterval(timer);
          resolve(undefined);
        }
      }, 10);
    });
    return { presentations: counts.presentations - before.presentations, events: counts.events - before.events, ms: Date.now() - t0 };
  },

  /** Wait until every event made is acknowledged (the gateway stored it), bounded. */
  async quiesce(m) {
    const deadline = Date.now() + m.timeoutMs;
    while (backlog() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return { drained: backlog() === 0, backlog: backlog(), ...counts };
  },

  async stats() {
    return Promise.resolve({ controllers: controllers.length, online: online(), backlog: backlog(), ...counts });
  },

  async stop() {
    // Gracefully (retained offline state), 100 at a time.
    for (let i = 0; i < controllers.length; i += 100) await Promise.all(controllers.slice(i, i + 100).map((c) => c.stop().catch(() => undefined)));
    controllers = [];
    return {};
  },
};

process.on('message', (/** @type {Command} */ m) => {
  const run = commands[m.cmd];
  if (!run) {
    process.send?.({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
    return;
  }
  run(m).then(
    (result) => process.send?.({ id: m.id, ok: true, result }),
    (/** @type {unknown} */ err) => process.send?.({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The parent ends us with SIGTERM after `stop`; an IPC channel that closes means the parent is gone.
process.on('disconnect', () => process.exit(0));
