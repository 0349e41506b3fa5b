// The HTTP actions of issue 4, called through their route handlers with a collecting sink:
// incidents, grants and pulses (actor the user, recorded before the change), tag blocks and
// policy changes, and the auth hook on every login path (with a reason, never the password).
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { adminRoutes } from '../../../src/features/admin/index.js';
import { LoginLimiter } from '../../../src/features/auth/login-limiter.js';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { authRoutes, type AuthEvent } from '../../../src/features/auth/routes.js';
import type { TokenService } from '../../../src/features/auth/tokens.js';
import { GrantService } from '../../../src/features/grants/grant-service.js';
import { incidentRoutes } from '../../../src/features/incidents/routes.js';
import type { StorePort } from '../../../src/store/port.js';
import { ADMIN, call, CollectingSink, DISPATCHER, memoryStore } from './fakes.js';

const T0 = 1_764_330_000_000;
const user = (p: { userId: string }) => ({ kind: 'user', id: p.userId });

async function seed(store: StorePort) {
  await store.insert('organisations', { id: 'org-1', name: 'Owner', kind: 'owner', createdAt: T0 });
  await store.insert('buildings', {
    id: 'bld-1', orgId: 'org-1', name: 'B', address: 'A', location: { lat: 59.3, lng: 18.0 },
    policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: T0, updatedAt: T0,
  });
  await store.insert('agencies', { id: 'ag-1', name: 'Fire', kind: 'fire' });
  await store.insert('units', { id: 'unit-1', agencyId: 'ag-1', callSign: 'RTJ 2310' });
  await store.insert('tags', { id: 'tag-1', uid: '04C0FFEE01', label: 'RTJ #1', unitId: 'unit-1', status: 'active' });
  await store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'Street', kind: 'entrance', routeOrder: 1, controllerId: 'ctl-a', ref: 'street', pulseSeconds: 5, emergency: true });
}

async function incidents() {
  const store = await memoryStore();
  await seed(store);
  const audit = new CollectingSink();
  const pulses: string[] = [];
  const grants = new GrantService({ store, syncer: { sync: () => Promise.resolve() }, logger: silentLogger, audit });
  const routes = incidentRoutes({ store, grants, audit, pulse: (c, door) => Promise.resolve(String(pulses.push(`${c}/${door}`))) });
  return { store, audit, pulses, routes };
}

describe('incident routes', () => {
  it('audits opening, granting, extending, revoking, pulsing and closing, actor the user', async () => {
    const w = await incidents();
    const inc = (await call(w.routes, 'post', '/api/v1/incidents', { principal: DISPATCHER, body: { kind: 'fire', ref: 'CAD-1', location: { lat: 59.3, lng: 18.0 } } })) as { id: string };
    expect(w.audit.inputs[0]).toEqual({ type: 'incident.opened', actor: user(DISPATCHER), incidentId: inc.id, data: { kind: 'fire', ref: 'CAD-1', location: { lat: 59.3, lng: 18.0 } }, dedupe: `opened:${inc.id}` });

    const body = { buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], minutes: 10 };
    const { grant } = (await call(w.routes, 'post', '/api/v1/incidents/{id}/grants', { principal: DISPATCHER, params: { id: inc.id }, body })) as { grant: { id: string } };
    const second = (await call(w.routes, 'post', '/api/v1/incidents/{id}/grants', { principal: DISPATCHER, params: { id: inc.id }, body })) as { grant: { id: string } };
    await call(w.routes, 'post', '/api/v1/grants/{id}/extend', { principal: ADMIN, params: { id: grant.id }, body: { minutes: 5 } });
    await call(w.routes, 'post', '/api/v1/grants/{id}/revoke', { principal: ADMIN, params: { id: grant.id } });
    await call(w.routes, 'post', '/api/v1/doors/{id}/pulse', { principal: DISPATCHER, params: { id: 'door-1' }, body: { seconds: 4, incidentId: inc.id } });
    await call(w.routes, 'post', '/api/v1/incidents/{id}/close', { principal: ADMIN, params: { id: inc.id } });

    expect(w.audit.inputs.slice(1).map((i) => [i.type, i.actor, i.grantId ?? i.doorId ?? i.incidentId])).toEqual([
      ['grant.created', user(DISPATCHER), grant.id],
      ['grant.created', user(DISPATCHER), second.grant.id],
      ['grant.extended', user(ADMIN), grant.id],
      ['grant.revoked', user(ADMIN), grant.id],
      ['door.pulse.requested', user(DISPATCHER), 'door-1'],
      ['incident.closed', user(ADMIN), inc.id],
      ['grant.revoked', user(ADMIN), second.grant.id],
    ]);
    expect(w.audit.inputs.find((i) => i.type === 'door.pulse.requested')).toEqual({
      type: 'door.pulse.requested', actor: user(DISPATCHER), buildingId: 'bld-1', incidentId: inc.id, doorId: 'door-1', controllerId: 'ctl-a', data: { seconds: 4, door: 'street' },
    });
    expect(w.audit.inputs.at(-1)).toMatchObject({ reason: 'incident closed', incidentId: inc.id, buildingId: 'bld-1' });
  });

  it('opens no door and no incident when the entry cannot be stored', async () => {
    const w = await incidents();
    await w.store.insert('incidents', { id: 'inc-1', kind: 'fire', location: { lat: 59.3, lng: 18.0 }, status: 'open', buildingIds: [], openedBy: 'u', openedAt: T0 });
    w.audit.failures = 2;
    await expect(call(w.routes, 'post', '/api/v1/doors/{id}/pulse', { principal: DISPATCHER, params: { id: 'door-1' }, body: { seconds: 4, incidentId: 'inc-1' } })).rejects.toBe(w.audit.error);
    expect(w.pulses).toEqual([]);
    await expect(call(w.routes, 'post', '/api/v1/incidents', { principal: DISPATCHER, body: { kind: 'fire', location: { lat: 59.3, lng: 18.0 } } })).rejects.toBe(w.audit.error);
    expect((await w.store.list('incidents')).map((i) => i.id)).toEqual(['inc-1']);
  });
});

