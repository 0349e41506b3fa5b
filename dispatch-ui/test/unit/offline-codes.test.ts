// Offline emergency codes in the dispatcher's panel (issue 8, PROTOCOL §2.6): the line a dispatcher
// reads out, when codes are needed, and OfflineCodesState against a fake source (no module mocking).
import { describe, expect, it } from 'vitest';
import { Api } from '../../src/lib/api/client';
import type { ControllerLive, Grant, OfflineCode } from '../../src/lib/api/types';
import { clockTime, groupCode, needsOfflineCodes, offlineCodeNotice, offlineRouteKey } from '../../src/lib/logic/offline-codes';
import { OfflineCodesState } from '../../src/lib/state/offline-codes.svelte';
import { door } from './fixtures';

const WINDOW = 900_000;
/** 2025-11-28T11:42:00Z; its window ends 11:45, a code of it is valid until 12:00. */
const T = 1_764_330_120_000;
const code = (doorId: string, digits: string, validUntil = 1_764_331_200_000): OfflineCode => ({
  doorId, doorName: doorId, doorRef: doorId, buildingId: 'bld-1', controllerId: 'ctl-1', grantId: 'g-1', code: digits, window: 1_960_366, validUntil,
});
const grant = (over: Partial<Grant> = {}): Grant => ({
  id: 'g-1', incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['street', 'stair'], unitIds: ['u-1'], notBefore: T - 60_000, notAfter: T + 1_800_000,
  status: 'active', createdBy: 'usr-1', createdAt: T - 60_000, deliveries: [], ...over,
});
const live = (id: string, online: boolean): ControllerLive => ({ id, online, appliedVersion: 1, lastSeq: 1, clockSafe: true, doors: [] });

describe('the line the dispatcher reads out', () => {
  it('says controller offline, the code in two groups, the door and the time', () => {
    expect(offlineCodeNotice(code('street', '32078332'), 'Street door', { timeZone: 'UTC' })).toBe('controller offline — give the crew code 3207 8332 for door Street door, valid until 12:00');
    // Leading zeros are digits, not padding to drop.
    expect(groupCode('00012345')).toBe('0001 2345');
    expect(clockTime(Date.UTC(2025, 10, 28, 9, 5), { timeZone: 'Europe/Stockholm' })).toBe('10:05');
  });
});

describe('when codes are needed', () => {
  const doors = { street: door('street', 1), stair: door('stair', 2, { controllerId: 'ctl-2' }) };
  const doorOf = (_b: string, id: string) => doors[id as keyof typeof doors];

  it('keys on the offline controllers of live route doors only', () => {
    const both = new Map([['ctl-1', live('ctl-1', true)], ['ctl-2', live('ctl-2', true)]]);
    expect(offlineRouteKey([grant()], doorOf, both, T)).toBe('');
    const one = new Map([['ctl-1', live('ctl-1', true)], ['ctl-2', live('ctl-2', false)]]);
    expect(offlineRouteKey([grant()], doorOf, one, T)).toBe('ctl-2');
    // Never seen counts as offline; an ended grant needs no code.
    expect(offlineRouteKey([grant()], doorOf, new Map(), T)).toBe('ctl-1,ctl-2');
    expect(offlineRouteKey([grant({ status: 'revoked' })], doorOf, new Map(), T)).toBe('');
    expect(offlineRouteKey([grant({ notAfter: T })], doorOf, new Map(), T)).toBe('');
  });

  it('fetches again on a new key or at the rollover, never with nothing offline', () => {
    const last = { key: 'inc-1|ctl-2', nextWindowAt: 1_764_330_300_000 };
    expect(needsOfflineCodes(undefined, 'inc-1|ctl-2', T)).toBe(true);
    expect(needsOfflineCodes(last, 'inc-1|ctl-2', T)).toBe(false);
    expect(needsOfflineCodes(last, 'inc-1|ctl-1,ctl-2', T)).toBe(true);
    expect(needsOfflineCodes(last, 'inc-1|ctl-2', last.nextWindowAt - 1)).toBe(false);
    expect(needsOfflineCodes(last, 'inc-1|ctl-2', last.nextWindowAt)).toBe(true);
    expect(needsOfflineCodes(undefined, '', T)).toBe(false);
  });
});

