#!/usr/bin/env node
// The gateway against its DESIGN §12 budgets (issue 7), on the embedded setup (aedes + SQLite in
// the gateway's process) and on Mosquitto + Redis, each figure beside a raw baseline measured in
// the same run:
//   1 time to door   1,000 controllers connected; 500 grants of a 5-door route over 3 controllers,
//                    sequential and 20 concurrent: POST → the gateway has every controller's
//                    applied reply (the grant's socket event with status active). p99 ≤ 3 × the
//                    raw QoS 1 pub→reply p99 through the same broker + 5 ms.
//   2 lost tag       10,000 controllers hold a grant of one unit; its tag is blocked: POST → every
//                    controller applied a set without it. ≤ 3 s.
//   3 ingest         5,000 access events/s for 60 s from the fleet, each audited and pushed to 50
//                    sockets: p99 event → socket ≤ 100 ms, zero lost, counted end to end.
//   4 memory, start  gateway RSS with 10,000 controllers ≤ 300 MB; start-up time to ready.
// The gateway is a child process (gateway/dist/main.js); the controllers are reference
// controllers in child processes of their own (bench/fleet-child.js). See bench/README.md.
//
// Run with `npm run bench` (builds first, runs every bench). `node bench/gateway.js --help` lists the options.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EmbeddedBroker } from '../gateway/dist/adapters/embedded-broker.js';
import { silentLogger } from '../protocol/dist/index.js';
import { errorText, machine, machineLine, markdownTable, nowMs, positiveInt, runMain } from './lib.js';
import { fanOut, mqttRoundTrips, startAedes, startMosquitto, summarise } from './mqtt-lib.js';
import { api, dropPrefix, endOnSignal, epochMs, FleetProcs, login, openSocket, seed, sleep, startGateway, startServices, sum, tempDir } from './gateway-lib.js';

const USAGE = `Usage: node bench/gateway.js [options]

  --quick              small sizes for a quick check (200 / 1,000 controllers, 50 grants,
                       500 events/s for 10 s to 10 sockets); explicit options below still win
  --setup S            embedded | mosquitto-redis | both (default both)
  --scenario LIST      which scenarios, e.g. 1,3 (default 1,2,3,4)
  --controllers N      controllers connected in scenarios 1 and 3 (default 1000)
  --grants N           grants per phase of scenario 1 (default 500)
  --concurrency N      grants in flight in its concurrent phase (default 20)
  --large N            controllers in scenarios 2 and 4 (default 10000)
  --rate R             access events per second in scenario 3 (default 5000)
  --seconds S          how long scenario 3 presents (default 60)
  --sockets N          socket.io clients in scenario 3 (default 50)
  --redis-url URL      the Redis of the mosquitto-redis setup (default redis://127.0.0.1:6379);
                       used under a key prefix of its own (sp-bench-gw-<random>:), deleted after
  --mosquitto-bin PATH Mosquitto for the private broker (default /usr/sbin/mosquitto)
  --mosquitto-inflight N  its max_inflight_messages (default Mosquitto's own, 20: QoS 1 messages
                       sent to a client and not yet acknowledged — the gateway's session included)
  --mosquitto-queue N  its max_queued_messages (default 0 = no limit; Mosquitto's own default,
                       1000, drops what the gateway's session falls further behind: see README)
  --cpu-prof DIR       run the gateways with --cpu-prof, profiles written to DIR
  --no-results         print the table only; do not rewrite bench/RESULTS.md
  --help               this text
`;

