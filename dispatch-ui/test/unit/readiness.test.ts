// The UI's readiness helpers: readiness itself is the gateway's (issue 8); the UI labels it.
import { describe, expect, it } from 'vitest';
import { lastDrillText, READINESS_CLASS, READINESS_LABEL, READINESS_ORDER } from '../../src/lib/logic/readiness';

describe('readiness labels', () => {
  it('every state has a label and a class, in legend order', () => {
    expect(READINESS_ORDER).toEqual(['ready', 'degraded', 'offline', 'no-access']);
    for (const r of READINESS_ORDER) {
      expect(READINESS_LABEL[r]).toBeTruthy();
      expect(READINESS_CLASS[r]).toMatch(/^state-/);
    }
  });
});

describe('lastDrillText', () => {
  const now = 1_800_000_000_000;
  it('says none, or passed/failed with how long ago', () => {
    expect(lastDrillText(undefined, now)).toBe('No drill yet');
    expect(lastDrillText({ status: 'passed', at: now - 10_000 }, now)).toBe('Passed just now');
    expect(lastDrillText({ status: 'failed', at: now - 5 * 60_000 }, now)).toBe('Failed 5 min ago');
    expect(lastDrillText({ status: 'passed', at: now - 3 * 3_600_000 }, now)).toBe('Passed 3 h ago');
    expect(lastDrillText({ status: 'passed', at: now - 8 * 86_400_000 }, now)).toBe('Passed 8 days ago');
  });
});
