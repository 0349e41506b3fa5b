/**
 * When a building's next scheduled drill is due (DESIGN §9, issue 8): every `everyDays` days at
 * `hour`:00 local time in the schedule's IANA time zone. Pure; Intl does the time-zone work, so
 * daylight-saving days land on the same local hour.
 */
import type { DrillSchedule } from '../../domain/types.js';

/** True when `tz` is an IANA zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The zone's offset from UTC at `at`, in ms (Stockholm in winter: +3 600 000). */
function offsetAt(at: number, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' }).formatToParts(at);
  const n = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  const asUtc = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
  return asUtc - (at - (at % 1000));
}

/** The local calendar date of `at` in `timeZone`. */
function localDate(at: number, timeZone: string): { y: number; m: number; d: number } {
  const t = at + offsetAt(at, timeZone);
  const x = new Date(t);
  return { y: x.getUTCFullYear(), m: x.getUTCMonth(), d: x.getUTCDate() };
}

/** The instant of `hour`:00 local on a local date (the first, when DST makes it ambiguous). */
function atLocalHour(date: { y: number; m: number; d: number }, hour: number, timeZone: string): number {
  const wall = Date.UTC(date.y, date.m, date.d, hour);
  // Two passes: the offset at the guess may differ from the offset at the answer across a DST change.
  let t = wall - offsetAt(wall, timeZone);
  t = wall - offsetAt(t, timeZone);
  return t;
}

function addDays(date: { y: number; m: number; d: number }, n: number): { y: number; m: number; d: number } {
  const x = new Date(Date.UTC(date.y, date.m, date.d + n));
  return { y: x.getUTCFullYear(), m: x.getUTCMonth(), d: x.getUTCDate() };
}

/**
 * The first drill of a new (or changed) schedule: the next `hour`:00 local strictly after `now`.
 */
export function firstDrillAt(s: Pick<DrillSchedule, 'hour' | 'timeZone'>, now: number): number {
  const today = localDate(now, s.timeZone);
  const t = atLocalHour(today, s.hour, s.timeZone);
  return t > now ? t : atLocalHour(addDays(today, 1), s.hour, s.timeZone);
}

/**
 * The drill after the one due at `due`: `everyDays` local days on, at `hour`:00 local (so a
 * daylight-saving change moves no drill off its hour). Never at or before `now` — a gateway that
 * was down for a while runs one drill for what it missed, not one per missed day.
 */
export function nextDrillAt(s: Pick<DrillSchedule, 'everyDays' | 'hour' | 'timeZone'>, due: number, now: number): number {
  let date = addDays(localDate(due, s.timeZone), s.everyDays);
  let t = atLocalHour(date, s.hour, s.timeZone);
  while (t <= now) {
    date = addDays(date, s.everyDays);
    t = atLocalHour(date, s.hour, s.timeZone);
  }
  return t;
}