const here = path.dirname(fileURLToPath(import.meta.url));
const SECTION = '## Gateway scenarios (issue 7)';

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      setup: { type: 'string', default: 'both' },
      scenario: { type: 'string', default: '1,2,3,4' },
      controllers: { type: 'string' },
      grants: { type: 'string' },
      concurrency: { type: 'string', default: '20' },
      large: { type: 'string' },
      rate: { type: 'string' },
      seconds: { type: 'string' },
      sockets: { type: 'string' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      'mosquitto-bin': { type: 'string', default: '/usr/sbin/mosquitto' },
      'mosquitto-queue': { type: 'string' },
      'mosquitto-inflight': { type: 'string' },
      'cpu-prof': { type: 'string' },
      'no-results': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const q = values.quick;
  const int = (/** @type {string} */ name, /** @type {string | undefined} */ raw, /** @type {number} */ full, /** @type {number} */ quick, max = 100_000) => positiveInt(name, raw ?? String(q ? quick : full), max);
  const setups = values.setup === 'both' ? ['embedded', 'mosquitto-redis'] : [values.setup];
  if (!setups.every((s) => s === 'embedded' || s === 'mosquitto-redis')) throw new Error(`--setup must be embedded, mosquitto-redis or both, got ${values.setup}`);
  const scenarios = new Set(values.scenario.split(',').map((s) => Number(s.trim())));
  if (![...scenarios].every((s) => [1, 2, 3, 4].includes(s))) throw new Error(`--scenario takes numbers from 1 to 4, got ${values.scenario}`);
  return {
    quick: q,
    setups: /** @type {import('./gateway-lib.js').SetupName[]} */ (setups),
    scenarios,
    controllers: int('controllers', values.controllers, 1_000, 200),
    grants: int('grants', values.grants, 500, 50),
    concurrency: int('concurrency', values.concurrency, 20, 20, 1_000),
    large: int('large', values.large, 10_000, 1_000),
    rate: int('rate', values.rate, 5_000, 500),
    seconds: int('seconds', values.seconds, 60, 10, 3_600),
    sockets: int('sockets', values.sockets, 50, 10, 1_000),
    redisUrl: values['redis-url'],
    mosquittoBin: values['mosquitto-bin'],
    mosquittoQueue: values['mosquitto-queue'] === undefined ? undefined : positiveInt('mosquitto-queue', values['mosquitto-queue'], 10_000_000),
    mosquittoInflight: values['mosquitto-inflight'] === undefined ? undefined : positiveInt('mosquitto-inflight', values['mosquitto-inflight'], 65_535),
    cpuProf: values['cpu-prof'],
    writeResults: !values['no-results'],
    help: values.help,
  };
}

/** @typedef {ReturnType<typeof parseOptions>} Options */
/**
 * @typedef {{ setup: string, scenario: string, measure: string, n: string, ours: string, raw: string, ratio: string, budget: string, holds: string }} Row
 */