describe('OfflineCodesState', () => {
  function fake() {
    const calls: string[] = [];
    let digits = '32078332';
    const source = {
      offlineCodes: (incidentId: string) => {
        calls.push(incidentId);
        const now = T + (calls.length - 1) * WINDOW;
        return Promise.resolve({ items: [code('stair', digits)], nextWindowAt: (Math.floor(now / WINDOW) + 1) * WINDOW });
      },
      next(d: string) {
        digits = d;
      },
    };
    return { source, calls };
  }

  it('fetches once per window while a route controller is offline, refreshes at the rollover, and forgets the codes when it is back', async () => {
    const { source, calls } = fake();
    const s = new OfflineCodesState(source);
    await s.sync('inc-1', '', T);
    expect(calls).toEqual([]);
    await s.sync('inc-1', 'ctl-2', T);
    expect(s.forDoor('stair')?.code).toBe('32078332');
    expect(s.forDoor('street')).toBeUndefined();
    // Ticks within the window ask nothing more.
    await s.sync('inc-1', 'ctl-2', T + 1000);
    await s.sync('inc-1', 'ctl-2', T + 170_000);
    expect(calls).toHaveLength(1);
    // 11:45:00: the window rolled over, a fresh code.
    source.next('12716983');
    await s.sync('inc-1', 'ctl-2', 1_764_330_300_000);
    expect(calls).toHaveLength(2);
    expect(s.forDoor('stair')?.code).toBe('12716983');
    // The controller is back: nothing to show.
    await s.sync('inc-1', '', 1_764_330_301_000);
    expect(s.forDoor('stair')).toBeUndefined();
  });

  it('keeps trying after an error, not in a tight loop', async () => {
    let fail = true;
    let calls = 0;
    const s = new OfflineCodesState({
      offlineCodes: () => {
        calls += 1;
        return fail ? Promise.reject(new Error('gateway unreachable')) : Promise.resolve({ items: [code('stair', '11112222')], nextWindowAt: T + WINDOW });
      },
    });
    await s.sync('inc-1', 'ctl-2', T);
    expect(s.error).toBe('gateway unreachable');
    await s.sync('inc-1', 'ctl-2', T + 1000);
    expect(calls).toBe(1);
    fail = false;
    await s.sync('inc-1', 'ctl-2', T + 5000);
    expect(calls).toBe(2);
    expect(s.error).toBeUndefined();
    expect(s.forDoor('stair')?.code).toBe('11112222');
  });

  it('asks the gateway through the client at the incident\'s offline-codes path', async () => {
    const paths: string[] = [];
    class Recording extends Api {
      override get<T>(path: string): Promise<T> {
        paths.push(path);
        return Promise.resolve({ items: [], nextWindowAt: 0 } as T);
      }
    }
    await new Recording('', undefined).offlineCodes('inc 1');
    expect(paths).toEqual(['/api/v1/incidents/inc%201/offline-codes']);
  });
});

describe('the audit line of a code used at a door', () => {
  it('says an offline code was used, never which', async () => {
    const { describeAudit } = await import('../../src/lib/logic/audit-text');
    const line = describeAudit(
      { id: '7', v: 1, chain: 'building:bld-1', seq: 7, at: T, hash: 'h', type: 'access.granted', actor: { kind: 'controller', id: 'ctl-1' }, doorId: 'street', reason: 'offline-code', data: { door: 'street', credential: 'offline-code', window: 1_960_366 } },
      { doors: { street: 'Street door' } },
      { timeZone: 'UTC' },
    );
    expect(line).toBe('11:42:00 Access granted — Street door, offline code, reason: offline-code');
  });
});
