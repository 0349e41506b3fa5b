import { describe, expect, it } from 'vitest';
import { dayBound, errorText, fieldErrors, timeLeft } from '../../src/lib/logic/format';
import { parseDoorRefs } from '../../src/lib/logic/admin-forms';

describe('timeLeft', () => {
  it('counts down in mm:ss, h:mm:ss from an hour, and stops at zero', () => {
    expect(timeLeft(10_000 + 125_400, 10_000)).toBe('02:05');
    expect(timeLeft(3_723_000, 0)).toBe('1:02:03');
    expect(timeLeft(0, 5_000)).toBe('00:00');
  });
});

describe('dayBound', () => {
  it('gives the local start and end of a day as ISO', () => {
    const start = dayBound('2026-11-28', false)!;
    const end = dayBound('2026-11-28', true)!;
    expect(new Date(start).getDate()).toBe(28);
    expect(new Date(start).getHours()).toBe(0);
    expect(Date.parse(end) - Date.parse(start)).toBe(86_400_000 - 1);
    expect(dayBound('yesterday', false)).toBeUndefined();
  });
});

describe('errorText', () => {
  it('lists validation issues by field', () => {
    const err = { code: 'validation-failed', message: 'request failed validation', details: [{ in: 'body', path: '/maxMinutes', message: 'must be <= 1440' }] };
    expect(errorText(err)).toBe('maxMinutes: must be <= 1440');
    expect(fieldErrors(err)).toEqual({ maxMinutes: 'must be <= 1440' });
    expect(fieldErrors({ code: 'validation-failed', details: [{ path: '/doorIds/0', message: 'no such door in this building' }] })).toEqual({ doorIds: 'no such door in this building' });
  });

  it('keeps the message of other errors', () => {
    expect(errorText({ code: 'conflict', message: 'the building still has doors' })).toBe('the building still has doors');
    expect(errorText(new TypeError('Failed to fetch'))).toBe('The gateway cannot be reached.');
  });
});

describe('parseDoorRefs', () => {
  it('reads a ref and an optional name per line', () => {
    expect(parseDoorRefs('d1 Street door\n\n d2 \n')).toEqual({ ok: true, doors: [{ ref: 'd1', name: 'Street door' }, { ref: 'd2' }] });
  });
  it('refuses a bad or repeated ref', () => {
    expect(parseDoorRefs('d/1 x')).toMatchObject({ ok: false });
    expect(parseDoorRefs('d1\nd1')).toMatchObject({ ok: false, error: 'line 2: ref "d1" twice' });
  });
});