const ms = (/** @type {number} */ v) => (Number.isFinite(v) ? (v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)) : '—');
const ratio = (/** @type {number} */ a, /** @type {number} */ b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(1)}×` : '—');
const yes = (/** @type {boolean} */ ok) => (ok ? 'yes' : '**no**');
const grouped = (/** @type {number} */ n) => n.toLocaleString('en-US');

// ── Raw baselines ────────────────────────────────────────────────────────────────────────────

/**
 * The raw QoS 1 pub→reply round trip through the setup's broker, TCP_NODELAY on and off. On
 * Mosquitto + Redis: "on" through the very broker the gateway uses (the controllers are connected
 * to it meanwhile), "off" through a second private Mosquitto with set_tcp_nodelay false. Embedded:
 * the gateway's own broker refuses clients that are not its controllers, so "on" goes through the
 * same adapter (gateway/dist/adapters/embedded-broker.js, no auth hooks) in this process, "off"
 * through an aedes without noDelay.
 * @param {import('./gateway-lib.js').Services} services @param {Options} opts
 */
async function rawRoundTrips(services, opts) {
  const on = { count: 1_000, warmup: 500, maxMs: 10_000 };
  const off = { count: opts.quick ? 10 : 40, warmup: 5, maxMs: 10_000 };
  if (services.mqttUrl !== undefined) {
    const fast = await mqttRoundTrips(services.mqttUrl, true, on);
    const nagle = await startMosquitto(opts.mosquittoBin, false);
    try {
      return { on: fast, off: await mqttRoundTrips(nagle.url, false, off) };
    } finally {
      await nagle.stop();
    }
  }
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
  await broker.start();
  let fast;
  try {
    fast = await mqttRoundTrips(broker.url, true, on);
  } finally {
    await broker.stop();
  }
  const nagle = await startAedes(false);
  try {
    return { on: fast, off: await mqttRoundTrips(nagle.url, false, off) };
  } finally {
    await nagle.stop();
  }
}

/** The raw fan-out baseline through the setup's kind of broker (see rawRoundTrips for which). @param {import('./gateway-lib.js').Services} services @param {number} count */
async function rawFanOut(services, count) {
  if (services.mqttUrl !== undefined) return fanOut(services.mqttUrl, count);
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
  await broker.start();
  try {
    return await fanOut(broker.url, count);
  } finally {
    await broker.stop();
  }
}

// ── One gateway with its fleet ──────────────────────────────────────────────────────────────

/**
 * Seed, start the gateway, start the fleet; run `body`; take it all down again.
 * @template T
 * @param {import('./gateway-lib.js').Services} services @param {Options} opts
 * @param {{ controllers: number, lostTagGrants: boolean, label: string }} o
 * @param {(ctx: { gw: import('./gateway-lib.js').GatewayProcess, fleet: FleetProcs, seeded: import('./gateway-lib.js').Seeded, atReady: { rssMb: number, peakMb: number }, connectMs: number }) => Promise<T>} body
 * @returns {Promise<T>}
 */
async function withGateway(services, opts, o, body) {
  const tmp = await tempDir();
  const prefix = `sp-bench-gw-${randomBytes(4).toString('hex')}:`;
  /** @type {import('./gateway-lib.js').GatewayProcess | undefined} */
  let gw;
  const fleet = new FleetProcs();
  try {
    // The embedded broker's port is only known once the gateway runs: the fleet gets it as its URL.
    const seeded = await seed({ dataDir: tmp.dir, redisUrl: services.redisUrl, prefix, mqttUrl: services.mqttUrl ?? 'mqtt://127.0.0.1:1', controllers: o.controllers, lostTagGrants: o.lostTagGrants });
    log(`  seeded ${grouped(seeded.controllers)} controllers, ${grouped(seeded.buildings.length)} buildings, ${grouped(seeded.grants)} grants in ${seeded.seconds.toFixed(1)} s`);
    const nodeArgs = opts.cpuProf !== undefined ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProf, '--cpu-prof-name', `gateway-${services.name}-${o.label}-${Date.now()}.cpuprofile`] : [];
    gw = await startGateway({ services, dataDir: tmp.dir, prefix, nodeArgs });
    const atReady = gw.memory();
    log(`  gateway pid ${gw.pid}: ready in ${ms(gw.readyMs)} ms, started in ${ms(gw.startedMs)} ms, RSS ${atReady.rssMb.toFixed(0)} MB`);
    const procs = Math.max(1, Math.ceil(o.controllers / 5_000));
    const started = await fleet.start({ bundlesFile: seeded.bundlesFile, controllers: seeded.controllers, url: gw.mqttUrl, procs, tags: presentTags(seeded) });
    log(`  fleet: ${started.online}/${seeded.controllers} online in ${ms(started.connectMs)} ms (${procs} process${procs > 1 ? 'es' : ''}), TCP_NODELAY on ${started.noDelay}`);
    if (started.noDelay !== started.online) throw new Error(`TCP_NODELAY is off on ${started.online - started.noDelay} controller sockets`);
    return await body({ gw, fleet, seeded, atReady, connectMs: started.connectMs });
  } finally {
    await fleet.stop();
    if (gw) {
      const errors = gw.stderr().split('\n').filter((l) => /"level":"(error)"|\berror\b/i.test(l));
      await gw.stop();
      if (errors.length > 0) log(`  gateway logged ${errors.length} error lines, e.g. ${errors[0]?.slice(0, 300) ?? ''}`);
    }
    if (services.redisUrl !== undefined) await dropPrefix(services.redisUrl, prefix);
    await tmp.remove();
  }
}

/** Tags the ingest presents: the units without grants, so each presentation is one `denied` event. @param {import('./gateway-lib.js').Seeded} s */
const presentTags = (s) => s.units.slice(1, -1).map((u) => u.uid);

/** @param {string} line */
function log(line) {
  process.stderr.write(`${line}\n`);
}

// ── Scenario 1: time to door ────────────────────────────────────────────────────────────────

/**
 * @param {import('./gateway-lib.js').GatewayProcess} gw @param {FleetProcs} fleet @param {import('./gateway-lib.js').Seeded} seeded
 * @param {Options} opts @param {{ on: ReturnType<typeof summarise>, off: ReturnType<typeof summarise> }} raw @param {string} setup
 * @returns {Promise<Row[]>}
 */
async function timeToDoor(gw, fleet, seeded, opts, raw, setup) {
  const token = await login(gw.url);
  const socket = await openSocket(gw.url, token);
  /** @type {Map<string, number>} */
  const activeAt = new Map();
  /** @type {Map<string, (t: number) => void>} */
  const waiting = new Map();
  // "Applied" = the gateway has every controller's applied reply: the grant turns active, and the
  // gateway pushes it to dispatch sockets. One socket listening costs the gateway one emit a change.
  socket.on('grant', (/** @type {{ id: string, status: string }} */ g) => {
    if (g.status !== 'active' || activeAt.has(g.id)) return;
    const t = nowMs();
    activeAt.set(g.id, t);
    waiting.get(g.id)?.(t);
  });
  const full = seeded.buildings.filter((b) => b.controllers.length === 3);
  let next = 0;
  const grantOnce = async (/** @type {string} */ incident) => {
    const b = full[next++ % full.length];
    if (!b) throw new Error('no building with 3 controllers');
    const t0 = nowMs();
    const r = /** @type {{ grant: { id: string } }} */ (await api(gw.url, 'POST', `/api/v1/incidents/${incident}/grants`, { token, body: { buildingId: b.id, doorIds: b.doors, unitIds: [seeded.units[0]?.id], minutes: 60 } }));
    const id = r.grant.id;
    const t1 =
      activeAt.get(id) ??
      (await /** @type {Promise<number>} */ (
        new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`grant ${id} not active within 30 s`)), 30_000);
        waiting.set(id, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      })
      ));
    waiting.delete(id);
    return t1 - t0;
  };
  const incident = async (/** @type {string} */ kind) => /** @type {{ id: string }} */ (await api(gw.url, 'POST', '/api/v1/incidents', { token, body: { kind, location: { lat: 59.3, lng: 18.07 } } })).id;
  const close = async (/** @type {string} */ id) => {
    await api(gw.url, 'POST', `/api/v1/incidents/${id}/close`, { token });
    await fleet.all('settle', () => ({ quietMs: 500, timeoutMs: 60_000 }));
  };
  /** @type {Row[]} */
  const rows = [];
  try {
    // Warm-up (JIT, connections, statement caches), untimed.
    const warm = await incident('bench warm-up');
    for (let i = 0; i < 20; i++) await grantOnce(warm);
    await close(warm);

    const budget = 3 * raw.on.p99 + 5;
    const row = (/** @type {string} */ measure, /** @type {ReturnType<typeof summarise>} */ s) => ({
      setup,
      scenario: '1 time to door',
      measure,
      n: String(s.n),
      ours: `p50 ${ms(s.p50)} / p99 ${ms(s.p99)} ms`,
      raw: `p99 ${ms(raw.on.p99)} ms`,
      ratio: ratio(s.p99, raw.on.p99),
      budget: `p99 ≤ 3 × raw + 5 = ${ms(budget)} ms`,
      holds: yes(s.p99 <= budget),
    });
    const seq = await incident('bench sequential');
    /** @type {number[]} */
    const sequential = [];
    for (let i = 0; i < opts.grants; i++) sequential.push(await grantOnce(seq));
    await close(seq);
    rows.push(row('grant → all 3 applied, sequential', summarise(sequential)));
    log(`  sequential: ${rows.at(-1)?.ours ?? ''}`);

    const conc = await incident('bench concurrent');
    /** @type {number[]} */
    const concurrent = [];
    let left = opts.grants;
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (left > 0) {
          left -= 1;
          concurrent.push(await grantOnce(conc));
        }
      }),
    );
    await close(conc);
    rows.push(row(`grant → all 3 applied, ${opts.concurrency} concurrent`, summarise(concurrent)));
    log(`  concurrent: ${rows.at(-1)?.ours ?? ''}`);
    return rows;
  } finally {
    socket.close();
  }
}

// ── Scenario 3: ingest ──────────────────────────────────────────────────────────────────────

/**
 * @param {import('./gateway-lib.js').GatewayProcess} gw @param {FleetProcs} fleet @param {Options} opts
 * @param {{ on: ReturnType<typeof summarise> }} raw @param {string} setup
 * @returns {Promise<Row[]>}
 */
async function ingest(gw, fleet, opts, raw, setup) {
  const token = await login(gw.url);
  const sockets = await Promise.all(Array.from({ length: opts.sockets }, () => openSocket(gw.url, token)));
  // Per event (controller, boot, seq): how many sockets got it. Latency: the event's own `at` (the
  // controller's clock when it made the event, ms) to the socket's receipt (Date.now), one
  // histogram of whole milliseconds over every socket.
  /** @type {Map<string, number>} */
  const seen = new Map();
  const hist = new Uint32Array(10_001);
  let receipts = 0;
  for (const s of sockets) {
    s.on('audit', (/** @type {{ type: string, controllerId?: string, data?: { at?: number, boot?: string, seq?: number } }} */ item) => {
      if (!item.type.startsWith('access.') || item.data?.at === undefined) return;
      const lat = Date.now() - item.data.at;
      hist[Math.min(Math.max(lat, 0), 10_000)] += 1;
      const key = `${item.controllerId ?? ''}|${item.data.boot ?? ''}|${item.data.seq ?? 0}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      receipts += 1;
    });
  }
  try {
    const cpu0 = cpuSeconds(gw.pid);
    // The sockets live in this process: if it runs out of CPU, latencies are ours, not the gateway's.
    const own0 = process.cpuUsage();
    const procs = (await fleet.all('stats')).length;
    const t0 = nowMs();
    const made = /** @type {{ presentations: number, events: number, ms: number }[]} */ (await fleet.all('present', () => ({ rate: opts.rate / procs, seconds: opts.seconds })));
    const presentMs = nowMs() - t0;
    const q = /** @type {{ drained: boolean, backlog: number, acked: number, events: number }[]} */ (await fleet.all('quiesce', () => ({ timeoutMs: 30_000 })));
    const drainedMs = nowMs() - t0;
    const cpu = cpuSeconds(gw.pid) - cpu0;
    const own = process.cpuUsage(own0);
    const ownCores = (own.user + own.system) / 1e6 / (drainedMs / 1000);
    const events = sum(made.map((m) => m.events));
    // Let the last pushes arrive: until every event reached every socket, nothing moved for 2 s,
    // or 30 s more passed (a gateway far behind is not waited for: what is missing then counts as lost).
    const until = nowMs() + 30_000;
    for (let last = -1, quiet = nowMs(); receipts < events * sockets.length && nowMs() - quiet < 2_000 && nowMs() < until; ) {
      if (receipts !== last) {
        last = receipts;
        quiet = nowMs();
      }
      await sleep(50);
    }
    let everywhere = 0;
    let dupes = 0;
    for (const n of seen.values()) {
      if (n >= sockets.length) everywhere += 1;
      if (n > sockets.length) dupes += n - sockets.length;
    }
    const lost = events - everywhere;
    const pct = (/** @type {number} */ p) => {
      const target = Math.ceil(p * receipts);
      let acc = 0;
      for (let i = 0; i < hist.length; i++) {
        acc += hist[i] ?? 0;
        if (acc >= target) return i;
      }
      return NaN;
    };
    let max = 0;
    for (let i = hist.length - 1; i >= 0; i--) {
      if ((hist[i] ?? 0) > 0) {
        max = i;
        break;
      }
    }
    const backlog = sum(q.map((x) => x.backlog));
    const rate = events / (presentMs / 1000);
    log(`  ingest: ${grouped(events)} events in ${(presentMs / 1000).toFixed(1)} s, all acked after ${(drainedMs / 1000).toFixed(1)} s (backlog ${backlog}), ${grouped(receipts)} receipts on ${sockets.length} sockets, p99 ${pct(0.99)} ms, lost ${lost}, gateway CPU ${(cpu / (drainedMs / 1000)).toFixed(2)} cores, the sockets' process ${ownCores.toFixed(2)}`);
    const p99 = pct(0.99);
    return [
      {
        setup,
        scenario: '3 ingest',
        measure: `access event → each of ${sockets.length} sockets`,
        n: grouped(receipts),
        ours: `p50 ${pct(0.5)} / p99 ${p99} / max ${max === 10_000 ? '≥ 10000' : max} ms`,
        raw: `p99 ${ms(raw.on.p99)} ms`,
        ratio: ratio(p99, raw.on.p99),
        budget: 'p99 ≤ 100 ms',
        holds: yes(p99 <= 100),
      },
      {
        setup,
        scenario: '3 ingest',
        measure: `events made → acked by the broker → on every socket, ${opts.seconds} s at ${grouped(opts.rate)}/s`,
        n: grouped(events),
        ours: `${grouped(rate | 0)}/s made; not acked ${backlog}; lost ${lost}${dupes > 0 ? `; ${dupes} repeats` : ''}`,
        raw: `${grouped(opts.rate)}/s asked`,
        ratio: ratio(rate, opts.rate),
        budget: 'zero lost, rate held',
        holds: yes(lost === 0 && backlog === 0 && rate >= opts.rate * 0.98),
      },
      {
        setup,
        scenario: '3 ingest',
        measure: 'drain: last event acked after start',
        n: '—',
        ours: `${(drainedMs / 1000).toFixed(1)} s; CPU: gateway ${(cpu / (drainedMs / 1000)).toFixed(2)}, sockets ${ownCores.toFixed(2)} cores`,
        raw: `${opts.seconds} s presenting`,
        ratio: ratio(drainedMs / 1000, opts.seconds),
        budget: '—',
        holds: '—',
      },
    ];
  } finally {
    for (const s of sockets) s.close();
  }
}

