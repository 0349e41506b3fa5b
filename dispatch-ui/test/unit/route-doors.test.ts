import { describe, expect, it } from 'vitest';
import type { AuditItem, ControllerLive, Grant } from '../../src/lib/api/types';
import { clampMinutes, defaultMinutes, doorGrantState, doorLive, doorLiveText, routeDoors, unitsByAgency } from '../../src/lib/logic/route-doors';
import { door } from './fixtures';

const audit = (over: Partial<AuditItem>): AuditItem => ({ v: 1, chain: 'b', seq: 1, at: 0, type: 'access.granted', actor: { kind: 'controller', id: 'ctl-1' }, id: '1', hash: 'h', ...over });

describe('routeDoors', () => {
  const doors = [door('c', 3), door('a', 1), door('x', 2, { emergency: false }), door('b', 2)];
  it('emergency doors in route order when the policy names none', () => {
    expect(routeDoors(doors, { doorIds: [] }).map((d) => d.id)).toEqual(['a', 'b', 'c']);
  });
  it('only the policy doors when it names some (and never a non-emergency door)', () => {
    expect(routeDoors(doors, { doorIds: ['c', 'a', 'x'] }).map((d) => d.id)).toEqual(['a', 'c']);
  });
});

describe('minutes', () => {
  it('defaults to 30 or the policy max when lower', () => {
    expect(defaultMinutes(60)).toBe(30);
    expect(defaultMinutes(10)).toBe(10);
  });
  it('clamps to [1, max] and whole minutes', () => {
    expect(clampMinutes(90, 60)).toBe(60);
    expect(clampMinutes(0, 60)).toBe(1);
    expect(clampMinutes(12.6, 60)).toBe(13);
    expect(clampMinutes(Number.NaN, 20)).toBe(20);
  });
});

describe('doorGrantState: pending → delivered → used (DESIGN §4 flow 1, 2)', () => {
  const d1 = door('d1', 1, { controllerId: 'ctl-1' });
  const d2 = door('d2', 2, { controllerId: 'ctl-2' });
  const g: Pick<Grant, 'id' | 'deliveries'> = {
    id: 'g1',
    deliveries: [
      { controllerId: 'ctl-1', version: 2, state: 'delivered', deliveredAt: 1 },
      { controllerId: 'ctl-2', version: 5, state: 'pending' },
    ],
  };
  it('follows the delivery of the door’s controller', () => {
    expect(doorGrantState(g, d1, [])).toBe('delivered');
    expect(doorGrantState(g, d2, [])).toBe('pending');
  });
  it('is used once an access.granted entry names the grant and the door', () => {
    expect(doorGrantState(g, d1, [audit({ grantId: 'g1', doorId: 'd1' })])).toBe('used');
    expect(doorGrantState(g, d1, [audit({ grantId: 'g2', doorId: 'd1' }), audit({ grantId: 'g1', doorId: 'd2' }), audit({ type: 'access.denied', grantId: 'g1', doorId: 'd1' })])).toBe('delivered');
  });
});

describe('doorLive', () => {
  const c: ControllerLive = { id: 'ctl-1', online: true, appliedVersion: 1, lastSeq: 0, clockSafe: true, doors: [{ ref: 'r1', locked: true, open: false }] };
  it('reads the door by ref from its controller', () => {
    expect(doorLive({ ref: 'r1' }, c)).toEqual({ online: true, locked: true, open: false });
    expect(doorLiveText(doorLive({ ref: 'r1' }, c))).toBe('online · locked · closed');
  });
  it('an unknown controller is offline; an unreported door has no lock state', () => {
    expect(doorLiveText(doorLive({ ref: 'r1' }, undefined))).toBe('offline');
    expect(doorLive({ ref: 'r9' }, c)).toEqual({ online: true });
  });
});

describe('unitsByAgency', () => {
  const agencies = [{ id: 'fire' }, { id: 'amb' }, { id: 'pol' }];
  const units = [
    { id: 'u1', agencyId: 'fire' },
    { id: 'u2', agencyId: 'amb' },
    { id: 'u3', agencyId: 'fire' },
  ];
  it('groups in agency order, leaving out agencies without units', () => {
    expect(unitsByAgency(agencies, units).map((g) => [g.agency.id, g.units.map((u) => u.id)])).toEqual([
      ['fire', ['u1', 'u3']],
      ['amb', ['u2']],
    ]);
  });
  it('keeps only the policy’s allowed agencies', () => {
    expect(unitsByAgency(agencies, units, ['amb']).map((g) => g.agency.id)).toEqual(['amb']);
  });
});
