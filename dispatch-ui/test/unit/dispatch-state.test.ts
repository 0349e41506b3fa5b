// DispatchState against a fake Api injected through its constructor (STYLE: no module mocking):
// the grant flow (a new incident first, then the grant, the PIN handed back once), the default
// route, readiness as the gateway computes it (REST, then socket deltas), and API errors shown as text.
import { describe, expect, it } from 'vitest';
import { ApiError, type Api } from '../../src/lib/api/client';
import type { Agency, Building, ControllerLive, Incident, Unit } from '../../src/lib/api/types';
import { BUILDINGS_PAGE, DispatchState } from '../../src/lib/state/dispatch.svelte';
import { LiveState } from '../../src/lib/state/live.svelte';
import { door } from './fixtures';

const building: Building = {
  id: 'bld-1',
  orgId: 'org-1',
  name: 'Götgatan 93',
  address: 'Götgatan 93, Stockholm',
  location: { lat: 59.31, lng: 18.07 },
  policy: { enabled: true, maxMinutes: 45, allowedAgencyIds: [], doorIds: [] },
};
const doors = [door('d2', 2), door('d1', 1), door('d9', 3, { emergency: false })];
const units: Unit[] = [{ id: 'u1', agencyId: 'a1', callSign: 'RTJ 2310' }];
const agencies: Agency[] = [{ id: 'a1', name: 'Fire', kind: 'fire' }];
const live1: ControllerLive = { id: 'ctl-1', online: true, appliedVersion: 4, lastSeq: 0, clockSafe: true, doors: [] };

type Call = { method: string; path: string; body?: unknown; query?: Record<string, unknown> };

function fakeApi(over: { grantError?: ApiError; noMap?: boolean; morePages?: boolean } = {}): { api: Api; calls: Call[] } {
  const calls: Call[] = [];
  const get = (path: string, o?: { query?: Record<string, unknown> }): Promise<unknown> => {
    calls.push({ method: 'GET', path, ...(o?.query ? { query: o.query } : {}) });
    if (path === '/api/v1/buildings' && over.morePages && o?.query?.['after'] === undefined) return Promise.resolve({ items: [{ ...building, id: 'bld-0', name: 'Ö' }], next: 'bld-0' });
    if (path === '/api/v1/buildings') return Promise.resolve({ items: [building] });
    if (path === '/api/v1/readiness') return Promise.resolve({ items: [{ buildingId: 'bld-1', state: 'degraded', reasons: [{ code: 'drill-never-run', text: 'No drill has been run' }] }] });
    if (path === '/api/v1/units') return Promise.resolve({ items: units });
    if (path === '/api/v1/agencies') return Promise.resolve({ items: agencies });
    if (path === '/api/v1/buildings/bld-1/doors') return Promise.resolve({ items: doors });
    if (path === '/api/v1/map' && over.noMap) return Promise.reject(new ApiError(404, 'not-found', 'no such route'));
    return Promise.resolve({ items: [] });
  };
  const post = (path: string, body?: unknown): Promise<unknown> => {
    calls.push({ method: 'POST', path, body });
    if (path === '/api/v1/incidents') {
      const inc: Incident = { id: 'inc-1', kind: 'fire', location: building.location, address: building.address, status: 'open', buildingIds: [], openedBy: 'u', openedAt: 1 };
      return Promise.resolve(inc);
    }
    if (path === '/api/v1/incidents/inc-1/grants') {
      if (over.grantError) return Promise.reject(over.grantError);
      return Promise.resolve({
        grant: { id: 'g1', incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['d1'], unitIds: ['u1'], notBefore: 1, notAfter: 2, status: 'pending', createdBy: 'u', createdAt: 1, deliveries: [] },
        pin: '123456',
      });
    }
    if (path === '/api/v1/buildings/bld-1/drills') return Promise.resolve({ id: 'drl-9', buildingId: 'bld-1', status: 'failed', trigger: 'manual', startedAt: 1, endedAt: 2, doors: [], reasons: ['Street: controller offline'] });
    return Promise.resolve({});
  };
  return { api: { get, post } as unknown as Api, calls };
}

