// Issue 5's responder API and map config on the assembled demo gateway over HTTP: a unit's live
// grants with PIN, building and route; "Open door" checked against unit, grant, door, policy and
// time, audited before the command reaches the demo controller.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { Gateway } from '../../src/gateway.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
type Who = keyof typeof PASSWORDS;
const dir = mkdtempSync(join(tmpdir(), 'sp-me-'));
let gw: Gateway;
const tokens = {} as Record<Who, string>;
/** The controllers' replies to commands: `ref` is the command id the API answered. */
const replies: { ctrl: string; ref: string; status: string }[] = [];

interface Reply {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

async function api(path: string, o: { token?: string; body?: unknown; method?: string } = {}): Promise<Reply> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as Reply['body'] };
}

interface MyGrant {
  grant: { id: string; status: string; pin?: string; hasPin: boolean; notAfter: number };
  incident: { id: string; kind: string; address?: string };
  building: { id: string; name: string; address: string; location: { lat: number; lng: number } };
  doors: { id: string; name: string; kind: string; routeOrder: number; canOpen: boolean }[];
}

const myGrants = async (who: Who): Promise<MyGrant[]> => {
  const r = await api('/api/v1/me/grants', { token: tokens[who] });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body['items'] as MyGrant[];
};

async function openIncident(address: string): Promise<string> {
  const r = await api('/api/v1/incidents', { token: tokens.dispatch, body: { kind: 'fire', location: { lat: 59.3135, lng: 18.0718 }, address } });
  expect(r.status).toBe(201);
  return String(r.body['id']);
}

