// Controller registration over HTTP and the embedded broker's authentication and topic ACL
// (DESIGN §5.1, §5.9, §7; PROTOCOL §2.5, §3.2): a real HTTP server, the embedded store, aedes on
// an ephemeral port with the broker-auth hooks, the controller bridge and reference controllers.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import {
  generateRawKeyPair,
  privateKeyFromSeed,
  rawPublicKey,
  silentLogger,
  validateBundle,
  type Logger,
  type ProvisioningBundle,
} from '@smart-passage/protocol';
import { connectMqtt, MemoryStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { EmbeddedBroker } from '../../../src/adapters/embedded-broker.js';
import { ROLES, type Role } from '../../../src/domain/types.js';
import { AppError } from '../../../src/errors.js';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { BrokerAuth, type Refusal } from '../../../src/features/controllers/broker-auth.js';
import { ControllerBridge } from '../../../src/features/controllers/controller-bridge.js';
import { ControllerRegistry, type ControllerView } from '../../../src/features/controllers/registration.js';
import { controllerRoutes } from '../../../src/features/controllers/registration.js';
import { createHttpApp } from '../../../src/http/app.js';
import type { AuthRequest, Principal } from '../../../src/http/routes.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const until = async (cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Test auth: `Authorization: Test <role> <user> [org]`. */
function authenticate(req: AuthRequest): Promise<Principal> {
  const m = req.headers.authorization?.match(/^Test (\S+) (\S+)(?: (\S+))?$/);
  if (!m || !ROLES.includes(m[1] as Role)) return Promise.reject(AppError.unauthenticated());
  return Promise.resolve({ role: m[1] as Role, userId: m[2]!, ...(m[3] ? { orgId: m[3] } : {}) });
}

/** Counts scrypt verifications, to see the credential cache work. */
class CountingHasher extends PasswordHasher {
  verifies = 0;
  override verify(password: string, stored: string | undefined): Promise<boolean> {
    this.verifies += 1;
    return super.verify(password, stored);
  }
}

/** Every log line as JSON, to prove no secret reaches the log. */
function recordingLogger(lines: string[]): Logger {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(JSON.stringify({ level, msg, ...fields }));
  return { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
}

const SERVICE = { username: 'sp-gateway', password: randomBytes(24).toString('base64url') };

async function world() {
  const lines: string[] = [];
  const logger = recordingLogger(lines);
  const store = new EmbeddedStore({ path: ':memory:' });
  await store.start();
  cleanups.push(() => store.stop());

  const hasher = new CountingHasher({ N: 2 ** 10, r: 8, p: 1 });
  const refusals: Refusal[] = [];
  const auth = new BrokerAuth({ store, hasher, service: SERVICE, logger, onRefused: (r) => refusals.push(r), failTtlMs: 300, logEveryMs: 0 });
  const broker = new EmbeddedBroker({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger,
    authenticate: (c, u, p, w) => auth.authenticate(c, u, p, w),
    authorizePublish: (c, p) => auth.authorizePublish(c, p),
    authorizeSubscribe: (c, s) => auth.authorizeSubscribe(c, s),
  });
  await broker.start();
  cleanups.push(() => broker.stop());

  const now = Date.now();
  for (const org of ['org-1', 'org-2']) await store.insert('organisations', { id: org, name: org, kind: 'owner', createdAt: now });
  for (const [id, orgId] of [['bld-1', 'org-1'], ['bld-2', 'org-2']] as const) {
    await store.insert('buildings', {
      id, orgId, name: id, address: `${id} street`, location: { lat: 59.31, lng: 18.07 },
      policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: now, updatedAt: now,
    });
  }

  const gw = generateRawKeyPair();
  const gatewayKey = { kid: 'gw-test', key: privateKeyFromSeed(gw.privateKey) };
  const gwClient = connectMqtt({ url: broker.url, clientId: 'gw-test-bridge', username: SERVICE.username, password: SERVICE.password, clean: true, reconnectPeriod: 200 });
  await new Promise<void>((resolve, reject) => {
    gwClient.once('connect', () => resolve());
    gwClient.once('error', reject);
  });
  cleanups.push(() => gwClient.endAsync());
  const bridge = new ControllerBridge({ client: gwClient, store, gatewayKey, boot: 'gwboot-test', logger: silentLogger, retryMs: 300 });
  await bridge.start();
  cleanups.push(() => Promise.resolve(bridge.stop()));

  const registry = new ControllerRegistry({
    store,
    hasher,
    mqttUrl: () => broker.url,
    gatewayKeys: () => [{ kid: gatewayKey.kid, publicKey: gw.publicKey }],
    reservedIds: [SERVICE.username],
    logger,
    onRemoved: async (id) => {
      auth.forget(id);
      bridge.forgetKeys(id);
      broker.disconnectClient(id);
      await gwClient.publishAsync(`sp/v1/c/${id}/state`, '', { qos: 1, retain: true });
    },
  });
  const app = createHttpApp({ routes: controllerRoutes(registry), authenticate, ready: () => Promise.resolve({ store: true, broker: true }), logger, corsOrigins: [], checkResponses: true });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const http = async (method: string, path: string, o: { as?: [Role, string?]; body?: unknown } = {}) => {
    const headers: Record<string, string> = {};
    if (o.as) headers['authorization'] = `Test ${o.as[0]} user-${o.as[0]}${o.as[1] ? ` ${o.as[1]}` : ''}`;
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };
  const register = async (body: Record<string, unknown>) => {
    const r = await http('POST', '/api/v1/controllers', { as: ['admin'], body });
    expect(r.status, r.text).toBe(201);
    return r.json as unknown as ProvisioningBundle;
  };
  const startController = async (bundle: ProvisioningBundle) => {
    const c = new ReferenceController({ bundle, store: new MemoryStateStore(), mqtt: { reconnectPeriod: 200 } });
    await c.start();
    cleanups.push(() => c.stop());
    return c;
  };

  return { store, hasher, auth, broker, bridge, registry, http, register, startController, lines, refusals, gwClient };
}

type ConnectOutcome = { ok: true; client: MqttClient } | { ok: false; code: number | undefined };

/** One connection attempt, no retries: the client, or the CONNACK return code it was refused with. */
async function tryConnect(url: string, o: { clientId: string; username?: string; password?: string; will?: { topic: string; payload: string; qos: 1; retain: boolean } }): Promise<ConnectOutcome> {
  const client = connectMqtt({ url, clientId: o.clientId, clean: true, reconnectPeriod: 0, ...(o.username !== undefined ? { username: o.username } : {}), ...(o.password !== undefined ? { password: o.password } : {}), ...(o.will ? { will: o.will } : {}) });
  const outcome = await new Promise<ConnectOutcome>((resolve) => {
    client.once('connect', () => resolve({ ok: true, client }));
    client.once('error', (err) => resolve({ ok: false, code: (err as { code?: number }).code }));
    client.once('close', () => resolve({ ok: false, code: undefined }));
  });
  if (outcome.ok) cleanups.push(() => client.endAsync(true));
  else client.end(true);
  return outcome;
}

/** A service-account client that records everything under sp/v1/. */
async function observe(url: string): Promise<{ seen: { topic: string; payload: string }[] }> {
  const seen: { topic: string; payload: string }[] = [];
  const r = await tryConnect(url, { clientId: `observer-${randomBytes(3).toString('hex')}`, username: SERVICE.username, password: SERVICE.password });
  if (!r.ok) throw new Error('observer could not connect');
  r.client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString('utf8') }));
  await r.client.subscribeAsync('sp/v1/#', { qos: 1 });
  return { seen };
}

