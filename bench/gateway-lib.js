// The harness of the gateway scenarios (bench/gateway.js, issue 7): a gateway under test as a
// child process (gateway/dist/main.js with SP_* settings), its services (the embedded broker and
// store, or a private Mosquitto and the machine's Redis under a key prefix of our own), a store
// seeded before it starts, a fleet of reference controllers in child processes of their own
// (bench/fleet-child.js), and the HTTP and socket.io clients the scenarios drive it with.
//
// Every process is started here and ended by its PID; every file lives in a temp dir of the run;
// Redis keys are deleted by prefix (SCAN + DEL), never FLUSHALL.
import { fork, spawn } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { io } from 'socket.io-client';
import { generateRawKeyPair, silentLogger } from '../protocol/dist/index.js';
import { loadOrCreateKeys } from '../gateway/dist/keys/key-store.js';
import { createStore } from '../gateway/dist/store/index.js';
import { deletePrefix, errorText, nowMs } from './lib.js';
import { freePort, startMosquitto, withTimeout } from './mqtt-lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.join(here, '..', 'gateway', 'dist', 'main.js');
/**
 * The V8 flags the gateway runs with in production (deploy/gateway.Dockerfile) and under
 * `npm start`: the bench measures the gateway as it is deployed. gateway/test/unit/deploy.test.ts
 * keeps the three the same.
 */
export const GATEWAY_NODE_FLAGS = ['--max-old-space-size=512', '--max-semi-space-size=8'];
const FLEET_CHILD = path.join(here, 'fleet-child.js');

/** Processes started here and still running, ended by PID if the run itself is interrupted. */
/** @type {Set<number>} */
const running = new Set();
/** @param {number | undefined} pid */
export const track = (pid) => void (pid !== undefined && running.add(pid));
/** @param {number | undefined} pid */
export const untrack = (pid) => void running.delete(pid);

/** On SIGINT/SIGTERM (Ctrl-C, a timeout): end every process started here, by PID, then exit. */
export function endOnSignal() {
  const end = () => {
    for (const pid of running) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    process.exit(130);
  };
  process.once('SIGINT', end);
  process.once('SIGTERM', end);
}

export const ADMIN = { username: 'bench-admin', password: `bench-${randomBytes(12).toString('base64url')}` };

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes. */
export const epochMs = () => performance.timeOrigin + performance.now();

export const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ── Services ─────────────────────────────────────────────────────────────────────────────────

/**
 * @typedef {'embedded' | 'mosquitto-redis'} SetupName
 * @typedef {{ name: SetupName, label: string, mqttUrl?: string, redisUrl?: string, stop: () => Promise<void> }} Services
 */

/**
 * The services of a setup: nothing for the embedded one (the gateway starts its own broker and
 * store); a private Mosquitto (set_tcp_nodelay true, as deploy/mosquitto/mosquitto.conf) for the
 * other, whose Redis is the machine's, used under a prefix of each gateway's own.
 * @param {SetupName} name @param {{ redisUrl: string, mosquittoBin: string, queueLimit?: number, inflight?: number }} o
 * @returns {Promise<Services>}
 */
export async function startServices(name, o) {
  if (name === 'embedded') return { name, label: 'embedded (aedes + SQLite)', stop: () => Promise.resolve() };
  // Mosquitto's default max_queued_messages (1000) drops QoS 1 messages for a client more than
  // 1,000 behind — the broker has acknowledged them to the controller already, so they are lost.
  // The gateway's one session falls that far behind in a burst (10,000 births; events faster
  // than it stores them), and the bench saw births and events lost so. 0 = no limit.
  const extra = [`max_queued_messages ${o.queueLimit ?? 0}`, ...(o.inflight !== undefined ? [`max_inflight_messages ${o.inflight}`] : [])];
  const mosquitto = await startMosquitto(o.mosquittoBin, true, extra);
  track(mosquitto.pid);
  const stop = async () => {
    await mosquitto.stop();
    untrack(mosquitto.pid);
  };
  return { name, label: 'Mosquitto (nodelay) + Redis', mqttUrl: mosquitto.url, redisUrl: o.redisUrl, stop };
}

// ── Seeding ──────────────────────────────────────────────────────────────────────────────────

