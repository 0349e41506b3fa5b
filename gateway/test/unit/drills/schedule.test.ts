// When scheduled drills are due (DESIGN §9, issue 8): every N days at a local hour, across DST.
import { describe, expect, it } from 'vitest';
import { firstDrillAt, isTimeZone, nextDrillAt } from '../../../src/features/drills/schedule.js';

const iso = (t: number) => new Date(t).toISOString();

describe('drill schedule', () => {
  it('the first drill is the next local hour after now (today if still ahead, else tomorrow)', () => {
    const s = { everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' };
    // 12:00 UTC = 13:00 in Stockholm (winter, UTC+1): 03:00 today is past → tomorrow 03:00 = 02:00 UTC.
    expect(iso(firstDrillAt(s, Date.parse('2026-01-10T12:00:00Z')))).toBe('2026-01-11T02:00:00.000Z');
    // 01:00 UTC = 02:00 local: 03:00 is still ahead today.
    expect(iso(firstDrillAt(s, Date.parse('2026-01-10T01:00:00Z')))).toBe('2026-01-10T02:00:00.000Z');
    // Exactly at the hour: the next one.
    expect(iso(firstDrillAt(s, Date.parse('2026-01-10T02:00:00Z')))).toBe('2026-01-11T02:00:00.000Z');
    expect(iso(firstDrillAt({ hour: 23, timeZone: 'UTC' }, Date.parse('2026-01-10T12:00:00Z')))).toBe('2026-01-10T23:00:00.000Z');
  });

  it('steps N local days on and keeps the local hour across a daylight-saving change', () => {
    const s = { everyDays: 7, hour: 3, timeZone: 'Europe/Stockholm' };
    // 2026-03-29 is the spring change in the EU: 03:00 local is then 01:00 UTC.
    const due = Date.parse('2026-03-24T02:00:00Z'); // Tue 03:00 CET
    expect(iso(nextDrillAt(s, due, due))).toBe('2026-03-31T01:00:00.000Z'); // Tue 03:00 CEST
    expect(iso(nextDrillAt({ ...s, everyDays: 1 }, due, due))).toBe('2026-03-25T02:00:00.000Z');
  });

  it('after downtime, the next drill is after now: one drill for what was missed, not one per missed day', () => {
    const s = { everyDays: 1, hour: 3, timeZone: 'UTC' };
    const due = Date.parse('2026-01-01T03:00:00Z');
    expect(iso(nextDrillAt(s, due, Date.parse('2026-01-05T12:00:00Z')))).toBe('2026-01-06T03:00:00.000Z');
  });

  it('knows IANA zones', () => {
    expect(isTimeZone('Europe/Stockholm')).toBe(true);
    expect(isTimeZone('UTC')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
  });
});