describe('POST /api/v1/controllers', () => {
  it('returns a valid bundle once; the controller connects with it, comes online, and secrets never show again', async () => {
    const w = await world();
    const res = await w.http('POST', '/api/v1/controllers', {
      as: ['admin'],
      body: { id: 'ctl-street-1', buildingId: 'bld-1', vendor: 'reference', doors: [{ ref: 'street', name: 'Street entrance' }, { ref: 'stair-a' }] },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('location')).toBe('/api/v1/controllers/ctl-street-1');
    const bundle = res.json as unknown as ProvisioningBundle;
    expect(validateBundle(bundle)).toEqual({ ok: true });
    expect(bundle).toMatchObject({
      controllerId: 'ctl-street-1',
      mqtt: { username: 'ctl-street-1' },
      gatewayKeys: [{ kid: 'gw-test' }],
      controllerKid: 'ctl-street-1-k1',
      controllerKey: { kid: 'ctl-street-1-k1' },
      doors: [{ ref: 'street', name: 'Street entrance' }, { ref: 'stair-a' }],
    });
    expect(bundle.mqtt.url).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(bundle.offlineSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // Stored: the public half of the handed-out key, the password only as a hash.
    const stored = await w.store.get('controllers', 'ctl-street-1');
    expect(stored?.publicKey).toBe(rawPublicKey(privateKeyFromSeed(bundle.controllerKey!.privateKey)));
    expect(stored?.mqttPasswordHash).toMatch(/^scrypt\$/);
    expect(JSON.stringify(stored)).not.toContain(bundle.mqtt.password);
    expect(await w.hasher.verify(bundle.mqtt.password, stored?.mqttPasswordHash)).toBe(true);

    // The reference controller starts from the bundle alone and comes online through the bridge.
    await w.startController(bundle);
    await until(async () => (await w.http('GET', '/api/v1/controllers/ctl-street-1', { as: ['dispatcher'] })).json?.['online'] === true, 5000, 'online');
    const one = await w.http('GET', '/api/v1/controllers/ctl-street-1', { as: ['dispatcher'] });
    const view = one.json as unknown as ControllerView;
    expect(view).toMatchObject({ id: 'ctl-street-1', buildingId: 'bld-1', vendor: 'reference', online: true, clockSafe: true, appliedVersion: 0, desiredVersion: 0 });
    expect(view.boot).toBeTypeOf('string');
    expect(view.lastSeen).toBeTypeOf('number');
    expect(Math.abs(view.clockSkewMs ?? 1e9)).toBeLessThan(5000);
    expect(view.doors.map((d) => d.ref).sort()).toEqual(['stair-a', 'street']);

    const list = await w.http('GET', '/api/v1/controllers', { as: ['admin'] });
    expect(list.status).toBe(200);
    expect((list.json?.['items'] as ControllerView[]).map((c) => [c.id, c.online])).toEqual([['ctl-street-1', true]]);

    // Nothing secret in any answer or any log line.
    const secrets = [bundle.mqtt.password, bundle.offlineSecret!, bundle.controllerKey!.privateKey, stored!.mqttPasswordHash, SERVICE.password];
    for (const s of secrets) {
      expect(one.text).not.toContain(s);
      expect(list.text).not.toContain(s);
      for (const line of w.lines) expect(line).not.toContain(s);
    }
  });

  it('takes the controller’s own public key: no controllerKey in the bundle; generates an id when none is given', async () => {
    const w = await world();
    const own = generateRawKeyPair();
    const bundle = await w.register({ buildingId: 'bld-2', vendor: 'acme', doors: [], publicKey: own.publicKey });
    expect(validateBundle(bundle)).toEqual({ ok: true });
    expect(bundle.controllerKey).toBeUndefined();
    expect(bundle.controllerId).toMatch(/^ctl-[0-9a-z]{26}$/);
    expect((await w.store.get('controllers', bundle.controllerId))?.publicKey).toBe(own.publicKey);
  });

  it('refuses bad input with 400 (or 409 for a taken id) and stores nothing', async () => {
    const w = await world();
    await w.register({ id: 'ctl-taken', buildingId: 'bld-1', vendor: 'x', doors: [] });
    const good = { buildingId: 'bld-1', vendor: 'x', doors: [{ ref: 'street' }] };
    const bad: [Record<string, unknown>, number, string][] = [
      [{ ...good, buildingId: 'bld-nope' }, 400, '/buildingId'],
      [{ ...good, id: 'Ctl-Upper' }, 400, '/id'],
      [{ ...good, id: 'ctl/7' }, 400, '/id'],
      [{ ...good, id: 'ctl-+' }, 400, '/id'],
      [{ ...good, doors: [{ ref: 'has space' }] }, 400, '/doors/0/ref'],
      [{ ...good, doors: [{ ref: 'a' }, { ref: 'a' }] }, 400, '/doors/1/ref'],
      [{ ...good, doors: [{ ref: 'a', name: '' }] }, 400, '/doors/0/name'],
      [{ ...good, publicKey: 'too-short' }, 400, '/publicKey'],
      [{ ...good, extra: 1 }, 400, '/extra'],
      [{ vendor: 'x', doors: [] }, 400, '/buildingId'],
      [{ ...good, id: 'ctl-taken' }, 409, ''],
      [{ ...good, id: SERVICE.username }, 409, ''],
    ];
    for (const [body, status, path] of bad) {
      const r = await w.http('POST', '/api/v1/controllers', { as: ['admin'], body });
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(status);
      if (status === 400) expect(JSON.stringify(r.json), JSON.stringify(body)).toContain(`"path":"${path}`);
    }
    expect((await w.store.list('controllers')).map((c) => c.id)).toEqual(['ctl-taken']);
  });

  it('is for admins only; reads are scoped: an owner sees only its own buildings’ controllers', async () => {
    const w = await world();
    const body = { buildingId: 'bld-1', vendor: 'x', doors: [] };
    expect((await w.http('POST', '/api/v1/controllers', { body })).status).toBe(401);
    for (const role of ['dispatcher', 'owner', 'responder'] as const) {
      expect((await w.http('POST', '/api/v1/controllers', { as: [role, 'org-1'], body })).status).toBe(403);
    }
    expect(await w.store.list('controllers')).toEqual([]);
    await w.register({ id: 'ctl-a', buildingId: 'bld-1', vendor: 'x', doors: [] });
    await w.register({ id: 'ctl-b', buildingId: 'bld-2', vendor: 'x', doors: [] });

    const ids = async (as: [Role, string?], q = '') => {
      const r = await w.http('GET', `/api/v1/controllers${q}`, { as });
      expect(r.status, r.text).toBe(200);
      return (r.json?.['items'] as ControllerView[]).map((c) => c.id);
    };
    expect(await ids(['admin'])).toEqual(['ctl-a', 'ctl-b']);
    expect(await ids(['dispatcher'])).toEqual(['ctl-a', 'ctl-b']);
    expect(await ids(['dispatcher'], '?buildingId=bld-2')).toEqual(['ctl-b']);
    expect(await ids(['owner', 'org-1'])).toEqual(['ctl-a']);
    expect(await ids(['owner', 'org-2'])).toEqual(['ctl-b']);
    expect(await ids(['owner', 'org-1'], '?buildingId=bld-2')).toEqual([]);
    expect(await ids(['owner'])).toEqual([]);
    expect((await w.http('GET', '/api/v1/controllers', { as: ['responder'] })).status).toBe(403);
    expect((await w.http('GET', '/api/v1/controllers')).status).toBe(401);

    // Cursor pagination.
    const first = await w.http('GET', '/api/v1/controllers?limit=1', { as: ['admin'] });
    expect(first.json).toMatchObject({ items: [{ id: 'ctl-a' }], next: 'ctl-a' });
    const second = await w.http('GET', '/api/v1/controllers?limit=1&after=ctl-a', { as: ['admin'] });
    expect(second.json?.['items']).toMatchObject([{ id: 'ctl-b' }]);
    expect(second.json?.['next']).toBeUndefined();

    expect((await w.http('GET', '/api/v1/controllers/ctl-a', { as: ['owner', 'org-1'] })).status).toBe(200);
    expect((await w.http('GET', '/api/v1/controllers/ctl-a', { as: ['owner', 'org-2'] })).status).toBe(404);
    expect((await w.http('GET', '/api/v1/controllers/ctl-zzz', { as: ['admin'] })).status).toBe(404);
    expect((await w.http('GET', '/api/v1/controllers/NOT_AN_ID', { as: ['admin'] })).status).toBe(400);
    for (const role of ['dispatcher', 'owner', 'responder'] as const) {
      expect((await w.http('DELETE', '/api/v1/controllers/ctl-a', { as: [role, 'org-1'] })).status).toBe(403);
    }
    expect(await w.store.get('controllers', 'ctl-a')).toBeDefined();
  });
});

describe('DELETE /api/v1/controllers/{id}', () => {
  it('removes the controller: its connection is cut and its credentials stop working at once', async () => {
    const w = await world();
    const bundle = await w.register({ id: 'ctl-gone', buildingId: 'bld-1', vendor: 'x', doors: [{ ref: 'd1' }] });
    const ctrl = await w.startController(bundle);
    await until(async () => (await w.store.get('controllerLive', 'ctl-gone'))?.online === true, 5000, 'online');

    // A door still on it: refused.
    await w.store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'd1', kind: 'entrance', routeOrder: 1, controllerId: 'ctl-gone', ref: 'd1', pulseSeconds: 5, emergency: true });
    expect((await w.http('DELETE', '/api/v1/controllers/ctl-gone', { as: ['admin'] })).status).toBe(409);
    await w.store.delete('doors', 'door-1');

    await ctrl.stop();
    const del = await w.http('DELETE', '/api/v1/controllers/ctl-gone', { as: ['admin'] });
    expect(del.status, del.text).toBe(204);
    expect(await w.store.get('controllers', 'ctl-gone')).toBeUndefined();
    expect(await w.store.get('controllerLive', 'ctl-gone')).toBeUndefined();
    expect((await w.http('GET', '/api/v1/controllers/ctl-gone', { as: ['admin'] })).status).toBe(404);
    expect((await w.http('DELETE', '/api/v1/controllers/ctl-gone', { as: ['admin'] })).status).toBe(404);
    // The password was cached as good a moment ago; removal forgets it.
    const again = await tryConnect(bundle.mqtt.url, { clientId: 'ctl-gone', username: 'ctl-gone', password: bundle.mqtt.password });
    expect(again).toEqual({ ok: false, code: 4 });
  });

  it('cuts off a removed controller that is still connected', async () => {
    const w = await world();
    const bundle = await w.register({ id: 'ctl-live', buildingId: 'bld-1', vendor: 'x', doors: [] });
    const r = await tryConnect(bundle.mqtt.url, { clientId: 'ctl-live', username: 'ctl-live', password: bundle.mqtt.password });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const closed = new Promise<void>((resolve) => r.client.once('close', () => resolve()));
    expect((await w.http('DELETE', '/api/v1/controllers/ctl-live', { as: ['admin'] })).status).toBe(204);
    await closed;
  });
});