async function loaded(o: Parameters<typeof fakeApi>[0] = {}) {
  const { api, calls } = fakeApi(o);
  const live = new LiveState();
  const ds = new DispatchState(api, live);
  await ds.load();
  return { ds, live, calls };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('DispatchState', () => {
  it('loads everything; a missing map endpoint is no error', async () => {
    const { ds } = await loaded({ noMap: true });
    expect(ds.buildings.map((b) => b.id)).toEqual(['bld-1']);
    expect(ds.units).toHaveLength(1);
    expect(ds.mapConfig).toBeUndefined();
    expect(ds.error).toBeUndefined();
  });

  it('reads the buildings in one request of the largest page the gateway gives, and follows `next` past it', async () => {
    const one = await loaded();
    expect(one.calls.filter((c) => c.path === '/api/v1/buildings')).toEqual([{ method: 'GET', path: '/api/v1/buildings', query: { limit: BUILDINGS_PAGE, after: undefined } }]);
    // The map's view is asked for first: every circle drawn before it comes is drawn again.
    expect(one.calls[0]?.path).toBe('/api/v1/map');
    const two = await loaded({ morePages: true });
    expect(two.calls.filter((c) => c.path === '/api/v1/buildings').map((c) => c.query)).toEqual([
      { limit: BUILDINGS_PAGE, after: undefined },
      { limit: BUILDINGS_PAGE, after: 'bld-0' },
    ]);
    expect(two.ds.buildings.map((b) => b.id)).toEqual(['bld-1', 'bld-0']);
  });

  it("readiness is the gateway's: loaded over REST, then moved by socket deltas; unknown is offline", async () => {
    const { ds, live } = await loaded();
    expect(ds.readiness(building)).toBe('degraded');
    expect(ds.readinessDetail('bld-1')?.reasons.map((r) => r.code)).toEqual(['drill-never-run']);
    // A controller's live state alone no longer decides it (one source of truth).
    live.applyController({ ...live1, online: false });
    expect(ds.readiness(building)).toBe('degraded');
    live.applyReadiness({ buildingId: 'bld-1', state: 'ready', reasons: [], lastDrill: { id: 'drl-1', status: 'passed', at: 5, reasons: [] } });
    expect(ds.readiness(building)).toBe('ready');
    expect(ds.readiness({ ...building, id: 'bld-unknown' })).toBe('offline');
    // A REST answer read before a delta does not overwrite it.
    live.seedReadiness([{ buildingId: 'bld-1', state: 'degraded', reasons: [] }]);
    expect(ds.readiness(building)).toBe('ready');
  });

  it('run drill posts to the building and hands back the drill; busy meanwhile', async () => {
    const { ds, calls } = await loaded();
    const d = await ds.runDrill('bld-1');
    expect(calls.at(-1)).toEqual({ method: 'POST', path: '/api/v1/buildings/bld-1/drills', body: undefined });
    expect(d).toMatchObject({ id: 'drl-9', status: 'failed' });
    expect(ds.busy).toBeUndefined();
  });

  it('selecting a building proposes its emergency route in order and the default minutes', async () => {
    const { ds } = await loaded();
    ds.selectBuilding('bld-1');
    await settle();
    expect(ds.route?.map((d) => d.id)).toEqual(['d1', 'd2']);
    expect([...ds.draftDoors]).toEqual(['d1', 'd2']);
    expect(ds.minutes).toBe(30);
    ds.setMinutes(90);
    expect(ds.minutes).toBe(45);
  });

  it('grant without an incident opens one at the building, then grants; the PIN comes back once', async () => {
    const { ds, live, calls } = await loaded();
    ds.selectBuilding('bld-1');
    await settle();
    expect(ds.draftProblem).toBe('pick at least one unit');
    ds.toggleDoor('d2', false);
    ds.toggleUnit('u1', true);
    ds.setWithPin(true);
    const r = await ds.grant();
    expect(r).toEqual({ pin: '123456' });
    const posts = calls.filter((c) => c.method === 'POST');
    expect(posts.map((c) => c.path)).toEqual(['/api/v1/incidents', '/api/v1/incidents/inc-1/grants']);
    expect(posts[0]?.body).toEqual({ kind: 'fire', location: building.location, address: building.address });
    expect(posts[1]?.body).toEqual({ buildingId: 'bld-1', doorIds: ['d1'], unitIds: ['u1'], pin: true, minutes: 30 });
    expect(ds.selectedIncident?.id).toBe('inc-1');
    expect(live.grants.get('g1')?.pin).toBeUndefined();
    expect(ds.withPin).toBe(false);
  });

  it('an API error is shown with its code, and nothing throws', async () => {
    const { ds } = await loaded({ grantError: new ApiError(422, 'policy-violation', 'the policy allows at most 45 minutes') });
    ds.selectBuilding('bld-1');
    await settle();
    ds.toggleUnit('u1', true);
    await expect(ds.grant()).resolves.toBeUndefined();
    expect(ds.error).toBe('the policy allows at most 45 minutes (policy-violation)');
    expect(ds.busy).toBeUndefined();
  });
});
