// Desired state per controller (DESIGN §4, PROTOCOL §5): only live grants, only this controller's doors, only active tags.
import { describe, expect, it } from 'vitest';
import { validateBody } from '@smart-passage/protocol';
import type { Door, Grant, Tag } from '../../../src/domain/types.js';
import { controllersOf, desiredGrantsFor, isLive } from '../../../src/features/grants/desired-state.js';

const T = 1_764_330_000_000;
const door = (id: string, controllerId: string, ref: string): Door => ({
  id, buildingId: 'bld-1', name: id, kind: 'entrance', routeOrder: 1, controllerId, ref, pulseSeconds: 5, emergency: true,
});
const doors = new Map([door('d1', 'ctl-a', 'street'), door('d2', 'ctl-a', 'stair'), door('d3', 'ctl-b', 'floor-3')].map((d) => [d.id, d]));
const tag = (uid: string, unitId: string, status: Tag['status'] = 'active'): Tag => ({ id: `tag-${uid}`, uid, label: uid, unitId, status });
const tagsByUnit = new Map<string, Tag[]>([
  ['u1', [tag('04A1B2C3', 'u1'), tag('04FFFF00', 'u1', 'blocked')]],
  ['u2', [tag('0ABC0DEF', 'u2')]],
]);
const grant = (over: Partial<Grant> = {}): Grant => ({
  id: 'g-1', incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['d1', 'd3'], unitIds: ['u1'], notBefore: T, notAfter: T + 60_000,
  status: 'active', createdBy: 'user-1', createdAt: T, deliveries: [], ...over,
});

describe('desired state', () => {
  it('gives each controller only its own doors, with the units\' active tags and the PIN', () => {
    const input = { grants: [grant({ pin: '4711', unitIds: ['u1', 'u2'] })], doors, tagsByUnit, now: T };
    expect(desiredGrantsFor('ctl-a', input)).toEqual([
      { grantId: 'g-1', incident: 'inc-1', doors: ['street'], notBefore: T, notAfter: T + 60_000,
        credentials: [{ kind: 'tag', uid: '04A1B2C3' }, { kind: 'tag', uid: '0ABC0DEF' }, { kind: 'pin', pin: '4711' }] },
    ]);
    expect(desiredGrantsFor('ctl-b', input)[0]?.doors).toEqual(['floor-3']);
    expect(desiredGrantsFor('ctl-c', input)).toEqual([]);
    expect(validateBody('grants.sync', { version: 1, grants: desiredGrantsFor('ctl-a', input) })).toEqual({ ok: true });
  });

  it('leaves out ended, past and credential-less grants', () => {
    const grants = [
      grant({ id: 'g-rev', status: 'revoked' }),
      grant({ id: 'g-exp', status: 'expired' }),
      grant({ id: 'g-past', notAfter: T - 1 }),
      grant({ id: 'g-blocked-only', unitIds: ['u9'] }),
      grant({ id: 'g-ok', status: 'pending' }),
    ];
    expect(desiredGrantsFor('ctl-a', { grants, doors, tagsByUnit, now: T }).map((g) => g.grantId)).toEqual(['g-ok']);
    expect(isLive(grant(), T + 60_000)).toBe(false);
  });

  it('is deterministic and names the controllers a grant touches', () => {
    const input = { grants: [grant({ id: 'g-2' }), grant({ id: 'g-1' })], doors, tagsByUnit, now: T };
    expect(desiredGrantsFor('ctl-a', input).map((g) => g.grantId)).toEqual(['g-1', 'g-2']);
    expect(controllersOf(grant({ doorIds: ['d3', 'd1', 'd2'] }), doors)).toEqual(['ctl-a', 'ctl-b']);
  });
});