describe('embedded broker authentication and topic ACL', () => {
  it('refuses anonymous clients, wrong and unknown credentials, a borrowed client id and a foreign will', async () => {
    const w = await world();
    const a = await w.register({ id: 'ctl-a', buildingId: 'bld-1', vendor: 'x', doors: [{ ref: 'street' }] });
    const b = await w.register({ id: 'ctl-b', buildingId: 'bld-2', vendor: 'x', doors: [{ ref: 'gate' }] });
    const url = a.mqtt.url;
    const ctrlA = await w.startController(a);
    let aDropped = 0;
    ctrlA.on('rejected', () => (aDropped += 1));

    // MQTT 3.1.1 §3.2.2.3: 4 = bad user name or password, 5 = not authorized, 2 = identifier rejected.
    expect(await tryConnect(url, { clientId: 'anon-1' })).toEqual({ ok: false, code: 5 });
    expect(await tryConnect(url, { clientId: 'ctl-a', username: 'ctl-a', password: b.mqtt.password })).toEqual({ ok: false, code: 4 });
    expect(await tryConnect(url, { clientId: 'ctl-a', username: 'ctl-a', password: '' })).toEqual({ ok: false, code: 5 });
    expect(await tryConnect(url, { clientId: 'ctl-x', username: 'ctl-x', password: a.mqtt.password })).toEqual({ ok: false, code: 4 });
    expect(await tryConnect(url, { clientId: 'x', username: SERVICE.username, password: 'wrong' })).toEqual({ ok: false, code: 4 });
    // B's own credentials, but A's client id: taking over A's session would cut A off.
    expect(await tryConnect(url, { clientId: 'ctl-a', username: 'ctl-b', password: b.mqtt.password })).toEqual({ ok: false, code: 2 });
    // A will on A's state topic, set by B: refused at CONNECT.
    const foreignWill = { topic: 'sp/v1/c/ctl-a/state', payload: '{}', qos: 1 as const, retain: true };
    expect(await tryConnect(url, { clientId: 'ctl-b', username: 'ctl-b', password: b.mqtt.password, will: foreignWill })).toEqual({ ok: false, code: 5 });

    await sleep(200);
    expect(aDropped).toBe(0);
    expect((await w.store.get('controllerLive', 'ctl-a'))?.online).toBe(true);
    expect(w.refusals.filter((r) => r.action === 'connect').map((r) => r.reason)).toEqual(['anonymous', 'bad-credentials', 'anonymous', 'bad-credentials', 'bad-credentials', 'client-id-mismatch', 'will-not-allowed']);
    expect(w.auth.stats().refused.connect).toBe(7);
    for (const s of [a.mqtt.password, b.mqtt.password, SERVICE.password]) for (const line of w.lines) expect(line).not.toContain(s);
    expect(w.lines.some((l) => l.includes('security.rejected') && l.includes('client-id-mismatch'))).toBe(true);
  });

  it('keeps a controller to its own topics: another controller’s credentials cannot publish on them or read its sync', async () => {
    const w = await world();
    const a = await w.register({ id: 'ctl-a', buildingId: 'bld-1', vendor: 'x', doors: [{ ref: 'street' }] });
    const b = await w.register({ id: 'ctl-b', buildingId: 'bld-1', vendor: 'x', doors: [{ ref: 'gate' }] });
    const url = a.mqtt.url;
    const ctrlA = await w.startController(a);
    let aDropped = 0;
    ctrlA.on('rejected', () => (aDropped += 1));
    const obs = await observe(url);
    const mark = `forged-${randomBytes(4).toString('hex')}`;

    const asB = async () => {
      const r = await tryConnect(url, { clientId: 'ctl-b', username: 'ctl-b', password: b.mqtt.password });
      if (!r.ok) throw new Error(`ctl-b could not connect (${r.code})`);
      return r.client;
    };

    // Subscribing: own sync and cmd granted; A's sync, wildcards and anything else refused (0x80).
    const sub = await asB();
    const granted: [string, number][] = [];
    for (const topic of ['sp/v1/c/ctl-b/sync', 'sp/v1/c/ctl-b/cmd', 'sp/v1/c/ctl-a/sync', 'sp/v1/c/+/sync', 'sp/v1/#', 'sp/v1/c/ctl-b/evt', '#']) {
      // mqtt.js turns a 0x80 SUBACK into an error; the connection stays up.
      granted.push(await sub.subscribeAsync(topic, { qos: 1 }).then((g) => [topic, g[0]?.qos ?? -1] as [string, number], () => [topic, 128] as [string, number]));
    }
    expect(sub.connected).toBe(true);
    expect(granted).toEqual([
      ['sp/v1/c/ctl-b/sync', 1],
      ['sp/v1/c/ctl-b/cmd', 1],
      ['sp/v1/c/ctl-a/sync', 128],
      ['sp/v1/c/+/sync', 128],
      ['sp/v1/#', 128],
      ['sp/v1/c/ctl-b/evt', 128],
      ['#', 128],
    ]);
    const bSaw: string[] = [];
    sub.on('message', (topic) => bSaw.push(topic));
    // A sync for A (through the gateway's account) reaches A, not B.
    await w.gwClient.publishAsync('sp/v1/c/ctl-a/sync', `not-a-real-sync-${mark}`, { qos: 1 });
    await until(() => aDropped === 1, 3000, 'A received its (malformed) sync');
    expect(bSaw).toEqual([]);
    aDropped = 0;

    // Publishing as B on A's topics, or on the gateway's: dropped, and B's connection is closed
    // (MQTT-3.3.5-2: 3.1.1 has no negative PUBACK).
    for (const topic of ['sp/v1/c/ctl-a/evt', 'sp/v1/c/ctl-a/state', 'sp/v1/c/ctl-a/sync', 'sp/v1/c/ctl-b/sync', 'sp/v1/gw/gw-1/state', 'elsewhere']) {
      const pub = await asB();
      const closed = new Promise<void>((resolve) => pub.once('close', () => resolve()));
      pub.publish(topic, `${mark} ${topic}`, { qos: 1 });
      await closed;
    }
    // Retained on its own evt: refused too (PROTOCOL §3.3).
    const ret = await asB();
    const closed = new Promise<void>((resolve) => ret.once('close', () => resolve()));
    ret.publish('sp/v1/c/ctl-b/evt', `${mark} retained`, { qos: 1, retain: true });
    await closed;
    // Its own evt, not retained, goes through (the bridge drops it as unsigned, which is its job).
    const own = await asB();
    await own.publishAsync('sp/v1/c/ctl-b/evt', `${mark} own`, { qos: 1 });
    await until(() => obs.seen.some((m) => m.payload === `${mark} own`), 3000, 'own evt seen');

    await sleep(200);
    expect(obs.seen.filter((m) => m.payload.startsWith(mark)).map((m) => m.topic)).toEqual(['sp/v1/c/ctl-b/evt']);
    expect(aDropped).toBe(0);
    expect((await w.store.get('controllerLive', 'ctl-a'))?.online).toBe(true);
    const pubRefusals = w.refusals.filter((r) => r.action === 'publish');
    expect(pubRefusals.map((r) => [r.topic, r.reason])).toEqual([
      ['sp/v1/c/ctl-a/evt', 'topic'],
      ['sp/v1/c/ctl-a/state', 'topic'],
      ['sp/v1/c/ctl-a/sync', 'topic'],
      ['sp/v1/c/ctl-b/sync', 'topic'],
      ['sp/v1/gw/gw-1/state', 'topic'],
      ['elsewhere', 'topic'],
      ['sp/v1/c/ctl-b/evt', 'retained'],
    ]);
    expect(pubRefusals.every((r) => r.username === 'ctl-b')).toBe(true);
    expect(w.auth.stats().refused).toMatchObject({ publish: 7, subscribe: 5 });
  });

  it('caches a verified password so reconnects cost no scrypt, and forgets a failure within seconds', async () => {
    const w = await world();
    const a = await w.register({ id: 'ctl-a', buildingId: 'bld-1', vendor: 'x', doors: [] });
    const url = a.mqtt.url;
    const before = w.hasher.verifies;
    for (let i = 0; i < 5; i++) {
      const r = await tryConnect(url, { clientId: 'ctl-a', username: 'ctl-a', password: a.mqtt.password });
      expect(r.ok).toBe(true);
      if (r.ok) await r.client.endAsync();
    }
    expect(w.hasher.verifies - before).toBe(1);

    // A burst of the same wrong password costs one check, remembered only briefly (300 ms here).
    const wrong = await Promise.all([1, 2, 3].map(() => tryConnect(url, { clientId: 'ctl-a', username: 'ctl-a', password: 'nope' })));
    expect(wrong.every((r) => !r.ok && r.code === 4)).toBe(true);
    expect(w.hasher.verifies - before).toBe(2);
    await sleep(350);
    expect(await tryConnect(url, { clientId: 'ctl-a', username: 'ctl-a', password: 'nope' })).toEqual({ ok: false, code: 4 });
    expect(w.hasher.verifies - before).toBe(3);
  });
});
