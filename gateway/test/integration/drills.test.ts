// Readiness and drills (issue 8, DESIGN §9) on the assembled demo gateway, in process: embedded
// aedes and store, the demo district's reference controllers, the HTTP API and socket.io clients
// for a dispatcher, the building's owner and another organisation's owner.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { silentLogger, type AuditItem, type ProvisioningBundle } from '@smart-passage/protocol';
import { MemoryStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import type { Drill } from '../../src/domain/types.js';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { DrillService } from '../../src/features/drills/drill-service.js';
import type { BuildingReadiness } from '../../src/features/readiness/readiness.js';
import type { ClientToServerEvents, RealtimeAlert, ServerToClientEvents } from '../../src/features/realtime/events.js';
import { Gateway } from '../../src/gateway.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
type Who = keyof typeof PASSWORDS;
/** Götgatshuset: owned by Söderporten (user `owner`), two controllers; `owner-brf` is another organisation. */
const BUILDING = 'bld-01';
const dir = mkdtempSync(join(tmpdir(), 'sp-drills-'));
let gw: Gateway;
const tokens = {} as Record<Who, string>;
type Client = ClientSocket<ServerToClientEvents, ClientToServerEvents>;
const sockets: Client[] = [];
const seen: Record<'dispatch' | 'owner' | 'owner-brf', { readiness: BuildingReadiness[]; alert: RealtimeAlert[] }> = {
  dispatch: { readiness: [], alert: [] },
  owner: { readiness: [], alert: [] },
  'owner-brf': { readiness: [], alert: [] },
};
/** Commands the controllers answered and door events they sent, from the gateway's own bridge. */
const replies: string[] = [];
const doorEvents: string[] = [];

async function api(path: string, o: { token?: string; body?: unknown; method?: string } = {}): Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const until = async (cond: () => Promise<boolean> | boolean, what: string, ms = 15_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

const readiness = async (id = BUILDING): Promise<BuildingReadiness> => (await api(`/api/v1/buildings/${id}/readiness`, { token: tokens.dispatch })).body as unknown as BuildingReadiness;
const drillNow = async (who: Who = 'dispatch', id = BUILDING) => api(`/api/v1/buildings/${id}/drills`, { token: tokens[who], method: 'POST' });
const auditOf = async (types: string, id = BUILDING): Promise<AuditItem[]> =>
  (await api(`/api/v1/audit?buildingId=${id}&type=${types}&limit=1000`, { token: tokens.admin })).body['items'] as AuditItem[];
const lastReadiness = (who: keyof typeof seen, id = BUILDING) => seen[who].readiness.filter((r) => r.buildingId === id).at(-1);
const controllersOf = async (id: string): Promise<string[]> => [...new Set((await gw.store.list('doors', { where: { field: 'buildingId', value: id } })).filter((d) => d.emergency).map((d) => d.controllerId))].sort();
const demoController = (id: string): ReferenceController => gw.demo!.controllers.find((c) => c.id === id)!;

beforeAll(async () => {
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    env: {},
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
    // Short waits; no schedule tick or sweep of its own: the tests tick when they mean to.
    drills: { deliveryTimeoutMs: 1500, replyTimeoutMs: 1500, pollMs: 20, tickMs: 0, sweepMs: 0 },
  });
  await gw.start();
  gw.bridge.on('reply', (ctrl, body) => replies.push(`${ctrl}:${body.status}`));
  gw.bridge.on('event', (ctrl, msg) => {
    if (msg.body.kind === 'access' || (msg.body.kind === 'door' && msg.body.state === 'unlocked')) doorEvents.push(`${ctrl}:${JSON.stringify(msg.body)}`);
  });
  for (const who of Object.keys(PASSWORDS) as Who[]) {
    const r = await api('/api/v1/auth/login', { body: { username: who, password: PASSWORDS[who] } });
    expect(r.status).toBe(200);
    tokens[who] = r.body['accessToken'] as string;
  }
  for (const who of ['dispatch', 'owner', 'owner-brf'] as const) {
    const s: Client = connectClient(gw.httpUrl, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: tokens[who] } });
    sockets.push(s);
    s.on('readiness', (r) => seen[who].readiness.push(r));
    s.on('alert', (a) => seen[who].alert.push(a));
    await new Promise<void>((resolve, reject) => {
      s.once('snapshot', () => resolve());
      s.once('connect_error', reject);
    });
  }
  // Every controller of the building online before the first drill.
  const ctrls = await controllersOf(BUILDING);
  await until(async () => (await Promise.all(ctrls.map((c) => gw.store.get('controllerLive', c)))).every((l) => l?.online === true), 'the demo controllers online');
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.disconnect();
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('readiness and drills', () => {
  it('before any drill the building is degraded ("no drill has been run"), and the map lists every building in scope', async () => {
    const r = await readiness();
    expect(r.state).toBe('degraded');
    expect(r.reasons.map((x) => x.code)).toEqual(['drill-never-run']);
    const all = (await api('/api/v1/readiness', { token: tokens.dispatch })).body['items'] as BuildingReadiness[];
    expect(all.length).toBe(12);
    // Södermannagatan 21: the owner switched emergency access off.
    expect(all.filter((x) => x.state === 'no-access').map((x) => x.reasons[0]?.code)).toContain('access-disabled');
    const mine = (await api('/api/v1/readiness', { token: tokens.owner })).body['items'] as BuildingReadiness[];
    const theirs = (await api('/api/v1/readiness', { token: tokens['owner-brf'] })).body['items'] as BuildingReadiness[];
    expect(mine.map((x) => x.buildingId)).toContain(BUILDING);
    expect(theirs.map((x) => x.buildingId)).not.toContain(BUILDING);
    expect(mine.length + theirs.length).toBe(12);
    expect((await api('/api/v1/readiness', { token: tokens.responder })).status).toBe(403);
  });

  it('a drill on healthy controllers passes: granted while the test grant lives, denied after the revoke; nothing opens; audited; readiness turns ready live', async () => {
    const repliesBefore = replies.length;
    const r = await drillNow('dispatch');
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const drill = r.body as unknown as Drill;
    expect(drill.status).toBe('passed');
    expect(drill.reasons).toEqual([]);
    expect(drill.trigger).toBe('manual');
    expect(drill.doors.length).toBe(4); // the four route doors; the flat is not on the route
    for (const d of drill.doors) expect(d).toMatchObject({ ok: true, granted: true, deniedAfter: true });
    // Two access.checks per door, all answered.
    expect(replies.slice(repliesBefore).filter((x) => x.endsWith(':done')).length).toBeGreaterThanOrEqual(8);

    // The test grant: revoked, marked as a drill, never an incident's.
    const g = await gw.store.get('grants', drill.grantId!);
    expect(g).toMatchObject({ status: 'revoked', incidentId: drill.id, unitIds: [] });
    expect(g?.drill?.tagUid).toMatch(/^[0-9A-F]{16}$/);
    expect(await gw.store.get('incidents', drill.id)).toBeUndefined();

    // Nothing opened: no pulse asked for, no access or unlock event from any controller.
    expect(doorEvents).toEqual([]);
    expect(await auditOf('door.pulse.requested,door.pulse.done,access.granted,access.denied')).toEqual([]);
    const entries = await auditOf('drill.started,drill.passed,drill.failed');
    expect(entries.map((e) => e.type)).toEqual(['drill.started', 'drill.passed']);
    expect(entries[0]?.actor).toMatchObject({ kind: 'user' });
    expect(entries[1]).toMatchObject({ grantId: drill.grantId, data: { drillId: drill.id } });

    // Live: ready, to dispatch and to the owner, never to another organisation's owner.
    await until(() => lastReadiness('dispatch')?.state === 'ready', 'readiness ready on the dispatcher socket');
    await until(() => lastReadiness('owner')?.state === 'ready', 'readiness ready on the owner socket');
    expect(lastReadiness('owner-brf')).toBeUndefined();
    const now = await readiness();
    expect(now).toMatchObject({ state: 'ready', reasons: [], lastDrill: { id: drill.id, status: 'passed' } });

    // History, newest first, for the owner too; not for another organisation's owner.
    const hist = await api(`/api/v1/buildings/${BUILDING}/drills`, { token: tokens.owner });
    expect((hist.body['items'] as Drill[])[0]).toMatchObject({ id: drill.id, status: 'passed' });
    expect((await api(`/api/v1/buildings/${BUILDING}/drills`, { token: tokens['owner-brf'] })).status).toBe(404);
  });

  it('who may run one: admin, dispatcher and the owner of that organisation; another owner gets 404, a responder 403', async () => {
    expect((await drillNow('owner-brf')).status).toBe(404);
    expect((await drillNow('responder')).status).toBe(403);
    // Södermannagatan 21: emergency access off, nothing to drill (and no alert for it).
    const off = await drillNow('dispatch', 'bld-09');
    expect(off.status).toBe(409);
    expect(off.body.error?.code).toBe('conflict');
    expect(await gw.store.list('drills', { where: { field: 'buildingId', value: 'bld-09' } })).toEqual([]);
    const own = await drillNow('owner');
    expect(own.status).toBe(201);
    expect((own.body as unknown as Drill).status).toBe('passed');
  });

  it('a controller going offline turns readiness offline live; a drill then fails, alerts dispatch and the owner only, and readiness stays degraded until a drill passes', async () => {
    const [first] = await controllersOf(BUILDING);
    const ctl = demoController(first!);
    await ctl.stop();
    await until(() => lastReadiness('dispatch')?.state === 'offline', 'readiness offline on the dispatcher socket');
    expect(lastReadiness('dispatch')?.reasons.some((x) => x.code === 'controller-offline' && x.controllerId === first)).toBe(true);

    const r = await drillNow('dispatch');
    expect(r.status).toBe(201);
    const drill = r.body as unknown as Drill;
    expect(drill.status).toBe('failed');
    const offlineDoors = drill.doors.filter((d) => d.controllerId === first);
    expect(offlineDoors.length).toBeGreaterThan(0);
    for (const d of offlineDoors) expect(d).toMatchObject({ ok: false, reason: 'controller offline' });
    // The other controller's doors were drilled and passed.
    for (const d of drill.doors.filter((x) => x.controllerId !== first)) expect(d.ok).toBe(true);
    expect(drill.reasons.every((x) => x.endsWith('controller offline'))).toBe(true);
    expect((await gw.store.get('grants', drill.grantId!))?.status).toBe('revoked');

    const failed = (await auditOf('drill.failed')).at(-1);
    expect(failed).toMatchObject({ type: 'drill.failed', data: { drillId: drill.id } });
    expect(failed?.reason).toContain('controller offline');

    await until(() => seen.dispatch.alert.some((a) => a.drillId === drill.id), 'the alert on the dispatcher socket');
    await until(() => seen.owner.alert.some((a) => a.drillId === drill.id), 'the alert on the owner socket');
    expect(seen['owner-brf'].alert).toEqual([]);
    expect(seen.dispatch.alert.find((a) => a.drillId === drill.id)).toMatchObject({ kind: 'drill-failed', buildingId: BUILDING, buildingName: 'Götgatshuset' });

    // Back online: degraded, because the last drill failed; a passing drill makes it ready again.
    await ctl.start();
    await until(() => lastReadiness('dispatch')?.state === 'degraded', 'readiness degraded after the controller is back');
    expect(lastReadiness('dispatch')?.reasons.map((x) => x.code)).toEqual(['drill-failed']);
    const again = await drillNow('dispatch');
    expect((again.body as unknown as Drill).status).toBe('passed');
    await until(() => lastReadiness('dispatch')?.state === 'ready', 'readiness ready after a passing drill');
  });

  it('fails when a controller refuses the test tag (its clock is not trusted)', async () => {
    const target = 'bld-02';
    const [ctrlId] = await controllersOf(target);
    const secrets = JSON.parse(readFileSync(join(dir, 'demo', 'secrets.json'), 'utf8')) as { bundles: Record<string, ProvisioningBundle> };
    const bundle = secrets.bundles[ctrlId!]!;
    const original = demoController(ctrlId!);
    await original.stop();
    const gatewayKeys = [{ kid: gw.keys.gateway.current.kid, publicKey: gw.keys.gateway.current.publicKey }];
    const untrusted = new ReferenceController({ bundle: { ...bundle, mqtt: { ...bundle.mqtt, url: gw.mqttUrl }, gatewayKeys }, store: new MemoryStateStore(), clockSynced: false });
    await untrusted.start();
    try {
      await until(async () => (await gw.store.get('controllerLive', ctrlId!))?.online === true, 'the untrusted controller online');
      const r = await drillNow('admin', target);
      const drill = r.body as unknown as Drill;
      expect(drill.status).toBe('failed');
      const mine = drill.doors.filter((d) => d.controllerId === ctrlId);
      expect(mine.length).toBeGreaterThan(0);
      for (const d of mine) expect(d.ok).toBe(false);
      expect(drill.reasons.join('\n')).toMatch(/clock-unsafe|not delivered/);
      await until(() => seen.dispatch.alert.some((a) => a.drillId === drill.id), 'the alert for the refusing controller');
      expect(seen['owner-brf'].alert).toEqual([]); // bld-02 is Söderporten's too
      expect((await readiness(target)).state).toBe('degraded');
    } finally {
      await untrusted.stop();
      await original.start();
    }
  });

  it('the owner sets a schedule; a due scheduled drill runs once with two instances on one store (lease)', async () => {
    const target = 'bld-05';
    expect((await api(`/api/v1/buildings/${target}/drill-schedule`, { token: tokens['owner-brf'], method: 'PUT', body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' } })).status).toBe(404);
    expect((await api(`/api/v1/buildings/${target}/drill-schedule`, { token: tokens.dispatch, method: 'PUT', body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' } })).status).toBe(403);
    const bad = await api(`/api/v1/buildings/${target}/drill-schedule`, { token: tokens.owner, method: 'PUT', body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'Mars/Olympus' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe('validation-failed');
    expect((await api(`/api/v1/buildings/${target}/drill-schedule`, { token: tokens.owner, method: 'PUT', body: { enabled: true, everyDays: 0, hour: 3, timeZone: 'UTC' } })).status).toBe(400);
    const set = await api(`/api/v1/buildings/${target}/drill-schedule`, { token: tokens.owner, method: 'PUT', body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' } });
    expect(set.status).toBe(200);
    const nextAt = set.body['nextAt'] as number;
    expect(nextAt).toBeGreaterThan(Date.now());
    expect(nextAt - Date.now()).toBeLessThanOrEqual(86_400_000);
    // Not due yet: a tick runs nothing.
    await gw.drills.tick();
    expect(await gw.store.list('drills', { where: { field: 'buildingId', value: target } })).toEqual([]);

    // Make it due, and tick two instances at once: the second is another gateway on the same store.
    await gw.store.update('drillSchedules', target, (s) => ({ ...s, nextAt: Date.now() - 1 }));
    const other = new DrillService({ store: gw.store, grants: gw.grants, bridge: gw.bridge, audit: gw.audit, logger: silentLogger, owner: 'other-instance', deliveryTimeoutMs: 1500, replyTimeoutMs: 1500, pollMs: 20, tickMs: 0 });
    await other.start();
    try {
      await Promise.all([gw.drills.tick(), other.tick(), gw.drills.tick(), other.tick()]);
      await until(async () => (await gw.store.list('drills', { where: { field: 'buildingId', value: target } })).some((d) => d.status !== 'running'), 'the scheduled drill done');
      await other.tick();
      await gw.drills.tick();
      const drills = await gw.store.list('drills', { where: { field: 'buildingId', value: target } });
      expect(drills.length).toBe(1);
      expect(drills[0]).toMatchObject({ trigger: 'schedule', status: 'passed' });
      expect((await auditOf('drill.started', target)).length).toBe(1);
      const s = await gw.store.get('drillSchedules', target);
      expect(s?.nextAt).toBeGreaterThan(Date.now());
      expect(s?.last).toMatchObject({ id: drills[0]?.id, status: 'passed' });
    } finally {
      await other.stop();
    }
  });

  it('a drill left running by a gateway that died is failed at the next start, and its test grant revoked', async () => {
    const target = 'bld-07';
    const doors = (await gw.store.list('doors', { where: { field: 'buildingId', value: target } })).filter((d) => d.emergency);
    const drillId = 'drl-crashed';
    const g = await gw.grants.createDrill({ drillId, buildingId: target, doorIds: doors.map((d) => d.id), tagUid: '0A0B0C0D0E0F1011', durationMs: 60_000 });
    await gw.store.insert('drills', { id: drillId, buildingId: target, status: 'running', trigger: 'schedule', startedAt: Date.now(), grantId: g.id, doors: [], reasons: [] });
    // The dead instance's lease ran out (here: it never held one); a starting instance recovers.
    const next = new DrillService({ store: gw.store, grants: gw.grants, bridge: gw.bridge, audit: gw.audit, logger: silentLogger, owner: 'restarted-instance', tickMs: 0 });
    await next.start();
    await next.stop();
    expect(await gw.store.get('drills', drillId)).toMatchObject({ status: 'failed', reasons: ['interrupted: the gateway running the drill stopped'] });
    expect((await gw.store.get('grants', g.id))?.status).toBe('revoked');
    expect((await auditOf('drill.failed', target)).at(-1)).toMatchObject({ data: { drillId } });
  });

  it('a drill grant never reaches a socket as an emergency grant', async () => {
    const s: Client = connectClient(gw.httpUrl, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: tokens.dispatch } });
    sockets.push(s);
    const grants: unknown[] = [];
    s.on('grant', (g) => grants.push(g));
    const snapshot = await new Promise<{ grants: unknown[] }>((resolve) => s.once('snapshot', resolve));
    expect(snapshot.grants).toEqual([]);
    expect((await drillNow('dispatch')).status).toBe(201);
    expect(grants).toEqual([]);
  });
});
