// Readiness (DESIGN §9, issue 8) as the gateway computes it: the state and its reasons per door.
import { describe, expect, it } from 'vitest';
import { computeReadiness, routeDoors, type ReadinessInput } from '../../../src/features/readiness/readiness.js';

const DAY = 86_400_000;
const NOW = 1_800_000_000_000;
const doors = [
  { id: 'd-street', name: 'Street', controllerId: 'c-1', emergency: true, routeOrder: 1 },
  { id: 'd-stair', name: 'Stair', controllerId: 'c-2', emergency: true, routeOrder: 2 },
  { id: 'd-flat', name: 'Flat', controllerId: 'c-3', emergency: false, routeOrder: 3 },
];
const healthy = { online: true, clockSafe: true, appliedVersion: 4 };
const passed = { id: 'drl-1', status: 'passed' as const, startedAt: NOW - DAY, endedAt: NOW - DAY, reasons: [] };

function input(o: Partial<ReadinessInput> = {}): ReadinessInput {
  return {
    building: { id: 'b-1', policy: { enabled: true, maxMinutes: 30, allowedAgencyIds: [], doorIds: [] } },
    doors,
    live: () => healthy,
    desiredVersion: () => 4,
    lastDrill: passed,
    now: NOW,
    ...o,
  };
}
const codes = (i: ReadinessInput) => computeReadiness(i).reasons.map((r) => `${r.code}${r.doorId ? `@${r.doorId}` : ''}`);

describe('computeReadiness', () => {
  it('is ready when access is on, every route controller is online, clock-safe and current, and the last drill passed', () => {
    const r = computeReadiness(input());
    expect(r).toEqual({ buildingId: 'b-1', state: 'ready', reasons: [], lastDrill: { id: 'drl-1', status: 'passed', at: NOW - DAY, reasons: [] } });
  });

  it('ignores doors off the route (a controller of a non-emergency door may be offline)', () => {
    expect(computeReadiness(input({ live: (id) => (id === 'c-3' ? undefined : healthy) })).state).toBe('ready');
  });

  it('no-access when emergency access is disabled or no door is on the route', () => {
    const off = input({ building: { id: 'b-1', policy: { enabled: false, maxMinutes: 30, allowedAgencyIds: [], doorIds: [] } } });
    expect(computeReadiness(off).state).toBe('no-access');
    expect(codes(off)).toEqual(['access-disabled']);
    const none = input({ doors: [doors[2]!] });
    expect(computeReadiness(none).state).toBe('no-access');
    expect(codes(none)).toEqual(['no-route-doors']);
  });

  it('offline when a route controller is offline or never seen, naming each door', () => {
    const i = input({ live: (id) => (id === 'c-1' ? { ...healthy, online: false } : id === 'c-2' ? undefined : healthy) });
    expect(computeReadiness(i).state).toBe('offline');
    expect(codes(i)).toEqual(['controller-offline@d-street', 'controller-offline@d-stair']);
    expect(computeReadiness(i).reasons[0]?.text).toBe('Street: controller c-1 offline');
  });

  it('degraded when a controller is clock-unsafe or behind its desired version', () => {
    const i = input({ live: (id) => (id === 'c-2' ? { ...healthy, clockSafe: false, appliedVersion: 3 } : healthy) });
    expect(computeReadiness(i).state).toBe('degraded');
    expect(codes(i)).toEqual(['clock-unsafe@d-stair', 'behind-version@d-stair']);
  });

  it('degraded when the last drill failed, was never run, or is too old', () => {
    const failed = input({ lastDrill: { ...passed, status: 'failed', reasons: ['Street: controller offline'] } });
    expect(computeReadiness(failed).state).toBe('degraded');
    expect(computeReadiness(failed).reasons[0]?.text).toBe('Last drill failed: Street: controller offline');
    expect(codes(input({ lastDrill: undefined }))).toEqual(['drill-never-run']);
    expect(codes(input({ drillMaxAgeMs: 7 * DAY }))).toEqual([]);
    expect(codes(input({ drillMaxAgeMs: DAY / 2 }))).toEqual(['drill-too-old']);
  });

  it('a running drill does not count: the one before it decides (here none)', () => {
    expect(codes(input({ lastDrill: { ...passed, status: 'running' } }))).toEqual(['drill-never-run']);
  });

  it('offline outranks degraded, and every reason is kept', () => {
    const i = input({ lastDrill: undefined, live: (id) => (id === 'c-1' ? { ...healthy, online: false } : { ...healthy, clockSafe: false }) });
    expect(computeReadiness(i).state).toBe('offline');
    expect(codes(i)).toEqual(['controller-offline@d-street', 'clock-unsafe@d-stair', 'drill-never-run']);
  });
});

describe('routeDoors', () => {
  it("is the emergency doors, narrowed to the policy's list when it has one, in route order", () => {
    const shuffled = [doors[1]!, doors[2]!, doors[0]!];
    expect(routeDoors({ doorIds: [] }, shuffled).map((d) => d.id)).toEqual(['d-street', 'd-stair']);
    expect(routeDoors({ doorIds: ['d-stair', 'd-flat'] }, shuffled).map((d) => d.id)).toEqual(['d-stair']);
  });
});
