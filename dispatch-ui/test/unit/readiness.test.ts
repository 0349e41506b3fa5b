import { describe, expect, it } from 'vitest';
import { buildingReadiness, controllerCondition, type ControllerHealth } from '../../src/lib/logic/readiness';

const ok: ControllerHealth = { online: true, clockSafe: true, appliedVersion: 3 };
const lookup = (m: Record<string, ControllerHealth>) => (id: string) => m[id];

describe('controllerCondition', () => {
  it('unknown or offline is offline', () => {
    expect(controllerCondition(undefined)).toBe('offline');
    expect(controllerCondition({ ...ok, online: false })).toBe('offline');
  });
  it('clock-unsafe or behind the desired version is degraded', () => {
    expect(controllerCondition({ ...ok, clockSafe: false })).toBe('degraded');
    expect(controllerCondition({ ...ok, desiredVersion: 4 })).toBe('degraded');
  });
  it('online, clock-safe and up to date is ok', () => {
    expect(controllerCondition(ok)).toBe('ok');
    expect(controllerCondition({ ...ok, desiredVersion: 3 })).toBe('ok');
    // A stale desired version (read before a newer grant) never makes a controller look behind.
    expect(controllerCondition({ ...ok, desiredVersion: 2 })).toBe('ok');
  });
});

describe('buildingReadiness (DESIGN §9)', () => {
  const on = { enabled: true };
  it('a disabled policy is no-access whatever the controllers', () => {
    expect(buildingReadiness({ enabled: false }, ['a'], lookup({ a: ok }))).toBe('no-access');
  });
  it('no route door is no-access', () => {
    expect(buildingReadiness(on, [], lookup({}))).toBe('no-access');
  });
  it('every route controller ok is ready', () => {
    expect(buildingReadiness(on, ['a', 'b', 'a'], lookup({ a: ok, b: ok }))).toBe('ready');
  });
  it('one unknown route controller is offline', () => {
    expect(buildingReadiness(on, ['a', 'b'], lookup({ a: ok }))).toBe('offline');
  });
  it('offline wins over degraded', () => {
    expect(buildingReadiness(on, ['a', 'b', 'c'], lookup({ a: { ...ok, clockSafe: false }, b: { ...ok, online: false }, c: ok }))).toBe('offline');
  });
  it('a clock-unsafe controller makes the building degraded', () => {
    expect(buildingReadiness(on, ['a', 'b'], lookup({ a: ok, b: { ...ok, clockSafe: false } }))).toBe('degraded');
  });
});
