import { describe, expect, it } from 'vitest';
import { AUDIT_TYPES, type AuditItem } from '@smart-passage/protocol/audit-types';
import {
  AUDIT_GROUPS,
  AUDIT_GROUP_NAMES,
  auditTypesParam,
  compareNewestFirst,
  describeAudit,
  groupOf,
  matchesAuditFilter,
  mergeAudit,
} from '../../src/lib/logic/audit-text';

const at = Date.UTC(2026, 10, 28, 12, 3, 41);

function item(over: Partial<AuditItem> & { id: string }): AuditItem {
  return { v: 1, chain: 'building:bld-1', seq: 1, at, type: 'access.granted', actor: { kind: 'controller', id: 'ctl-1' }, hash: 'h', buildingId: 'bld-1', ...over };
}

describe('audit groups', () => {
  it('put every audit type in exactly one group', () => {
    const all = AUDIT_GROUP_NAMES.flatMap((g) => [...AUDIT_GROUPS[g]]);
    expect([...all].sort()).toEqual([...AUDIT_TYPES].sort());
    expect(new Set(all).size).toBe(all.length);
  });

  it('builds the type query: none or all groups = no filter', () => {
    expect(auditTypesParam([])).toBeUndefined();
    expect(auditTypesParam(AUDIT_GROUP_NAMES)).toBeUndefined();
    expect(auditTypesParam(['access'])).toBe('access.granted,access.denied');
    expect(auditTypesParam(['access', 'incidents'])).toBe('access.granted,access.denied,incident.opened,incident.closed');
  });

  it('knows the group of a type', () => {
    expect(groupOf('door.forced')).toBe('doors');
    expect(groupOf('grant.delivered')).toBe('grants');
    expect(groupOf('auth.login')).toBe('security');
  });
});

describe('describeAudit', () => {
  it('names the door, the tag and its unit', () => {
    const a = item({ id: '1', doorId: 'door-1', tagId: 'tag-rtj-2310-1', unitId: 'unit-rtj-2310', reason: undefined });
    expect(describeAudit(a, { doors: { 'door-1': 'Street door' }, tags: new Map([['tag-rtj-2310-1', 'RTJ 2310-1']]) }, { timeZone: 'UTC' })).toBe(
      '12:03:41 Access granted — Street door, tag RTJ 2310-1 (unit-rtj-2310)',
    );
  });

  it('falls back to ids and shows a denial reason and an unknown tag uid', () => {
    const a = item({ id: '2', type: 'access.denied', data: { door: 'd1', credential: 'tag', uid: 'DEADBEEF' }, reason: 'unknown-credential' });
    expect(describeAudit(a, {}, { timeZone: 'UTC' })).toBe('12:03:41 Access denied — door d1, unknown tag DEADBEEF, reason: unknown-credential');
  });

  it('names the user who acted and the units of a grant', () => {
    const a = item({
      id: '3',
      type: 'grant.created',
      actor: { kind: 'user', id: 'usr-1', name: 'dispatch' },
      data: { unitIds: ['unit-a', 'unit-b'], doorIds: ['d1', 'd2', 'd3'] },
    });
    expect(describeAudit(a, { units: { 'unit-a': 'RTJ 2310' } }, { timeZone: 'UTC' })).toBe('12:03:41 Access granted to units — units RTJ 2310, unit-b, 3 doors, by dispatch');
  });

  it('says a PIN was used, never which', () => {
    const a = item({ id: '4', doorId: 'door-1', data: { door: 'd1', credential: 'pin' } });
    expect(describeAudit(a, {}, { timeZone: 'UTC' })).toBe('12:03:41 Access granted — door-1, PIN');
  });

  it('mentions the controller of a presence change', () => {
    const a = item({ id: '5', type: 'controller.offline', controllerId: 'ctl-7' });
    expect(describeAudit(a, { controllers: { 'ctl-7': 'Basement' } }, { timeZone: 'UTC' })).toBe('12:03:41 Controller offline — controller Basement');
  });
});

describe('log filters and merging', () => {
  it('matches a live entry as the API filters', () => {
    const a = item({ id: '7', incidentId: 'inc-1' });
    expect(matchesAuditFilter(a, {})).toBe(true);
    expect(matchesAuditFilter(a, { buildingId: 'bld-2' })).toBe(false);
    expect(matchesAuditFilter(a, { incidentId: 'inc-1', groups: ['access'] })).toBe(true);
    expect(matchesAuditFilter(a, { groups: ['doors'] })).toBe(false);
    expect(matchesAuditFilter(a, { from: at + 1 })).toBe(false);
    expect(matchesAuditFilter(a, { to: at })).toBe(true);
  });

  it('merges newest first, once per id', () => {
    const old = item({ id: '9', at: at - 1000 });
    const mid = item({ id: '10', at });
    const sameTimeLater = item({ id: '11', at });
    const merged = mergeAudit([mid, old], [sameTimeLater, mid, old]);
    expect(merged.map((x) => x.id)).toEqual(['11', '10', '9']);
    expect(mergeAudit(merged, [mid])).toBe(merged);
    expect(compareNewestFirst(item({ id: '100' }), item({ id: '99' }))).toBeLessThan(0);
  });
});