describe('admin routes', () => {
  it('audits a tag block (once) and a policy change with the old policy', async () => {
    const store = await memoryStore();
    await seed(store);
    const audit = new CollectingSink();
    const blocked: string[] = [];
    const routes = adminRoutes({ store, audit, hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }), onTagBlocked: (t) => Promise.resolve(void blocked.push(t.id)) });
    await call(routes, 'post', '/api/v1/tags/{id}/block', { principal: DISPATCHER, params: { id: 'tag-1' } });
    await call(routes, 'post', '/api/v1/tags/{id}/block', { principal: DISPATCHER, params: { id: 'tag-1' } });
    expect(blocked).toEqual(['tag-1', 'tag-1']);
    expect(audit.inputs).toEqual([
      { type: 'tag.blocked', actor: user(DISPATCHER), tagId: 'tag-1', unitId: 'unit-1', reason: 'blocked', data: { label: 'RTJ #1', previousStatus: 'active' } },
    ]);

    const policy = { enabled: false, maxMinutes: 20, allowedAgencyIds: ['ag-1'], doorIds: ['door-1'] };
    await call(routes, 'put', '/api/v1/buildings/{id}/policy', { principal: ADMIN, params: { id: 'bld-1' }, body: policy });
    expect(audit.inputs.at(-1)).toEqual({
      type: 'policy.changed', actor: user(ADMIN), buildingId: 'bld-1',
      data: { policy, previous: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] } },
    });
    audit.failures = 1;
    await expect(call(routes, 'put', '/api/v1/buildings/{id}/policy', { principal: ADMIN, params: { id: 'bld-1' }, body: { ...policy, maxMinutes: 5 } })).rejects.toBe(audit.error);
    expect((await store.get('buildings', 'bld-1'))?.policy.maxMinutes).toBe(20);
  });
});

describe('auth routes', () => {
  async function auth(onAuth?: (e: AuthEvent) => Promise<void>) {
    const store = await memoryStore();
    const hasher = new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 });
    const users = [
      { id: 'usr-1', username: 'ada', displayName: 'Ada', role: 'dispatcher' as const, passwordHash: await hasher.hash('right-password-1'), disabled: false, createdAt: T0 },
      { id: 'usr-2', username: 'bob', displayName: 'Bob', role: 'dispatcher' as const, passwordHash: await hasher.hash('right-password-2'), disabled: true, createdAt: T0 },
    ];
    for (const u of users) await store.insert('users', u);
    const events: AuthEvent[] = [];
    let sessions = 0;
    const tokens = {
      startSession: () => Promise.resolve({ accessToken: `a${++sessions}`, accessExpiresAt: 1, refreshToken: 'r', refreshExpiresAt: 2 }),
      logout: () => Promise.resolve(),
    } as unknown as TokenService;
    const routes = authRoutes({
      store,
      tokens,
      hasher,
      limiter: new LoginLimiter({ store, perUser: { max: 2, windowMs: 60_000 } }),
      findUser: (name) => Promise.resolve(users.find((u) => u.username === name)),
      onAuth: onAuth ?? ((e) => Promise.resolve(void events.push(e))),
    });
    const login = (username: string, password: string) => call(routes, 'post', '/api/v1/auth/login', { body: { username, password } });
    return { routes, events, login, sessions: () => sessions };
  }

  it('reports every login, refused login (with its reason) and logout, never the password', async () => {
    const w = await auth();
    await w.login('ada', 'right-password-1');
    await expect(w.login('ada', 'wrong-password-9')).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(w.login('bob', 'right-password-2')).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(w.login('nobody', 'some-password-3')).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(w.login('ada', 'wrong-password-9')).rejects.toMatchObject({ code: 'rate-limited' });
    await call(w.routes, 'post', '/api/v1/auth/logout', { principal: { userId: 'usr-1', role: 'dispatcher' }, body: {} });
    const ip = '203.0.113.7';
    expect(w.events).toEqual([
      { type: 'login', username: 'ada', userId: 'usr-1', ip },
      { type: 'login-failed', username: 'ada', userId: 'usr-1', ip, reason: 'bad-password' },
      { type: 'login-failed', username: 'bob', userId: 'usr-2', ip, reason: 'disabled' },
      { type: 'login-failed', username: 'nobody', ip, reason: 'unknown-user' },
      { type: 'login-failed', username: 'ada', ip, reason: 'rate-limited' },
      { type: 'logout', username: 'ada', userId: 'usr-1', ip },
    ]);
    const text = JSON.stringify(w.events);
    for (const pw of ['right-password-1', 'wrong-password-9', 'right-password-2', 'some-password-3']) expect(text).not.toContain(pw);
  });

  it('refuses a login whose entry cannot be stored', async () => {
    const err = new Error('store unavailable: audit');
    const w = await auth((e) => (e.type === 'login' ? Promise.reject(err) : Promise.resolve()));
    await expect(w.login('ada', 'right-password-1')).rejects.toBe(err);
    expect(w.sessions()).toBe(0);
  });
});
