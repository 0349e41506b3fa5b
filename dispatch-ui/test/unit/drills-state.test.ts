// Readiness drills in the UI (issue 8): DrillsState against a fake Api (STYLE: injected, no module
// mocking) and LiveState's readiness and drill alerts, as the socket feeds them.
import { describe, expect, it } from 'vitest';
import { ApiError, type Api } from '../../src/lib/api/client';
import type { BuildingReadiness, Drill, DrillAlert } from '../../src/lib/api/types';
import { DrillsState, scheduleText } from '../../src/lib/state/drills.svelte';
import { LiveState } from '../../src/lib/state/live.svelte';

type Call = { method: string; path: string; body?: unknown; query?: unknown };
const drill = (id: string, status: Drill['status']): Drill => ({ id, buildingId: 'bld-1', status, trigger: 'manual', startedAt: 1, endedAt: 2, doors: [], reasons: status === 'failed' ? ['Street: no reply from the controller'] : [] });
const ready: BuildingReadiness = { buildingId: 'bld-1', state: 'ready', reasons: [], lastDrill: { id: 'drl-1', status: 'passed', at: 100, reasons: [] } };

function fakeApi(o: { runError?: ApiError } = {}): { api: Api; calls: Call[] } {
  const calls: Call[] = [];
  const api = {
    get: (path: string, opts?: { query?: unknown }) => {
      calls.push({ method: 'GET', path, query: opts?.query });
      if (path === '/api/v1/readiness') return Promise.resolve({ items: [ready] });
      if (path === '/api/v1/buildings/bld-1/drills') return Promise.resolve({ items: [drill('drl-1', 'passed')] });
      if (path === '/api/v1/buildings/bld-1/drill-schedule') return Promise.resolve({ enabled: false, everyDays: 7, hour: 3, timeZone: 'UTC' });
      return Promise.reject(new ApiError(404, 'not-found', 'no such building'));
    },
    post: (path: string, body?: unknown) => {
      calls.push({ method: 'POST', path, body });
      return o.runError ? Promise.reject(o.runError) : Promise.resolve(drill('drl-2', 'failed'));
    },
    put: (path: string, body: unknown) => {
      calls.push({ method: 'PUT', path, body });
      const b = body as { timeZone: string };
      if (b.timeZone === 'Mars/Olympus') return Promise.reject(new ApiError(400, 'validation-failed', 'not an IANA time zone this gateway knows'));
      return Promise.resolve({ ...(body as object), nextAt: 1_000 });
    },
  } as unknown as Api;
  return { api, calls };
}

describe('DrillsState', () => {
  it('loads readiness into the live state, and a building history and schedule', async () => {
    const { api, calls } = fakeApi();
    const live = new LiveState();
    const s = new DrillsState(api, live);
    await s.loadReadiness();
    await s.loadBuilding('bld-1');
    expect(s.readinessOf('bld-1')).toEqual(ready);
    expect(s.historyOf('bld-1').map((d) => d.id)).toEqual(['drl-1']);
    expect(s.scheduleOf('bld-1')?.enabled).toBe(false);
    expect(calls.find((c) => c.path.endsWith('/drills'))?.query).toEqual({ limit: 10 });
    expect(s.error).toBeUndefined();
  });

  it('run now puts the drill on top of the history; a failed drill is a result, an API error is shown', async () => {
    const { api } = fakeApi();
    const s = new DrillsState(api, new LiveState());
    await s.loadBuilding('bld-1');
    const d = await s.run('bld-1');
    expect(d?.status).toBe('failed');
    expect(s.historyOf('bld-1').map((x) => x.id)).toEqual(['drl-2', 'drl-1']);
    expect(s.error).toBeUndefined();
    expect(s.busy).toBeUndefined();

    const busy = new DrillsState(fakeApi({ runError: new ApiError(409, 'conflict', 'a drill is already running for this building') }).api, new LiveState());
    expect(await busy.run('bld-1')).toBeUndefined();
    expect(busy.error).toContain('already running');
  });

  it('saves a schedule (the answer carries the next due time); a refused one throws for the form', async () => {
    const { api, calls } = fakeApi();
    const s = new DrillsState(api, new LiveState());
    const saved = await s.saveSchedule('bld-1', { enabled: true, everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' });
    expect(calls.at(-1)).toEqual({ method: 'PUT', path: '/api/v1/buildings/bld-1/drill-schedule', body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' } });
    expect(saved.nextAt).toBe(1_000);
    expect(scheduleText(s.scheduleOf('bld-1'))).toBe('Every 7 days at 03:00 (Europe/Stockholm)');
    await expect(s.saveSchedule('bld-1', { enabled: true, everyDays: 7, hour: 3, timeZone: 'Mars/Olympus' })).rejects.toThrow('IANA');
    expect(scheduleText(undefined)).toBe('Not scheduled');
    expect(scheduleText({ enabled: true, everyDays: 1, hour: 23, timeZone: 'UTC' })).toBe('Every day at 23:00 (UTC)');
  });
});

describe('LiveState readiness and drill alerts', () => {
  const alert = (drillId: string, at = 200): DrillAlert => ({ kind: 'drill-failed', buildingId: 'bld-1', buildingName: 'Götgatan 1', drillId, reasons: ['Street: controller offline'], at });

  it('keeps one alert per failed drill, calls onDrillAlert once, and dismisses by drill', () => {
    const live = new LiveState();
    const heard: string[] = [];
    live.onDrillAlert = (a) => heard.push(a.drillId);
    live.applyDrillAlert(alert('drl-1'));
    live.applyDrillAlert(alert('drl-1'));
    live.applyDrillAlert(alert('drl-2'));
    expect(live.drillAlerts.map((a) => a.drillId)).toEqual(['drl-1', 'drl-2']);
    expect(heard).toEqual(['drl-1', 'drl-2']);
    live.dismissDrillAlert('drl-1');
    expect(live.drillAlerts.map((a) => a.drillId)).toEqual(['drl-2']);
  });

  it('a passing drill clears the building’s earlier drill alerts; a readiness delta replaces the record', () => {
    const live = new LiveState();
    live.applyDrillAlert(alert('drl-1', 50));
    live.applyReadiness({ buildingId: 'bld-1', state: 'degraded', reasons: [{ code: 'drill-failed', text: 'Last drill failed' }], lastDrill: { id: 'drl-1', status: 'failed', at: 50, reasons: [] } });
    expect(live.drillAlerts).toHaveLength(1);
    live.applyReadiness(ready);
    expect(live.drillAlerts).toEqual([]);
    expect(live.readiness.get('bld-1')?.state).toBe('ready');
  });
});
