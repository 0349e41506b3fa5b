// Two gateway processes behind nginx, run with production's deploy/nginx/nginx.conf (issue 6,
// DESIGN §11): only the upstream addresses, the listening port and the pid file are changed to
// this run's. Through the proxy: requests are spread over both instances, the dispatch UI's
// WebSocket-only socket.io connection works without sticky sessions and sees what the other
// instance does, and when one instance is SIGKILLed (by the PID this test started) reads and
// writes keep working through the other and a new socket connects.
//
// nginx comes from Debian (.ci/run installs nginx-light when it is missing). Every process here is
// started by this file and ended by its PID; the store is the machine's Redis under a key prefix of
// this run's own, the broker the machine's Mosquitto under this run's client ids (no controllers).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { connectMqtt } from '@smart-passage/protocol/controller';
import { demoDistrict } from '../../src/demo/district.js';
import { seedDemo } from '../../src/demo/seed.js';
import type { Incident } from '../../src/domain/types.js';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { RedisStore } from '../../src/store/index.js';
import { deletePrefix, uniquePrefix } from '../store/helpers.js';
import { api, until } from '../support/http.js';
import { endAll, sharedKeys, signal, startInstance, untilReady, type Proc } from '../support/main-process.js';
import { freePort } from '../support/services.js';

const MOSQUITTO_URL = process.env.SP_TEST_MOSQUITTO_URL ?? 'mqtt://127.0.0.1:1883';
const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const NGINX = '/usr/sbin/nginx';
const CONF = fileURLToPath(new URL('../../../deploy/nginx/nginx.conf', import.meta.url));
const prefix = uniquePrefix();
const run = randomBytes(3).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'sp-proxy-'));
const PASSWORDS = { admin: `admin-${run}`, dispatch: `dispatch-${run}` };
const INSTANCES = ['gateway-a', 'gateway-b'] as const;
type Name = (typeof INSTANCES)[number];

const KEYS = sharedKeys(run).env;

const store = new RedisStore({ url: REDIS_URL, prefix, logger: silentLogger });
const gateways = new Map<Name, { proc: Proc; port: number }>();
let nginx: ChildProcess | undefined;
let nginxLog = '';
const ACCESS_LOG = join(dir, 'access.log');
/** nginx's access log so far. */
const accessLog = (): string => {
  try {
    return readFileSync(ACCESS_LOG, 'utf8');
  } catch {
    return '';
  }
};
let proxy = '';
const sockets: Socket[] = [];

/** A JSON request to the proxy's address. */
const viaProxy = <T = Record<string, unknown>>(path: string, o: { token?: string; body?: unknown } = {}) => api<T>(proxy, path, o);

/** A socket.io connection through the proxy, as the dispatch UI makes it (WebSocket only); resolves on its snapshot. */
async function socketThroughProxy(token: string): Promise<{ socket: Socket; incidents: Incident[] }> {
  const incidents: Incident[] = [];
  const socket = io(proxy, { auth: { token }, transports: ['websocket'], reconnection: false });
  sockets.push(socket);
  socket.on('incident', (i: Incident) => incidents.push(i));
  await new Promise<void>((resolve, reject) => {
    socket.once('snapshot', () => resolve());
    socket.once('connect_error', reject);
  });
  return { socket, incidents };
}

/**
 * Which instance answered each request nginx logged since `from` (the access log's upstream=…;
 * a request nginx retried lists every address it tried, the one that answered last).
 */
function upstreamsSince(from: number): string[] {
  return [...accessLog().slice(from).matchAll(/upstream=([^\n]+)/g)].map((m) => {
    const port = Number(/:(\d+)$/.exec(m[1]?.trim() ?? '')?.[1]);
    return [...gateways].find(([, g]) => g.port === port)?.[0] ?? `port ${port}`;
  });
}

