// Scale-out (DESIGN §11, issue 6): three gateway processes on the machine's Mosquitto and Redis,
// one key prefix and one set of keys, taking controller events through one shared subscription
// (SP_MQTT_EVENTS=shared; the default, every instance taking every event, runs in the fault tests
// and behind the proxy in proxy.test.ts). A grant made through A reaches a socket on C; A is killed
// (SIGKILL, by its PID) mid-incident: the grant stays active, the events meant for A wait in its
// session and are handled once when it returns, the expiry runs once and the building's audit
// chain verifies.
//
// The demo district is seeded from here, under controller ids of this run's own, and its bld-01
// controllers run in this process: the demo's fixed ids (ctl-sofa-01 …) would take over the MQTT
// sessions of another run using them on the shared broker (gateway-services.test.ts runs them at
// the same time), so no instance runs SP_DEMO. (Seeding twice is safe: seedDemo skips what exists.)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controllerTopic, generateRawKeyPair, silentLogger, type AuditItem } from '@smart-passage/protocol';
import { connectMqtt, FileStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { demoDistrict, type DemoDistrict } from '../../src/demo/district.js';
import { demoControllerDoors, seedDemo } from '../../src/demo/seed.js';
import type { Grant } from '../../src/domain/types.js';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { RedisStore } from '../../src/store/index.js';
import { deletePrefix, uniquePrefix } from '../store/helpers.js';
import { api, until } from '../support/http.js';
import { endAll, sharedKeys, signal, startInstance, untilReady, type Proc } from '../support/main-process.js';
import { freePort } from '../support/services.js';

const MOSQUITTO_URL = process.env.SP_TEST_MOSQUITTO_URL ?? 'mqtt://127.0.0.1:1883';
const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = uniquePrefix();
const run = randomBytes(3).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'sp-scale-'));
const PASSWORDS = { admin: `admin-${run}`, dispatch: `dispatch-${run}` };
const INSTANCES = ['a', 'b', 'c'] as const;
type Name = (typeof INSTANCES)[number];

const { env: KEYS, gatewayPublicKey } = sharedKeys(run);

/** The demo district with this run's controller ids, so nothing on the shared broker is someone else's. */
function district(): DemoDistrict {
  const d = demoDistrict({ now: Date.now() });
  const rename = (id: string) => id.replace(/^ctl-sofa-/, `ctl-${run}-`);
  return { ...d, controllers: d.controllers.map((c) => ({ ...c, id: rename(c.id) })), doors: d.doors.map((door) => ({ ...door, controllerId: rename(door.controllerId) })) };
}

const store = new RedisStore({ url: REDIS_URL, prefix, logger: silentLogger });
const procs = new Map<Name, { proc: Proc; http: string }>();
const controllers: ReferenceController[] = [];
let bld01Controllers: string[] = [];
const sockets: Socket[] = [];


const http = (n: Name): string => {
  const p = procs.get(n);
  if (!p) throw new Error(`instance ${n} not started`);
  return p.http;
};

