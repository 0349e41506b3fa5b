// The assembled gateway on the embedded setup with the demo district: log in over HTTP, open an
// incident, grant a route, watch the demo controllers apply it, use a tag, revoke.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, type Message } from '@smart-passage/protocol';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { Gateway } from '../../src/gateway.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
const dir = mkdtempSync(join(tmpdir(), 'sp-gw-'));
let gw: Gateway;
const events: Message<'evt'>[] = [];

beforeAll(async () => {
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    admin: { username: 'first-admin', password: 'first-admin-pw' },
    env: {},
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
  await gw.start();
  gw.bridge.on('event', (_c, m) => events.push(m));
}, 60_000);
afterAll(async () => {
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function api(path: string, o: { token?: string; body?: unknown; method?: string } = {}) {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & { error?: { code: string } } };
}

async function login(username: keyof typeof PASSWORDS) {
  const r = await api('/api/v1/auth/login', { body: { username, password: PASSWORDS[username] } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.accessToken as string;
}

const until = async (cond: () => Promise<boolean> | boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('the gateway over HTTP, embedded setup with the demo district', () => {
  it('keeps its generated keys and demo secrets out of reach (0600)', () => {
    expect(statSync(join(dir, 'demo', 'secrets.json')).mode & 0o077).toBe(0);
    expect(gw.demo?.controllers.length).toBe(15);
  });

  it('creates the first admin from SP_ADMIN_USER / SP_ADMIN_PASSWORD', async () => {
    const r = await api('/api/v1/auth/login', { body: { username: 'first-admin', password: 'first-admin-pw' } });
    expect(r.status).toBe(200);
    expect((r.body.user as { role: string }).role).toBe('admin');
  });

  it('refuses wrong passwords and missing tokens with a code', async () => {
    expect((await api('/api/v1/auth/login', { body: { username: 'dispatch', password: 'nope' } })).body.error?.code).toBe('unauthenticated');
    expect((await api('/api/v1/incidents')).status).toBe(401);
    expect((await api('/api/v1/incidents', { token: 'not.a.token' })).body.error?.code).toBe('unauthenticated');
  });

  it('grants a route and every demo controller on it applies it; a tag opens the street door', async () => {
    const token = await login('dispatch');
    // Sockets: dispatch sees everything; the other building's owner sees nothing of this grant.
    const seen = { dispatch: [] as [string, Record<string, unknown>][], brf: [] as [string, Record<string, unknown>][] };
    const sockets: Socket[] = [];
    for (const [who, user] of [['dispatch', 'dispatch'], ['brf', 'owner-brf']] as const) {
      const s = io(gw.httpUrl, { auth: { token: await login(user) }, transports: ['websocket'], reconnection: false });
      s.onAny((event: string, payload: Record<string, unknown>) => seen[who].push([event, payload]));
      sockets.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('snapshot', () => resolve());
        s.once('connect_error', reject);
      });
    }
    await until(async () => (await gw.store.list('controllerLive', { limit: 100 })).filter((l) => l.online).length === 15);
    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 }, address: 'Götgatan 78' } });
    expect(inc.status).toBe(201);
    const t0 = Date.now();
    const created = await api(`/api/v1/incidents/${String(inc.body.id)}/grants`, {
      token,
      body: { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2', 'door-01-3', 'door-01-4'], unitIds: ['unit-rtj-2310'], pin: true, minutes: 20 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.pin).toMatch(/^\d{6}$/);
    const grant = created.body.grant as { id: string; deliveries: unknown[]; hasPin: boolean; pin?: string };
    expect(grant.deliveries).toHaveLength(2);
    expect(grant.pin).toBeUndefined();
    await until(async () => (await api(`/api/v1/grants/${grant.id}`, { token })).body.status === 'active');
    // Issue 3 "done when": the demo controllers apply it within a second.
    expect(Date.now() - t0).toBeLessThan(1000);
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'granted', grantId: grant.id });
    await until(() => events.some((e) => e.ctrl === 'ctl-sofa-01' && e.body.kind === 'access' && e.body.result === 'granted'));

    // The other building's owner cannot see the grant; the right owner can, without the PIN.
    expect((await api(`/api/v1/grants/${grant.id}`, { token: await login('owner-brf') })).status).toBe(404);
    const ownerView = await api(`/api/v1/grants/${grant.id}`, { token: await login('owner') });
    expect(ownerView.status).toBe(200);
    expect(ownerView.body.pin).toBeUndefined();
    // The granted unit's responder sees the PIN; owners and dispatchers are not sent it again.
    expect((await api(`/api/v1/grants/${grant.id}`, { token: await login('responder') })).body.pin).toBe(created.body.pin);
    expect((await api(`/api/v1/grants/${grant.id}`, { token: await login('amb3010') })).status).toBe(404);

    await until(() => seen.dispatch.some(([e, p]) => e === 'audit' && p.type === 'access.granted' && p.controllerId === 'ctl-sofa-01'));
    expect(seen.dispatch.some(([e, p]) => e === 'grant' && p.id === grant.id && p.status === 'active')).toBe(true);
    expect(seen.brf.some(([e, p]) => JSON.stringify(p).includes(grant.id) || (e === 'audit' && p.controllerId === 'ctl-sofa-01'))).toBe(false);
    for (const s of sockets) s.close();

    const revoked = await api(`/api/v1/grants/${grant.id}/revoke`, { token, method: 'POST' });
    expect(revoked.body.status).toBe('revoked');
    await until(() => street?.grants.length === 0);
    expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'denied' });
  });

  it('blocking a lost tag takes it off every live grant at once; the unit\'s other tag still works', async () => {
    const token = await login('dispatch');
    const inc = await api('/api/v1/incidents', { token, body: { kind: 'ambulance', location: { lat: 59.3146, lng: 18.0745 } } });
    const created = await api(`/api/v1/incidents/${String(inc.body.id)}/grants`, { token, body: { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: 20 } });
    const grant = created.body.grant as { id: string };
    await until(async () => (await api(`/api/v1/grants/${grant.id}`, { token })).body.status === 'active');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    expect(street?.presentTag('entre', 'F1231002').result).toBe('granted');
    const blocked = await api('/api/v1/tags/tag-rtj-2310-2/block', { token, method: 'POST' });
    expect(blocked.status, JSON.stringify(blocked.body)).toBe(200);
    await until(() => street?.presentTag('entre', 'F1231002').result === 'denied');
    expect(street?.presentTag('entre', 'F1231001').result).toBe('granted');
    await api(`/api/v1/grants/${grant.id}/revoke`, { token, method: 'POST' });
  });

  it('refuses a grant the building policy does not allow, and bad bodies, with codes and no change', async () => {
    const token = await login('dispatch');
    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.31, lng: 18.07 } } });
    const before = (await gw.store.list('grants', { limit: 1000 })).length;
    const id = String(inc.body.id);
    const cases: [unknown, string][] = [
      [{ buildingId: 'bld-09', doorIds: ['door-09-1'], unitIds: ['unit-rtj-2310'], minutes: 10 }, 'policy-violation'],
      [{ buildingId: 'bld-01', doorIds: ['door-01-5'], unitIds: ['unit-rtj-2310'], minutes: 10 }, 'policy-violation'],
      [{ buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: 600 }, 'policy-violation'],
      [{ buildingId: 'bld-01', doorIds: [], unitIds: ['unit-rtj-2310'], minutes: 10 }, 'validation-failed'],
      [{ buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: '10' }, 'validation-failed'],
      [{ buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: 10, admin: true }, 'validation-failed'],
    ];
    for (const [body, code] of cases) {
      const r = await api(`/api/v1/incidents/${id}/grants`, { token, body });
      expect(r.body.error?.code, JSON.stringify(body)).toBe(code);
    }
    expect((await api(`/api/v1/incidents/${id}/grants`, { token: await login('owner'), body: cases[0]?.[0] })).status).toBe(403);
    expect((await gw.store.list('grants', { limit: 1000 })).length).toBe(before);
  });
});