beforeAll(async () => {
  await store.start();
  const hasher = new PasswordHasher();
  // The demo district's users, buildings and units; its controllers are registered but none runs.
  await seedDemo(store, {
    passwords: PASSWORDS,
    hash: (pw) => hasher.hash(pw),
    now: Date.now(),
    district: { ...demoDistrict({ now: Date.now() }), controllers: [], doors: [] },
    controllerKeys: () => Promise.reject(new Error('no controllers in this test')),
  });

  for (const n of INSTANCES) {
    const port = await freePort();
    const proc = startInstance({ id: n, port, keys: KEYS, mqttUrl: MOSQUITTO_URL, redisUrl: REDIS_URL, prefix, dir, settings: { SP_TRUST_PROXY: '1' } });
    gateways.set(n, { proc, port });
  }
  for (const g of gateways.values()) await untilReady(g.proc, `http://127.0.0.1:${g.port}`);

  // Production's nginx.conf with this run's addresses.
  const port = await freePort();
  let conf = readFileSync(CONF, 'utf8');
  for (const [n, g] of gateways) conf = conf.replace(`server ${n}:8080`, `server 127.0.0.1:${g.port}`);
  conf = conf
    .replace(/^(\s*)listen 8080;/m, `$1listen 127.0.0.1:${port};`)
    .replace('pid /tmp/nginx.pid;', `pid ${join(dir, 'nginx.pid')};`)
    // /dev/stdout is a socket here (Node's stdio), which nginx cannot open; in the container it is a pipe.
    .replace('access_log /dev/stdout sp;', `access_log ${ACCESS_LOG} sp;`)
    .replace('error_log /dev/stderr warn;', `error_log ${join(dir, 'error.log')} warn;`);
  expect(conf).not.toMatch(/gateway-[ab]:8080/);
  mkdirSync(join(dir, 'nginx'));
  writeFileSync(join(dir, 'nginx.conf'), conf);
  nginx = spawn(NGINX, ['-p', join(dir, 'nginx'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stdout?.on('data', (c: Buffer) => (nginxLog += c.toString('utf8')));
  nginx.stderr?.on('data', (c: Buffer) => (nginxLog += c.toString('utf8')));
  proxy = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${proxy}/api/v1/health`).then((r) => r.ok, () => false)) || (nginx?.exitCode !== null ? Promise.reject(new Error(`nginx exited\n${nginxLog}${readFileSync(join(dir, 'error.log'), 'utf8')}`)) : undefined), 10_000, 'nginx');
}, 90_000);

afterAll(async () => {
  for (const s of sockets) s.close();
  if (nginx?.pid !== undefined && nginx.exitCode === null) {
    const exited = new Promise((resolve) => nginx?.once('exit', resolve));
    signal(nginx.pid, 'SIGTERM');
    await exited;
  }
  await endAll();
  // No persistent sessions of ours left on the shared broker.
  for (const n of INSTANCES) {
    const client = connectMqtt({ url: MOSQUITTO_URL, clientId: `sp-gateway-${prefix}-${n}`.slice(0, 64), clean: true, reconnectPeriod: 0 });
    await new Promise<void>((resolve) => {
      client.once('connect', () => resolve());
      client.once('error', () => resolve());
    });
    await client.endAsync();
  }
  await store.stop();
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('two gateway instances behind deploy/nginx/nginx.conf', () => {
  it('spreads requests, carries WebSocket socket.io without sticky sessions, and survives an instance killed', async () => {
    const login = await viaProxy<{ accessToken: string }>('/api/v1/auth/login', { body: { username: 'dispatch', password: PASSWORDS.dispatch } });
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    const token = login.body.accessToken;

    // Both instances answer through the one address.
    const from = accessLog().length;
    for (let i = 0; i < 10; i++) expect((await viaProxy('/api/v1/incidents', { token })).status).toBe(200);
    await until(() => upstreamsSince(from).length >= 10 || undefined, 5_000, 'the access log');
    expect(new Set(upstreamsSince(from))).toEqual(new Set(INSTANCES));

    // Two sockets through the proxy (round robin puts them on different instances), then an
    // incident opened through the proxy reaches both, whichever instance handled the request.
    const one = await socketThroughProxy(token);
    const two = await socketThroughProxy(token);
    const opened = await viaProxy<Incident>('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 } } });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    for (const s of [one, two]) await until(() => s.incidents.some((i) => i.id === opened.body.id) || undefined, 10_000, 'the incident on a socket');

    // One instance dies. nginx takes it out after the first refused connection: reads and a new
    // incident (a POST, which nginx retries only because the dead instance never received it) work.
    const victim = gateways.get('gateway-a')!;
    const exited = victim.proc.exited;
    signal(victim.proc.pid, 'SIGKILL');
    await exited;
    const after = accessLog().length;
    for (let i = 0; i < 6; i++) expect((await viaProxy('/api/v1/incidents', { token })).status).toBe(200);
    const second = await viaProxy<Incident>('/api/v1/incidents', { token, body: { kind: 'medical', location: { lat: 59.3146, lng: 18.0745 } } });
    expect(second.status, JSON.stringify(second.body)).toBe(201);
    await until(() => upstreamsSince(after).length >= 7 || undefined, 5_000, 'the access log');
    expect(upstreamsSince(after)).toEqual(Array(7).fill('gateway-b'));

    // A dispatcher whose socket was on the dead instance reconnects through the proxy and gets a
    // snapshot holding both incidents from the survivor.
    const three = await socketThroughProxy(token);
    expect(three.socket.connected).toBe(true);
    const list = await viaProxy<{ items: Incident[] }>('/api/v1/incidents', { token });
    expect(list.body.items.map((i) => i.id)).toEqual(expect.arrayContaining([opened.body.id, second.body.id]));
  }, 60_000);
});