async function login(n: Name, username: keyof typeof PASSWORDS): Promise<string> {
  const r = await api<{ accessToken: string }>(http(n), '/api/v1/auth/login', { body: { username, password: PASSWORDS[username] } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.accessToken;
}

beforeAll(async () => {
  await store.start();
  const d = district();
  const hasher = new PasswordHasher();
  const bundles: ConstructorParameters<typeof ReferenceController>[0]['bundle'][] = [];
  const gatewayKeys = [{ kid: KEYS.SP_GATEWAY_KID, publicKey: gatewayPublicKey }];
  await seedDemo(store, {
    passwords: PASSWORDS,
    hash: (pw) => hasher.hash(pw),
    now: Date.now(),
    district: d,
    controllerKeys: async (id) => {
      const keys = generateRawKeyPair();
      const mqttPassword = randomBytes(9).toString('base64url');
      const kid = `${id}-k1`;
      const offlineSecret = randomBytes(32).toString('base64url');
      const doors = demoControllerDoors(d).find((c) => c.controllerId === id)?.doors ?? [];
      bundles.push({ controllerId: id, mqtt: { url: MOSQUITTO_URL, username: id, password: mqttPassword }, gatewayKeys, controllerKid: kid, controllerKey: { kid, privateKey: keys.privateKey }, offlineSecret, doors: doors.map((ref) => ({ ref })) });
      return { publicKey: keys.publicKey, controllerKid: kid, mqttPasswordHash: await hasher.hash(mqttPassword), offlineSecret };
    },
  });
  bld01Controllers = [...new Set(d.doors.filter((x) => x.buildingId === 'bld-01').map((x) => x.controllerId))];
  for (const bundle of bundles.filter((b) => bld01Controllers.includes(b.controllerId))) {
    const c = new ReferenceController({ bundle, store: new FileStateStore(join(dir, 'ctl', `${bundle.controllerId}.json`)), vendor: 'smart-passage-demo' });
    controllers.push(c);
  }
  await Promise.all(controllers.map((c) => c.start({ waitForConnection: false })));

  for (const n of INSTANCES) launch(n, await freePort());
  for (const n of INSTANCES) await ready(n);
}, 90_000);

/** Start instance `n` (again, after a kill: same id, so the same MQTT session). */
function launch(n: Name, port: number): void {
  const proc = startInstance({ id: n, port, keys: KEYS, mqttUrl: MOSQUITTO_URL, redisUrl: REDIS_URL, prefix, dir, settings: { SP_MQTT_EVENTS: 'shared' } });
  procs.set(n, { proc, http: `http://127.0.0.1:${port}` });
}

async function ready(n: Name): Promise<void> {
  const p = procs.get(n)!;
  await untilReady(p.proc, p.http);
}

afterAll(async () => {
  for (const s of sockets) s.close();
  await endAll();
  await Promise.all(controllers.map((c) => c.stop()));
  // Leave nothing on the shared broker: no retained states of our controllers, and no persistent
  // sessions of our instances (a clean connect under each client id ends the stored session).
  const ids = [...bld01Controllers, ...INSTANCES.map((n) => `sp-gateway-${prefix}-${n}`.slice(0, 64))];
  for (const id of ids) {
    const client = connectMqtt({ url: MOSQUITTO_URL, clientId: id, clean: true, reconnectPeriod: 0 });
    await new Promise<void>((resolve) => {
      client.once('connect', () => resolve());
      client.once('error', () => resolve());
    });
    if (bld01Controllers.includes(id)) await client.publishAsync(controllerTopic(id, 'state'), '', { qos: 1, retain: true }).catch(() => undefined);
    await client.endAsync();
  }
  await store.stop();
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('three gateway processes on one Redis and one broker', () => {
  it('a grant made through A reaches a socket on C; with A killed, it stays active, expires once, and the chain verifies', async () => {
    const dispatchB = await login('b', 'dispatch');
    const dispatchA = await login('a', 'dispatch');
    await until(async () => {
      const live = await store.list('controllerLive', { limit: 100 });
      return bld01Controllers.every((id) => live.some((l) => l.id === id && l.online)) || undefined;
    }, 20_000, 'the bld-01 controllers online');

    // A dispatcher's socket on C, with a token from B's login (shared JWT key, shared session store).
    const grants: Grant[] = [];
    const socket = io(http('c'), { auth: { token: dispatchB }, transports: ['websocket'], reconnection: false });
    sockets.push(socket);
    socket.on('grant', (g: Grant) => grants.push(g));
    await new Promise<void>((resolve, reject) => {
      socket.once('snapshot', () => resolve());
      socket.once('connect_error', reject);
    });

    const inc = await api<{ id: string }>(http('a'), '/api/v1/incidents', { token: dispatchA, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 } } });
    expect(inc.status).toBe(201);
    const created = await api<{ grant: Grant }>(http('a'), `/api/v1/incidents/${inc.body.id}/grants`, {
      token: dispatchA,
      body: { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2', 'door-01-3', 'door-01-4'], unitIds: ['unit-rtj-2310'], minutes: 1 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.grant.id;
    // Pending: as A published it at creation, through the Redis adapter. (Later, every instance
    // gets the controllers' replies, and the one that confirms the delivery publishes it active.)
    await until(() => grants.some((g) => g.id === id && g.status === 'pending') || undefined, 10_000, 'the new grant on the socket at C');
    await until(async () => ((await store.get('grants', id))?.status === 'active') || undefined, 20_000, 'the grant active');
    await until(() => grants.some((g) => g.id === id && g.status === 'active') || undefined, 10_000, 'the grant active on the socket at C');

    // Mid-incident, A goes away without a word.
    const a = procs.get('a')!;
    signal(a.proc.pid, 'SIGKILL');
    expect((await a.proc.exited).signal).toBe('SIGKILL');
    const after = await store.get('grants', id);
    expect(after?.status).toBe('active');
    expect((await api<Grant>(http('b'), `/api/v1/grants/${id}`, { token: dispatchB })).body.status).toBe('active');

    // Events go to one member of the share group each, and Mosquitto counts A's persistent session
    // as a member while A is away: A's share waits there. A comes back under its id and handles
    // them (held past CONNACK until its bridge runs): every access is audited, once.
    const admin = await login('b', 'admin');
    const street = controllers.find((c) => c.id === `ctl-${run}-01`);
    const TAPS = 6;
    for (let i = 0; i < TAPS; i++) expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'granted', grantId: id });
    const accesses = async () => {
      const r = await api<{ items: AuditItem[] }>(http('b'), '/api/v1/audit?buildingId=bld-01&type=access.granted&limit=1000', { token: admin });
      return r.body.items.filter((i) => i.grantId === id).length;
    };
    await new Promise((r) => setTimeout(r, 1_500));
    launch('a', Number(new URL(a.http).port)); // its port is free again: A is gone
    await ready('a');
    await until(async () => ((await accesses()) >= TAPS) || undefined, 15_000, `${TAPS} access.granted entries`);

    // B and C both run expiry: it happens once, after notAfter (the API's minimum is a minute).
    await until(async () => ((await store.get('grants', id))?.status === 'expired') || undefined, 90_000, 'the grant expired');
    await until(() => grants.some((g) => g.id === id && g.status === 'expired') || undefined, 10_000, 'the expiry on the socket at C');
    await new Promise((r) => setTimeout(r, 2_000)); // a second expiry, if any, would be stored by now
    expect(await accesses()).toBe(TAPS);
    const trail = await api<{ items: AuditItem[] }>(http('b'), '/api/v1/audit?buildingId=bld-01&type=grant.created,grant.expired,grant.revoked&limit=1000', { token: admin });
    expect(trail.status).toBe(200);
    const mine = trail.body.items.filter((i) => i.grantId === id);
    expect(mine.filter((i) => i.type === 'grant.created')).toHaveLength(1);
    expect(mine.filter((i) => i.type === 'grant.expired')).toHaveLength(1);
    expect(mine.filter((i) => i.type === 'grant.revoked')).toHaveLength(0);

    const verdict = await api<{ ok: boolean; chains: unknown; problem?: unknown }>(http('b'), '/api/v1/audit/verify?buildingId=bld-01', { token: admin });
    expect(verdict.status).toBe(200);
    expect(verdict.body.ok, JSON.stringify(verdict.body)).toBe(true);
  }, 150_000);
});
