// Issue 8: the offline emergency code end to end (DESIGN §5.7, PROTOCOL §2.6). The assembled demo
// gateway in process (embedded aedes and store, HTTP API), plus one reference controller of our
// own with a FileStateStore, registered through the API: a route is granted, the controller drops
// off the broker, the dispatcher fetches the door codes, the controller takes one once while
// offline, comes back, and its backlog reports the use — audited without the digits, anywhere.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { offlineCode, offlineCodeValidUntil, offlineCodeWindow, streamLogger, type AuditItem, type ProvisioningBundle } from '@smart-passage/protocol';
import { FileStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import type { OfflineCodeView } from '../../src/features/offline-codes/routes.js';
import { Gateway } from '../../src/gateway.js';
import { api as call, until } from '../support/http.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
type Who = keyof typeof PASSWORDS;
const BUILDING = 'bld-01';
const CTRL = 'ctl-offline-code-test';
const dir = mkdtempSync(join(tmpdir(), 'sp-offline-codes-'));
const stateFile = join(dir, 'controller', 'state.json');
let log = '';
let gw: Gateway;
let ctl: ReferenceController;
let bundle: ProvisioningBundle;
const tokens = {} as Record<Who, string>;
const doorIds = { street: '', stair: '' };
let incidentId = '';

const api = <T = Record<string, unknown>>(path: string, who: Who, body?: unknown) => call<T>(gw.httpUrl, path, { token: tokens[who], ...(body !== undefined ? { body } : {}) });
const online = async (want: boolean) => ((await gw.store.get('controllerLive', CTRL))?.online === want ? true : undefined);
const auditOf = async (types: string): Promise<AuditItem[]> => (await api<{ items: AuditItem[] }>(`/api/v1/audit?buildingId=${BUILDING}&type=${types}&limit=1000`, 'admin')).body.items;
const codes = async (who: Who = 'dispatch') => api<{ items: OfflineCodeView[]; nextWindowAt: number }>(`/api/v1/incidents/${incidentId}/offline-codes`, who);

beforeAll(async () => {
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    env: {},
    logger: streamLogger('gateway', 'debug', sink),
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
  await gw.start();
  for (const who of Object.keys(PASSWORDS) as Who[]) {
    const r = await call<{ accessToken: string }>(gw.httpUrl, '/api/v1/auth/login', { body: { username: who, password: PASSWORDS[who] } });
    expect(r.status).toBe(200);
    tokens[who] = r.body.accessToken;
  }
  // A controller of our own, provisioned through the API: its bundle carries the offline secret.
  const reg = await api<ProvisioningBundle>('/api/v1/controllers', 'admin', { id: CTRL, buildingId: BUILDING, vendor: 'ref', doors: [{ ref: 'ofc-street' }, { ref: 'ofc-stair' }] });
  expect(reg.status).toBe(201);
  bundle = reg.body;
  expect(bundle.offlineSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
  for (const [key, ref, order] of [['street', 'ofc-street', 90], ['stair', 'ofc-stair', 91]] as const) {
    const d = await api<{ id: string }>(`/api/v1/buildings/${BUILDING}/doors`, 'admin', { name: `Offline ${key}`, kind: 'entrance', routeOrder: order, controllerId: CTRL, ref });
    expect(d.status).toBe(201);
    doorIds[key] = d.body.id;
  }
  ctl = new ReferenceController({ bundle, store: new FileStateStore(stateFile), logger: streamLogger('controller', 'debug', sink) });
  await ctl.start();
  await until(() => online(true), 10_000, 'our controller online');
}, 60_000);

afterAll(async () => {
  await ctl?.stop();
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('offline emergency code, dispatcher to door and back into the audit trail', () => {
  it('gives no code while the route controller is online', async () => {
    const inc = await api<{ id: string }>('/api/v1/incidents', 'dispatch', { kind: 'fire', location: { lat: 59.31352, lng: 18.07178 } });
    expect(inc.status).toBe(201);
    incidentId = inc.body.id;
    const g = await api<{ grant: { id: string } }>(`/api/v1/incidents/${incidentId}/grants`, 'dispatch', { buildingId: BUILDING, doorIds: [doorIds.street, doorIds.stair], unitIds: ['unit-rtj-2310'], minutes: 30 });
    expect(g.status).toBe(201);
    await until(() => (ctl.grants.some((x) => x.grantId === g.body.grant.id) ? true : undefined), 10_000, 'the grant applied');
    const r = await codes();
    expect(r.status).toBe(200);
    expect(r.body.items).toEqual([]);
    expect(await auditOf('offline-code.issued')).toEqual([]);
  });

  it('only dispatchers and admins may ask, and only for an incident that exists', async () => {
    expect((await codes('responder')).status).toBe(403);
    expect((await codes('owner')).status).toBe(403);
    expect((await api('/api/v1/incidents/inc-nope/offline-codes', 'dispatch')).status).toBe(404);
    expect((await call(gw.httpUrl, `/api/v1/incidents/${incidentId}/offline-codes`, {})).status).toBe(401);
  });

  it('with the controller offline: a code per route door, taken once at its door, reported and audited when back', async () => {
    ctl.goOffline();
    await until(() => online(false), 10_000, 'the gateway to see the controller offline');

    const t = Date.now();
    const r = await codes();
    expect(r.status).toBe(200);
    const w = offlineCodeWindow(r.body.nextWindowAt - 1);
    expect(w).toBeGreaterThanOrEqual(offlineCodeWindow(t));
    expect(r.body.items.map((i) => [i.doorRef, i.controllerId, i.window, i.validUntil])).toEqual([
      ['ofc-street', CTRL, w, offlineCodeValidUntil(w)],
      ['ofc-stair', CTRL, w, offlineCodeValidUntil(w)],
    ]);
    const [street, stair] = r.body.items as [OfflineCodeView, OfflineCodeView];
    // The gateway's code is the one PROTOCOL §2.6 derives from the bundle's secret.
    expect(street.code).toBe(offlineCode({ secret: bundle.offlineSecret!, ctrl: CTRL, door: 'ofc-street', window: w }));
    // Asked twice in the window: the same codes, and one audit entry per door, not one per fetch.
    const again = await codes();
    if (again.body.nextWindowAt === r.body.nextWindowAt) expect(again.body.items.map((i) => i.code)).toEqual([street.code, stair.code]);

    // At the door, while offline: once, then spent. Another door's code, or another controller's, opens nothing.
    expect(ctl.presentCode('ofc-street', stair.code)).toEqual({ result: 'denied', reason: 'unknown' });
    expect(ctl.presentCode('ofc-street', offlineCode({ secret: bundle.offlineSecret!, ctrl: 'ctl-sofa-01', door: 'ofc-street', window: w }))).toEqual({ result: 'denied', reason: 'unknown' });
    expect(ctl.presentCode('ofc-street', street.code)).toEqual({ result: 'granted', reason: 'offline-code' });
    expect(ctl.doorStates().find((d) => d.ref === 'ofc-street')?.locked).toBe(false);
    expect(ctl.presentCode('ofc-street', street.code)).toEqual({ result: 'denied', reason: 'spent' });
    expect(readFileSync(stateFile, 'utf8')).toContain('"spentCodes":[{"door":"ofc-street"');

    // Back online: the backlog reaches the gateway and the trail.
    await ctl.goOnline();
    await until(() => online(true), 10_000, 'the controller back online');
    const granted = await until(async () => {
      const items = (await auditOf('access.granted')).filter((e) => e.controllerId === CTRL);
      return items.length > 0 ? items : undefined;
    }, 10_000, 'access.granted from the backlog');
    expect(granted).toHaveLength(1);
    expect(granted[0]).toMatchObject({ type: 'access.granted', reason: 'offline-code', doorId: doorIds.street, controllerId: CTRL, data: { door: 'ofc-street', credential: 'offline-code', window: w } });
    expect(granted[0]!.grantId).toBeUndefined();
    const denied = await until(async () => {
      const items = (await auditOf('access.denied')).filter((e) => e.controllerId === CTRL);
      return items.length === 3 ? items : undefined;
    }, 10_000, 'the three denials from the backlog');
    expect(denied.map((e) => e.reason).sort()).toEqual(['spent', 'unknown', 'unknown']);

    // (Of window w: a rollover during the test would add the next window's, rightly.)
    const issued = (await auditOf('offline-code.issued')).filter((e) => e.data?.['window'] === w);
    expect(issued.map((e) => [e.doorId, e.controllerId, e.incidentId, e.actor.kind, e.data?.['window'], e.data?.['validUntil']])).toEqual(
      expect.arrayContaining([
        [doorIds.street, CTRL, incidentId, 'user', w, offlineCodeValidUntil(w)],
        [doorIds.stair, CTRL, incidentId, 'user', w, offlineCodeValidUntil(w)],
      ]),
    );
    expect(issued).toHaveLength(2);

    // Online again: no more codes.
    expect((await codes()).body.items).toEqual([]);

    // The digits are nowhere: not in the trail, not in any log line of the gateway or the controller.
    const trail = JSON.stringify((await api<{ items: AuditItem[] }>(`/api/v1/audit?buildingId=${BUILDING}&limit=1000`, 'admin')).body.items);
    expect(log.length).toBeGreaterThan(0);
    for (const c of [street.code, stair.code]) {
      expect(trail).not.toContain(c);
      expect(log).not.toContain(c);
    }
  });

  it('gives no code for a building whose owner switched emergency access off, nor for a closed incident', async () => {
    ctl.goOffline();
    await until(() => online(false), 10_000, 'the controller offline again');
    expect((await codes()).body.items).toHaveLength(2);
    const before = await gw.store.get('buildings', BUILDING);
    await gw.store.update('buildings', BUILDING, (b) => ({ ...b, policy: { ...b.policy, enabled: false } }));
    try {
      expect((await codes()).body.items).toEqual([]);
    } finally {
      await gw.store.update('buildings', BUILDING, (b) => ({ ...b, policy: before!.policy }));
    }
    expect((await call(gw.httpUrl, `/api/v1/incidents/${incidentId}/close`, { token: tokens.dispatch, method: 'POST' })).status).toBe(200);
    expect((await codes()).body.items).toEqual([]);
  });
});