/** User + system CPU seconds of a process so far, from /proc/<pid>/stat (Linux). @param {number} pid */
function cpuSeconds(pid) {
  try {
    // Fields after the command name (which may hold spaces, hence the last ')'): utime is the 12th, stime the 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

// ── Scenarios 2 and 4: 10,000 controllers ───────────────────────────────────────────────────

/**
 * @param {import('./gateway-lib.js').Services} services @param {Options} opts @param {string} setup
 * @returns {Promise<Row[]>}
 */
async function large(services, opts, setup) {
  /** @type {Row[]} */
  const rows = [];
  // Start-up baseline: the same gateway on a store with no controllers.
  const empty = await tempDir();
  const emptyPrefix = `sp-bench-gw-${randomBytes(4).toString('hex')}:`;
  let baseline;
  try {
    await seed({ dataDir: empty.dir, redisUrl: services.redisUrl, prefix: emptyPrefix, mqttUrl: 'mqtt://127.0.0.1:1', controllers: 0, lostTagGrants: false });
    const gw = await startGateway({ services, dataDir: empty.dir, prefix: emptyPrefix });
    baseline = { readyMs: gw.readyMs, startedMs: gw.startedMs, ...gw.memory() };
    await gw.stop();
  } finally {
    if (services.redisUrl !== undefined) await dropPrefix(services.redisUrl, emptyPrefix);
    await empty.remove();
  }
  log(`  empty store: ready in ${ms(baseline.readyMs)} ms, started in ${ms(baseline.startedMs)} ms, RSS ${baseline.rssMb.toFixed(0)} MB`);

  const n = opts.large;
  const rawMs = opts.scenarios.has(2) ? await rawFanOut(services, n) : NaN;
  await withGateway(services, opts, { controllers: n, lostTagGrants: true, label: 'large' }, async ({ gw, fleet, seeded, atReady }) => {
    // Every controller gets its grant (version 1) after its birth: wait until all applied it.
    const t0 = nowMs();
    for (let said = t0; ; ) {
      const done = sum(/** @type {number[]} */ (await fleet.all('appliedAtLeast', () => ({ version: 1 }))));
      if (done >= seeded.controllers) break;
      if (nowMs() - t0 > 300_000) throw new Error(`only ${done} of ${seeded.controllers} controllers got their grant within 300 s`);
      if (nowMs() - said > 10_000) {
        said = nowMs();
        log(`  … ${grouped(done)} of ${grouped(seeded.controllers)} controllers synced`);
      }
      await sleep(100);
    }
    const syncedMs = nowMs() - t0;
    await fleet.all('settle', () => ({ quietMs: 1_000, timeoutMs: 30_000 }));
    const settled = gw.memory();
    log(`  all ${grouped(seeded.controllers)} controllers synced ${ms(syncedMs)} ms after connecting; RSS ${settled.rssMb.toFixed(0)} MB (peak ${settled.peakMb.toFixed(0)})`);

    if (opts.scenarios.has(2)) {
      const token = await login(gw.url);
      const lost = seeded.lostUnit;
      const w = /** @type {{ holding: number }[]} */ (await fleet.all('watchUid', () => ({ uid: lost.uid })));
      const holding = sum(w.map((x) => x.holding));
      const start = epochMs();
      const t = nowMs();
      await api(gw.url, 'POST', `/api/v1/tags/${lost.tagId}/block`, { token });
      const httpMs = nowMs() - t;
      const gone = /** @type {{ still: number, reached: number, lastAt: number }[]} */ (await fleet.all('awaitUidGone', () => ({ timeoutMs: 120_000 })));
      const still = sum(gone.map((g) => g.still));
      const reached = sum(gone.map((g) => g.reached));
      const appliedMs = Math.max(...gone.map((g) => g.lastAt)) - start;
      // The gateway's side: every controller's applied version recorded (GET /api/v1/controllers,
      // read only now, so the polling does not compete with the fan-out).
      const recordedMs = await recordedAll(gw.url, token, seeded.controllers, t);
      log(`  lost tag: ${reached}/${holding} controllers applied in ${ms(appliedMs)} ms (HTTP answered in ${ms(httpMs)} ms), all recorded by ${ms(recordedMs)} ms; ${still} still hold it`);
      rows.push(
        {
          setup,
          scenario: '2 lost tag',
          measure: `block → ${grouped(holding)} controllers applied a set without it`,
          n: grouped(reached),
          ours: `${ms(appliedMs)} ms${still > 0 ? ` (${still} never)` : ''}`,
          raw: `${ms(rawMs)} ms`,
          ratio: ratio(appliedMs, rawMs),
          budget: '≤ 3000 ms',
          holds: yes(still === 0 && appliedMs <= 3_000),
        },
        {
          setup,
          scenario: '2 lost tag',
          measure: 'block → gateway recorded every applied reply (polled after)',
          n: grouped(seeded.controllers),
          ours: `≤ ${ms(recordedMs)} ms (HTTP answer ${ms(httpMs)} ms)`,
          raw: `${ms(rawMs)} ms`,
          ratio: ratio(recordedMs, rawMs),
          budget: '≤ 3000 ms',
          holds: yes(recordedMs <= 3_000),
        },
      );
    }
    const end = gw.memory();
    if (opts.scenarios.has(4)) {
      rows.push(
        {
          setup,
          scenario: '4 memory',
          measure: `gateway RSS, ${grouped(seeded.controllers)} controllers connected and synced`,
          n: '—',
          ours: `${settled.rssMb.toFixed(0)} MB (peak ${Math.max(settled.peakMb, end.peakMb).toFixed(0)} MB)`,
          raw: `${atReady.rssMb.toFixed(0)} MB at ready`,
          ratio: ratio(settled.rssMb, atReady.rssMb),
          budget: 'peak ≤ 300 MB',
          holds: yes(Math.max(settled.peakMb, end.peakMb) <= 300),
        },
        {
          setup,
          scenario: '4 start-up',
          measure: `spawn → /api/v1/ready 200, ${grouped(seeded.controllers)} controllers stored`,
          n: '1',
          ours: `${ms(gw.readyMs)} ms (start-up done ${ms(gw.startedMs)} ms)`,
          raw: `${ms(baseline.readyMs)} ms (${ms(baseline.startedMs)}), empty store`,
          ratio: ratio(gw.startedMs, baseline.startedMs),
          budget: '—',
          holds: '—',
        },
        {
          setup,
          scenario: '4 start-up',
          measure: `fleet connect → all ${grouped(seeded.controllers)} synced`,
          n: '1',
          ours: `${ms(syncedMs)} ms`,
          raw: '—',
          ratio: '—',
          budget: '—',
          holds: '—',
        },
      );
    }
  });
  return rows;
}

/**
 * Poll GET /api/v1/controllers (pages of 500, the route's maximum) until every controller's applied version has
 * reached its desired version; milliseconds since `t0` at the poll that saw it (an upper bound).
 * @param {string} base @param {string} token @param {number} total @param {number} t0
 */
async function recordedAll(base, token, total, t0) {
  const deadline = nowMs() + 60_000;
  for (;;) {
    let behind = 0;
    let seen = 0;
    let after = '';
    /** @type {string[]} */
    const sample = [];
    for (;;) {
      const page = /** @type {{ items: { id: string, online: boolean, appliedVersion: number, desiredVersion: number }[], next?: string }} */ (await api(base, 'GET', `/api/v1/controllers?limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`, { token }));
      for (const c of page.items) {
        if (c.appliedVersion >= c.desiredVersion) continue;
        behind += 1;
        if (sample.length < 3) sample.push(`${c.id} ${c.online ? 'online' : 'offline'} applied ${c.appliedVersion} desired ${c.desiredVersion}`);
      }
      seen += page.items.length;
      if (page.next === undefined) break;
      after = page.next;
    }
    if (behind === 0 && seen >= total) return nowMs() - t0;
    if (nowMs() > deadline) {
      log(`  ${behind} controllers still behind as the gateway sees them, e.g. ${sample.join('; ')}`);
      return NaN;
    }
    // Each poll reads every controller: not too often, or the polling slows what it measures.
    await sleep(200);
  }
}

// ── Main ────────────────────────────────────────────────────────────────────────────────────

/** @param {Row[]} rows */
function table(rows) {
  const head = ['setup', 'scenario', 'measure', 'n', 'ours', 'raw baseline', 'ratio', 'budget', 'holds'];
  return markdownTable(
    head,
    rows.map((r) => [r.setup, r.scenario, r.measure, r.n, r.ours, r.raw, r.ratio, r.budget, r.holds]),
    (i) => i === 3 || i === 6,
  );
}

async function main() {
  const opts = parseOptions();
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  endOnSignal();
  const m = machine();
  const t0 = nowMs();
  /** @type {Row[]} */
  const rows = [];
  /** @type {string[]} */
  const raws = [];
  let failed = false;
  for (const name of opts.setups) {
    log(`… ${name}`);
    const services = await startServices(name, { redisUrl: opts.redisUrl, mosquittoBin: opts.mosquittoBin, ...(opts.mosquittoQueue !== undefined ? { queueLimit: opts.mosquittoQueue } : {}), ...(opts.mosquittoInflight !== undefined ? { inflight: opts.mosquittoInflight } : {}) });
    const setup = services.label;
    try {
      if (opts.scenarios.has(1) || opts.scenarios.has(3)) {
        await withGateway(services, opts, { controllers: opts.controllers, lostTagGrants: false, label: 'small' }, async ({ gw, fleet, seeded }) => {
          await fleet.all('settle', () => ({ quietMs: 500, timeoutMs: 30_000 }));
          const raw = await rawRoundTrips(services, opts);
          log(`  raw QoS 1 pub→reply: nodelay on p50 ${ms(raw.on.p50)} / p99 ${ms(raw.on.p99)} ms; off p50 ${ms(raw.off.p50)} / p99 ${ms(raw.off.p99)} ms`);
          raws.push(`${setup}: raw QoS 1 pub→reply with TCP_NODELAY p50 ${ms(raw.on.p50)} / p99 ${ms(raw.on.p99)} ms (n ${raw.on.n}); without it (Nagle) p50 ${ms(raw.off.p50)} / p99 ${ms(raw.off.p99)} ms (n ${raw.off.n})`);
          rows.push(
            { setup, scenario: '1 baseline', measure: 'raw QoS 1 pub→reply, TCP_NODELAY on', n: String(raw.on.n), ours: '—', raw: `p50 ${ms(raw.on.p50)} / p99 ${ms(raw.on.p99)} ms`, ratio: '—', budget: '—', holds: '—' },
            { setup, scenario: '1 baseline', measure: 'raw QoS 1 pub→reply, TCP_NODELAY off (Nagle)', n: String(raw.off.n), ours: '—', raw: `p50 ${ms(raw.off.p50)} / p99 ${ms(raw.off.p99)} ms`, ratio: '—', budget: '—', holds: '—' },
          );
          if (opts.scenarios.has(1)) rows.push(...(await timeToDoor(gw, fleet, seeded, opts, raw, setup)));
          if (opts.scenarios.has(3)) rows.push(...(await ingest(gw, fleet, opts, raw, setup)));
        });
      }
      if (opts.scenarios.has(2) || opts.scenarios.has(4)) rows.push(...(await large(services, opts, setup)));
    } catch (err) {
      failed = true;
      log(`  ${name} failed: ${errorText(err)}`);
      rows.push({ setup, scenario: 'failed', measure: errorText(err).split('\n')[0]?.slice(0, 200) ?? '', n: '—', ours: '—', raw: '—', ratio: '—', budget: '—', holds: '**no**' });
    } finally {
      await services.stop();
    }
  }
  const seconds = (nowMs() - t0) / 1000;
  const rendered = table(rows);
  const sizes = `${grouped(opts.controllers)} controllers for 1 and 3 (${grouped(opts.grants)} grants a phase, ${opts.concurrency} concurrent; ${grouped(opts.rate)} events/s for ${opts.seconds} s to ${opts.sockets} sockets); ${grouped(opts.large)} for 2 and 4`;
  process.stdout.write(`\n${rendered}\n\n${sizes}; run took ${seconds.toFixed(0)} s.\n${machineLine(m)}\n`);
  if (opts.writeResults) {
    const command = `node bench/gateway.js ${process.argv.slice(2).join(' ')}`.trim();
    const doc = [
      SECTION,
      '',
      `From \`npm run bench\` (\`${command}\`); what each row measures and how is in \`bench/README.md\`.`,
      'The gateway runs as a child process; the controllers are reference controllers (real MQTT clients with TCP_NODELAY that verify every signature) in child processes of their own.',
      '',
      `- Machine: ${m.cpu}, ${m.cores} logical cores, ${m.memory}, ${m.os}, Node.js ${m.node}`,
      `- Date: ${m.date}; load average (1, 5, 15 min) at start: ${m.load}`,
      `- Sizes: ${sizes}; the run took ${seconds.toFixed(0)} s`,
      '',
      rendered,
      '',
      ...raws.map((r) => `- ${r}`),
      '',
    ].join('\n');
    const file = path.join(here, 'RESULTS.md');
    const before = await readFile(file, 'utf8').catch(() => '');
    await writeFile(file, replaceSection(before, doc));
    process.stdout.write('wrote bench/RESULTS.md\n');
  }
  return failed || rows.some((r) => r.holds === '**no**') ? 1 : 0;
}

/**
 * Our section in place of the last run's; the first time, before the first section that is not
 * the round trips' (so the order reads: machine, round trips, gateway scenarios, the rest).
 * @param {string} before @param {string} doc
 */
function replaceSection(before, doc) {
  const start = before.indexOf(`${SECTION}\n`);
  if (start !== -1) {
    const rest = before.slice(start + SECTION.length);
    const next = rest.search(/^## /m);
    return `${before.slice(0, start)}${doc}${next === -1 ? '' : `\n${rest.slice(next)}`}`;
  }
  const at = before.search(/^## (?!Machine$|Round trips$)/m);
  if (at === -1) return `${before.trimEnd()}\n\n${doc}`;
  return `${before.slice(0, at)}${doc}\n${before.slice(at)}`;
}

runMain(main);
