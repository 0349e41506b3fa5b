// The assembled gateway on production services: the machine's Mosquitto (127.0.0.1:1883) and
// Redis (127.0.0.1:6379, under a key prefix of this test's own), keys from the environment.
// Login → incident → grant → every controller applied → a tag → the access event on a socket.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deletePrefix, uniquePrefix } from '../store/helpers.js';
import { controllerTopic, generateRawKeyPair, silentLogger, trustedKeys, verifyAuditExport, type AuditItem } from '@smart-passage/protocol';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { Gateway } from '../../src/gateway.js';

const MOSQUITTO_URL = process.env.SP_TEST_MOSQUITTO_URL ?? 'mqtt://127.0.0.1:1883';
const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PASSWORDS = { admin: 'admin-pw-2', dispatch: 'dispatch-pw-2', responder: 'responder-pw-2', amb3010: 'amb-pw-2', owner: 'owner-pw-2', 'owner-brf': 'brf-pw-2' };
const prefix = uniquePrefix();
const dir = mkdtempSync(join(tmpdir(), 'sp-gws-'));
let gw: Gateway;

beforeAll(async () => {
  // Instances sharing Redis share keys, so they come from the environment (none are generated).
  const env = {
    SP_GATEWAY_KEY: generateRawKeyPair().privateKey,
    SP_GATEWAY_KID: 'gw-test-1',
    SP_AUDIT_KEY: generateRawKeyPair().privateKey,
    SP_JWT_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { url: MOSQUITTO_URL },
    redisUrl: REDIS_URL,
    redisPrefix: prefix,
    cleanSession: true,
    demo: true,
    demoPasswords: PASSWORDS,
    env,
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
  await gw.start();
}, 60_000);

afterAll(async () => {
  const ids = gw.demo?.controllers.map((c) => c.id) ?? [];
  const client = gw.client;
  // Leave nothing on the shared services: no retained states, no keys under our prefix.
  for (const id of ids) client.publish(controllerTopic(id, 'state'), '', { qos: 1, retain: true });
  await gw.stop();
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

async function api(path: string, o: { token?: string; body?: unknown } = {}) {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.body === undefined ? 'GET' : 'POST',
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const until = async (cond: () => Promise<boolean> | boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('the gateway on Mosquitto + Redis', () => {
  it('grants a route, the controllers apply it, and a tag reaches a dispatcher socket', async () => {
    const login = await api('/api/v1/auth/login', { body: { username: 'dispatch', password: PASSWORDS.dispatch } });
    expect(login.status).toBe(200);
    const token = login.body.accessToken as string;
    await until(async () => (await gw.store.list('controllerLive', { limit: 100 })).filter((l) => l.online).length === 15);

    const feed: Record<string, unknown>[] = [];
    const socket = io(gw.httpUrl, { auth: { token }, transports: ['websocket'], reconnection: false });
    socket.on('audit', (item: Record<string, unknown>) => feed.push(item));
    await new Promise<void>((resolve, reject) => {
      socket.once('snapshot', () => resolve());
      socket.once('connect_error', reject);
    });

    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 } } });
    const created = await api(`/api/v1/incidents/${String(inc.body.id)}/grants`, {
      token,
      body: { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2', 'door-01-3', 'door-01-4'], unitIds: ['unit-rtj-2310'], minutes: 10 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = (created.body.grant as { id: string }).id;
    await until(async () => (await api(`/api/v1/grants/${id}`, { token })).body.status === 'active');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'granted', grantId: id });
    await until(() => feed.some((e) => e.type === 'access.granted' && e.controllerId === 'ctl-sofa-01'));
    socket.close();
    await gw.grants.revoke(id);
  });

  it('on Redis too: the owner reads and exports its building\'s trail (verifies with the audit key), another owner sees none of it', async () => {
    const owner = (await api('/api/v1/auth/login', { body: { username: 'owner', password: PASSWORDS.owner } })).body.accessToken as string;
    const brf = (await api('/api/v1/auth/login', { body: { username: 'owner-brf', password: PASSWORDS['owner-brf'] } })).body.accessToken as string;
    const items = (await api('/api/v1/audit?buildingId=bld-01&type=grant.created,access.granted', { token: owner })).body.items as AuditItem[];
    expect(items.map((i) => i.type)).toEqual(expect.arrayContaining(['grant.created', 'access.granted']));
    expect(((await api('/api/v1/audit?limit=1000', { token: brf })).body.items as AuditItem[]).some((i) => i.buildingId === 'bld-01')).toBe(false);
    const res = await fetch(`${gw.httpUrl}/api/v1/audit/export?buildingId=bld-01`, { headers: { authorization: `Bearer ${owner}` } });
    expect(res.status).toBe(200);
    const keys = (await api('/api/v1/audit/keys', { token: owner })).body.keys as { kid: string; publicKey: string }[];
    const verdict = verifyAuditExport(await res.text(), { keys: trustedKeys(keys) });
    expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
  });
});