/**
 * Bench-only MQTT password hashes: the gateway's scrypt format, at a cost of N=16 instead of 2^15.
 * Each stored hash carries its own cost (features/auth/passwords.ts), so the embedded broker checks
 * these cheaply: 10,000 controllers connect in seconds instead of spending ~100 ms of CPU each.
 * @param {string} password
 */
function cheapHash(password) {
  const salt = randomBytes(16);
  const hash = scryptSync(password.normalize('NFC'), salt, 32, { N: 16, r: 1, p: 1 });
  return `scrypt$16$1$1$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/**
 * @typedef {{ id: string, controllers: string[], doors: string[] }} SeededBuilding
 * @typedef {{ id: string, tagId: string, uid: string }} SeededUnit
 * @typedef {{ buildings: SeededBuilding[], units: SeededUnit[], lostUnit: SeededUnit, bundlesFile: string, controllers: number, grants: number, seconds: number }} Seeded
 */

/** Doors of a building: 5 on its (up to) 3 controllers — 2, 2 and 1 — in route order. */
const DOOR_LAYOUT = [
  { ctrl: 0, ref: 'd1', kind: 'entrance' },
  { ctrl: 0, ref: 'd2', kind: 'stairwell' },
  { ctrl: 1, ref: 'd1', kind: 'floor' },
  { ctrl: 1, ref: 'd2', kind: 'floor' },
  { ctrl: 2, ref: 'd1', kind: 'apartment' },
];
export const UNITS = 8;

/**
 * Put a fleet's worth of buildings (3 controllers, 5 doors each), one agency with UNITS units of one
 * tag each, and optionally one live grant per building for the last unit (the lost-tag scenario)
 * straight into the store the gateway will open, as the demo seed does (gateway/src/demo/seed.ts):
 * registering 10,000 controllers through the API would cost a scrypt hash each. The gateway's keys
 * are made here too (its key store, generate mode), so the bundles name the key it will sign with.
 * @param {{ dataDir: string, redisUrl?: string, prefix: string, mqttUrl: string, controllers: number, lostTagGrants: boolean }} o
 * @returns {Promise<Seeded>}
 */
export async function seed(o) {
  const t0 = nowMs();
  const keys = await loadOrCreateKeys({ dataDir: o.dataDir, env: {}, generate: true, logger: silentLogger });
  const gatewayKeys = [{ kid: keys.gateway.current.kid, publicKey: keys.gateway.current.publicKey }];
  const store = createStore({ dataDir: o.dataDir, redisUrl: o.redisUrl, redisPrefix: o.prefix }, silentLogger);
  await store.start();
  const now = Date.now();
  /** @type {import('../protocol/dist/index.js').ProvisioningBundle[]} */
  const bundles = [];
  /** @type {SeededBuilding[]} */
  const buildings = [];
  /** @type {SeededUnit[]} */
  const units = [];
  let grants = 0;
  // Redis round trips overlap; SQLite is synchronous anyway.
  /** @type {Promise<unknown>[]} */
  let batch = [];
  const flush = async () => {
    await Promise.all(batch);
    batch = [];
  };
  /** @param {Promise<unknown>} p */
  const add = async (p) => {
    batch.push(p);
    if (batch.length >= 200) await flush();
  };
  try {
    await store.insert('organisations', { id: 'org-bench', name: 'Bench owner', kind: 'owner', createdAt: now });
    await store.insert('agencies', { id: 'ag-bench', name: 'Bench fire service', kind: 'fire' });
    for (let u = 1; u <= UNITS; u++) {
      const unit = { id: `unit-b${u}`, tagId: `tag-b${u}`, uid: `B0E7${String(u).padStart(4, '0')}` };
      units.push(unit);
      await store.insert('units', { id: unit.id, agencyId: 'ag-bench', callSign: `BENCH ${u}` });
      await store.insert('tags', { id: unit.tagId, uid: unit.uid, label: `bench tag ${u}`, unitId: unit.id, status: 'active' });
    }
    const lostUnit = /** @type {SeededUnit} */ (units[units.length - 1]);
    const incident = 'inc-bench-lost';
    if (o.lostTagGrants) {
      await store.insert('incidents', { id: incident, kind: 'bench', location: { lat: 59.3, lng: 18.07 }, status: 'open', buildingIds: [], openedBy: 'bench', openedAt: now });
    }
    const width = String(Math.ceil(o.controllers / 3)).length;
    for (let b = 0, made = 0; made < o.controllers; b++) {
      const id = `bb-${String(b + 1).padStart(width, '0')}`;
      const n = Math.min(3, o.controllers - made);
      made += n;
      const ctrls = Array.from({ length: n }, (_, k) => `bc-${String(b + 1).padStart(width, '0')}-${k + 1}`);
      const location = { lat: 59.3 + (b % 100) * 0.001, lng: 18.0 + Math.floor(b / 100) * 0.001 };
      await add(store.insert('buildings', { id, orgId: 'org-bench', name: `Bench building ${b + 1}`, address: `Benchgatan ${b + 1}`, location, policy: { enabled: true, maxMinutes: 240, allowedAgencyIds: [], doorIds: [] }, createdAt: now, updatedAt: now }));
      /** @type {string[]} */
      const doorIds = [];
      for (const [k, ctrl] of ctrls.entries()) {
        const pair = generateRawKeyPair();
        const password = randomBytes(18).toString('base64url');
        const kid = `${ctrl}-k1`;
        const offlineSecret = randomBytes(32).toString('base64url');
        const refs = DOOR_LAYOUT.filter((d) => d.ctrl === k);
        bundles.push({ controllerId: ctrl, mqtt: { url: o.mqttUrl, username: ctrl, password }, gatewayKeys, controllerKid: kid, controllerKey: { kid, privateKey: pair.privateKey }, offlineSecret, doors: refs.map((d) => ({ ref: d.ref })) });
        await add(store.insert('controllers', { id: ctrl, buildingId: id, vendor: 'sp-bench', publicKey: pair.publicKey, controllerKid: kid, mqttPasswordHash: cheapHash(password), offlineSecret, createdAt: now }));
      }
      for (const [i, d] of DOOR_LAYOUT.entries()) {
        const ctrl = ctrls[d.ctrl];
        if (ctrl === undefined) continue;
        const doorId = `${id}-door${i + 1}`;
        doorIds.push(doorId);
        await add(store.insert('doors', { id: doorId, buildingId: id, name: `${d.kind} ${i + 1}`, kind: /** @type {'entrance'} */ (d.kind), routeOrder: i + 1, controllerId: ctrl, ref: d.ref, pulseSeconds: 5, emergency: true }));
      }
      buildings.push({ id, controllers: ctrls, doors: doorIds });
    }
    await flush();
    if (o.lostTagGrants) {
      // One live grant per building for the lost unit: its block reaches every controller.
      for (const b of buildings) {
        const versions = await Promise.all(b.controllers.map((c) => store.bumpDesiredVersion(c)));
        const grantId = `grt-bench-lost-${b.id}`;
        const notAfter = now + 4 * 3_600_000;
        await add(
          store.insert('grants', {
            id: grantId,
            incidentId: incident,
            buildingId: b.id,
            doorIds: [...b.doors],
            unitIds: [lostUnit.id],
            notBefore: now,
            notAfter,
            status: 'pending',
            createdBy: 'bench',
            createdAt: now,
            deliveries: b.controllers.map((c, i) => ({ controllerId: c, version: versions[i] ?? 1, state: /** @type {const} */ ('pending') })),
          }),
        );
        await add(store.scheduleAt(`grant:${grantId}`, notAfter));
        grants += 1;
      }
      await flush();
    }
    const bundlesFile = path.join(o.dataDir, 'bench-fleet.json');
    await writeFile(bundlesFile, JSON.stringify(bundles), { mode: 0o600 });
    return { buildings, units, lostUnit, bundlesFile, controllers: bundles.length, grants, seconds: (nowMs() - t0) / 1000 };
  } finally {
    await store.stop();
  }
}

// ── The gateway process ──────────────────────────────────────────────────────────────────────

/**
 * @typedef {{
 *   pid: number, url: string, mqttUrl: string,
 *   readyMs: number, startedMs: number,
 *   memory: () => { rssMb: number, peakMb: number },
 *   stderr: () => string,
 *   stop: () => Promise<void>,
 * }} GatewayProcess
 */

/**
 * Spawn gateway/dist/main.js with only our SP_ settings, and time it: `readyMs` until
 * GET /api/v1/ready answers 200, `startedMs` until it printed its start banner (start() done:
 * the reconcile at start included).
 * @param {{ services: Services, dataDir: string, prefix: string, env?: Record<string, string>, nodeArgs?: string[], timeoutMs?: number }} o
 * @returns {Promise<GatewayProcess>}
 */
export async function startGateway(o) {
  const port = await freePort();
  const settings = {
    SP_HOST: '127.0.0.1',
    SP_PORT: String(port),
    SP_DATA_DIR: o.dataDir,
    SP_DEMO: 'off',
    SP_LOG_LEVEL: 'warn',
    SP_ADMIN_USER: ADMIN.username,
    SP_ADMIN_PASSWORD: ADMIN.password,
    ...(o.services.mqttUrl !== undefined ? { SP_MQTT_URL: o.services.mqttUrl } : { SP_MQTT_PORT: String(await freePort()) }),
    ...(o.services.redisUrl !== undefined ? { SP_REDIS_URL: o.services.redisUrl, SP_REDIS_PREFIX: o.prefix, SP_INSTANCE_ID: 'bench' } : {}),
    ...o.env,
  };
  /** @type {NodeJS.ProcessEnv} */
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SP_')) env[k] = v;
  const t0 = nowMs();
  const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, ...(o.nodeArgs ?? []), MAIN], { env: { ...env, ...settings }, cwd: o.dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not spawn the gateway');
  track(pid);
  void new Promise((resolve) => child.once('exit', resolve)).then(() => untrack(pid));
  let out = '';
  let err = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  /** @type {(ms: number) => void} */
  let onBanner = () => undefined;
  /** @type {Promise<number>} */
  const banner = new Promise((resolve) => (onBanner = resolve));
  child.stdout.on('data', (/** @type {Buffer} */ c) => {
    out += c.toString('utf8');
    if (out.includes('Smart Passage gateway')) onBanner(nowMs() - t0);
  });
  child.stderr.on('data', (/** @type {Buffer} */ c) => {
    err = (err + c.toString('utf8')).slice(-64_000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  let readyMs = NaN;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the gateway exited at start (code ${child.exitCode}):\n${err.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`the gateway was not ready within ${o.timeoutMs ?? 300_000} ms:\n${err.slice(-2000)}`);
      const ok = await globalThis.fetch(`${url}/api/v1/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) {
        readyMs = nowMs() - t0;
        break;
      }
      await sleep(10);
    }
    const startedMs = await withTimeout(banner, Math.max(1, deadline - Date.now()), 'gateway start banner');
    const mqttUrl = o.services.mqttUrl ?? `mqtt://127.0.0.1:${settings.SP_MQTT_PORT ?? ''}`;
    return { pid, url, mqttUrl, readyMs, startedMs, memory: () => memoryOf(pid), stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** VmRSS and VmHWM (the peak) of a process, MB, from /proc (Linux). @param {number} pid */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (/** @type {string} */ field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

// ── HTTP ─────────────────────────────────────────────────────────────────────────────────────

/**
 * A JSON request; throws on a non-2xx answer with its error code.
 * @param {string} base @param {string} method @param {string} url @param {{ token?: string, body?: unknown }} [o]
 * @returns {Promise<unknown>}
 */
export async function api(base, method, url, o = {}) {
  const send = () =>
    globalThis.fetch(`${base}${url}`, {
      method,
      headers: { ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}), ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}) },
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    });
  // A kept-alive connection the server closed while idle (a busy gateway, minutes between two
  // requests) fails the request before it is sent: try once more, where repeating is harmless.
  const idempotent = method === 'GET' || url.endsWith('/block') || url.endsWith('/auth/login');
  const r = await send().catch((/** @type {unknown} */ err) => {
    if (!idempotent) throw err;
    return sleep(100).then(send);
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text.slice(0, 300)}`);
  return text === '' ? undefined : /** @type {unknown} */ (JSON.parse(text));
}

/** Log in as the bench admin: the access token. @param {string} base @returns {Promise<string>} */
export async function login(base) {
  const s = /** @type {{ accessToken: string }} */ (await api(base, 'POST', '/api/v1/auth/login', { body: ADMIN }));
  return s.accessToken;
}

/**
 * A socket.io client of the gateway, connected (snapshot received).
 * @param {string} base @param {string} token
 * @returns {Promise<import('socket.io-client').Socket>}
 */
export async function openSocket(base, token) {
  const socket = io(base, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once('snapshot', resolve);
        socket.once('connect_error', reject);
      }),
      30_000,
      'socket snapshot',
    );
  } catch (e) {
    socket.close();
    throw e;
  }
  return socket;
}

// ── The fleet processes ──────────────────────────────────────────────────────────────────────

/**
 * Reference controllers (protocol's Fleet) in child processes of their own (bench/fleet-child.js),
 * each over a slice of the bundles: real MQTT clients with TCP_NODELAY that verify every
 * signature. Commands go over the IPC channel; each answers once.
 */
export class FleetProcs {
  /** @type {{ child: import('node:child_process').ChildProcess, pending: Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>, exited: Promise<unknown> }[]} */
  #procs = [];
  #next = 1;

  /**
   * @param {{ bundlesFile: string, controllers: number, url: string, procs: number, tags: string[], concurrency?: number }} o
   * @returns {Promise<{ online: number, noDelay: number, connectMs: number }>}
   */
  async start(o) {
    const per = Math.ceil(o.controllers / o.procs);
    for (let i = 0; i < o.procs; i++) {
      const child = fork(FLEET_CHILD, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      /** @type {Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>} */
      const pending = new Map();
      child.on('message', (/** @type {{ id: number, ok: boolean, result?: unknown, error?: string }} */ m) => {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.ok) p?.resolve(m.result);
        else p?.reject(new Error(`fleet: ${m.error ?? 'failed'}`));
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      track(child.pid);
      void exited.then(() => {
        untrack(child.pid);
        for (const p of pending.values()) p.reject(new Error('the fleet process exited'));
        pending.clear();
      });
      this.#procs.push({ child, pending, exited });
    }
    const t0 = nowMs();
    const results = /** @type {{ online: number, noDelay: number }[]} */ (await this.all('start', (i) => ({ bundlesFile: o.bundlesFile, from: i * per, to: Math.min(o.controllers, (i + 1) * per), url: o.url, tags: o.tags, concurrency: o.concurrency ?? 100 })));
    return { online: sum(results.map((r) => r.online)), noDelay: sum(results.map((r) => r.noDelay)), connectMs: nowMs() - t0 };
  }

  /**
   * Send a command to every fleet process; `args(i)` per process.
   * @param {string} cmd @param {(i: number) => object} [args] @returns {Promise<unknown[]>}
   */
  all(cmd, args = () => ({})) {
    return Promise.all(this.#procs.map((p, i) => this.#send(p, cmd, args(i))));
  }

  /**
   * @param {{ child: import('node:child_process').ChildProcess, pending: Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }> }} p
   * @param {string} cmd @param {object} args @returns {Promise<unknown>}
   */
  #send(p, cmd, args) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      p.pending.set(id, { resolve, reject });
      p.child.send({ id, cmd, ...args });
    });
  }

  /** Stop the controllers gracefully, then end the processes (by PID, after a grace period). */
  async stop() {
    // Bounded: a gateway still busy with a backlog answers the goodbyes slowly.
    await withTimeout(this.all('stop'), 15_000, 'fleet stop').catch((/** @type {unknown} */ e) => console.error(`fleet stop: ${errorText(e)}`));
    await Promise.all(
      this.#procs.map(async (p) => {
        const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
        if (p.child.exitCode === null) p.child.kill('SIGTERM');
        await p.exited;
        clearTimeout(timer);
      }),
    );
    this.#procs = [];
  }
}

/** @param {number[]} xs */
export const sum = (xs) => xs.reduce((s, x) => s + x, 0);

// ── Temp dirs and Redis prefixes ────────────────────────────────────────────────────────────

/** A temp dir for one gateway's data (store, keys, bundles); removed by the returned function. */
export async function tempDir() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sp-bench-gw-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Delete every key under our prefix on the machine's Redis. @param {string} url @param {string} prefix */
export async function dropPrefix(url, prefix) {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    await deletePrefix(client, prefix);
  } finally {
    client.disconnect();
  }
}