async function grant(incident: string, body: Record<string, unknown>): Promise<{ id: string; pin?: string }> {
  const r = await api(`/api/v1/incidents/${incident}/grants`, { token: tokens.dispatch, body: { pin: true, minutes: 20, ...body } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return { id: (r.body['grant'] as { id: string }).id, pin: r.body['pin'] as string | undefined };
}

const until = async (cond: () => Promise<boolean> | boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};

/** A stand-in UI build: the gateway serves it with the page CSP. */
const ui = join(dir, 'ui');
mkdirSync(ui);
writeFileSync(join(ui, 'index.html'), '<!doctype html><title>Smart Passage</title>');

beforeAll(async () => {
  gw = new Gateway({
    staticDir: ui,
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    env: {},
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
    map: { tileUrl: 'https://tile.example.org/{z}/{x}/{y}.png', attribution: '© Example tiles' },
  });
  await gw.start();
  gw.bridge.on('reply', (ctrl, body) => replies.push({ ctrl, ref: body.ref, status: body.status }));
  for (const who of Object.keys(PASSWORDS) as Who[]) {
    const r = await api('/api/v1/auth/login', { body: { username: who, password: PASSWORDS[who] } });
    expect(r.status).toBe(200);
    tokens[who] = r.body['accessToken'] as string;
  }
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('GET /api/v1/map', () => {
  it('gives every role the bundled base layer, the configured tiles and a view around the buildings', async () => {
    for (const who of ['dispatch', 'owner', 'responder', 'admin'] as const) {
      const r = await api('/api/v1/map', { token: tokens[who] });
      expect(r.status, who).toBe(200);
      const map = r.body as { tileUrl?: string; attribution?: string; basemap: { type: string; features: { properties: { kind: string } }[] }; center: { lat: number; lng: number }; zoom: number };
      expect(map.tileUrl).toBe('https://tile.example.org/{z}/{x}/{y}.png');
      expect(map.attribution).toBe('© Example tiles');
      expect(map.basemap.type).toBe('FeatureCollection');
      expect(map.basemap.features.filter((f) => f.properties.kind === 'building')).toHaveLength(12);
      expect(map.basemap.features.some((f) => f.properties.kind === 'street')).toBe(true);
      // Södermalm, framed at street level.
      expect(map.center.lat).toBeCloseTo(59.312, 2);
      expect(map.center.lng).toBeCloseTo(18.078, 2);
      expect(map.zoom).toBeGreaterThanOrEqual(14);
      expect(map.zoom).toBeLessThanOrEqual(17);
      expect(r.headers.get('cache-control')).toBe('private, max-age=300');
    }
    expect((await api('/api/v1/map')).status).toBe(401);
  });

  it('serves the UI at / and on client routes, and lets it load the tiles: their origin is in the page CSP img-src', async () => {
    const res = await fetch(`${gw.httpUrl}/`);
    expect(await res.text()).toContain('<title>Smart Passage</title>');
    expect((await fetch(`${gw.httpUrl}/dispatch`)).status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/img-src 'self' data: blob: https:\/\/tile\.example\.org;/);
  });
});

describe('the responder API', () => {
  let incident = '';
  let route: { id: string; pin?: string };

  beforeAll(async () => {
    incident = await openIncident('Götgatan 78');
    // Given out of route order: the answer lists them in route order.
    route = await grant(incident, { buildingId: 'bld-01', doorIds: ['door-01-3', 'door-01-1', 'door-01-2'], unitIds: ['unit-rtj-2310'] });
  });

  it('lists the unit\'s live grants with PIN, incident, building and the doors in route order; nothing for another unit or an admin', async () => {
    const mine = await myGrants('responder');
    const g = mine.find((x) => x.grant.id === route.id);
    expect(g).toBeDefined();
    expect(g!.grant.pin).toBe(route.pin);
    expect(g!.grant.pin).toMatch(/^\d{6}$/);
    expect(g!.incident).toEqual({ id: incident, kind: 'fire', address: 'Götgatan 78' });
    expect(g!.building).toMatchObject({ id: 'bld-01', name: expect.any(String) as string, address: expect.stringContaining('Götgatan 78') as string });
    expect(g!.building.location.lat).toBeCloseTo(59.3135, 3);
    expect(g!.doors.map((d) => [d.id, d.routeOrder, d.canOpen])).toEqual([
      ['door-01-1', 1, true],
      ['door-01-2', 2, true],
      ['door-01-3', 3, true],
    ]);
    expect(await myGrants('amb3010')).toEqual([]);
    expect(await myGrants('admin')).toEqual([]);
    for (const who of ['dispatch', 'owner'] as const) expect((await api('/api/v1/me/grants', { token: tokens[who] })).status).toBe(403);
  });

  it('opens a granted door: 202 with a command id, audited as door.pulse.requested by the responder before the controller gets door.pulse', async () => {
    await until(async () => (await gw.store.list('controllerLive', { limit: 100 })).filter((l) => l.online).length === 15);
    const r = await api('/api/v1/me/doors/door-01-2/open', { token: tokens.responder, body: { grantId: route.id } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const commandId = r.body['commandId'] as string;
    expect(commandId).toEqual(expect.any(String));
    // The door's controller did it.
    await until(() => replies.some((x) => x.ref === commandId));
    expect(replies.find((x) => x.ref === commandId)).toMatchObject({ status: 'done' });

    const audit = await api(`/api/v1/audit?buildingId=bld-01`, { token: tokens.dispatch });
    expect(audit.status).toBe(200);
    const items = audit.body['items'] as { type: string; actor: { kind: string; id?: string }; grantId?: string; doorId?: string; unitId?: string }[];
    const entry = items.find((i) => i.type === 'door.pulse.requested' && i.doorId === 'door-01-2');
    expect(entry).toMatchObject({ actor: { kind: 'user', id: 'user-responder' }, grantId: route.id, unitId: 'unit-rtj-2310' });
  });

  it('refuses: another unit\'s grant and a door not in the grant (404), a door the policy closes (422 policy-violation), an ended grant (409), other roles (403)', async () => {
    const amb = await api('/api/v1/me/doors/door-01-1/open', { token: tokens.amb3010, body: { grantId: route.id } });
    expect([amb.status, amb.body.error?.code]).toEqual([404, 'not-found']);
    const notInGrant = await api('/api/v1/me/doors/door-01-4/open', { token: tokens.responder, body: { grantId: route.id } });
    expect([notInGrant.status, notInGrant.body.error?.code]).toEqual([404, 'not-found']);
    const noGrant = await api('/api/v1/me/doors/door-01-1/open', { token: tokens.responder, body: { grantId: 'grant-nope' } });
    expect([noGrant.status, noGrant.body.error?.code]).toEqual([404, 'not-found']);
    for (const who of ['dispatch', 'owner'] as const) {
      expect((await api('/api/v1/me/doors/door-01-1/open', { token: tokens[who], body: { grantId: route.id } })).status).toBe(403);
    }

    // The owner narrows the policy to the street door: the stairwell is still granted, not openable.
    const building = await api('/api/v1/buildings/bld-01', { token: tokens.owner });
    const policy = building.body['policy'] as { enabled: boolean; maxMinutes: number; allowedAgencyIds: string[]; doorIds: string[] };
    const put = async (doorIds: string[]) => {
      const res = await fetch(`${gw.httpUrl}/api/v1/buildings/bld-01/policy`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens.owner}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...policy, doorIds }),
      });
      expect(res.status, await res.text()).toBe(200);
    };
    await put(['door-01-1']);
    try {
      const g = (await myGrants('responder')).find((x) => x.grant.id === route.id)!;
      expect(g.doors.map((d) => [d.id, d.canOpen])).toEqual([
        ['door-01-1', true],
        ['door-01-2', false],
        ['door-01-3', false],
      ]);
      const refused = await api('/api/v1/me/doors/door-01-2/open', { token: tokens.responder, body: { grantId: route.id } });
      expect([refused.status, refused.body.error?.code]).toEqual([422, 'policy-violation']);
    } finally {
      await put(policy.doorIds);
    }

    // Revoked: gone from the list, and its doors no longer open.
    expect((await api(`/api/v1/grants/${route.id}/revoke`, { token: tokens.dispatch, method: 'POST' })).status).toBe(200);
    expect((await myGrants('responder')).some((x) => x.grant.id === route.id)).toBe(false);
    const ended = await api('/api/v1/me/doors/door-01-1/open', { token: tokens.responder, body: { grantId: route.id } });
    expect([ended.status, ended.body.error?.code]).toEqual([409, 'conflict']);
  });

  it('an admin may open through any live grant; closing the incident drops the grant from the list', async () => {
    const inc = await openIncident('Götgatan 78');
    const g = await grant(inc, { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'] });
    const r = await api('/api/v1/me/doors/door-01-1/open', { token: tokens.admin, body: { grantId: g.id } });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    // Closing the incident revokes the grant: the responder's list drops it.
    expect((await api(`/api/v1/incidents/${inc}/close`, { token: tokens.dispatch, method: 'POST' })).status).toBe(200);
    expect((await myGrants('responder')).some((x) => x.grant.id === g.id)).toBe(false);
  });
});
