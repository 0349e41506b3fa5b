// LiveState, the socket's picture in the browser: an alert when a controller on a live route goes
// offline (and only then), cleared when it returns; the audit feed keeps each entry once, bounded,
// and remembers the last id for the resume on reconnect (DESIGN §6).
import { describe, expect, it } from 'vitest';
import type { AuditItem, ControllerLive, Grant } from '../../src/lib/api/types';
import { FEED_LIMIT, LiveState, isLiveGrant } from '../../src/lib/state/live.svelte';

const NOW = 1_800_000_000_000;
const ctl = (id: string, online: boolean): ControllerLive => ({ id, online, appliedVersion: 1, lastSeq: 1, clockSafe: true, doors: [] });
const grant = (id: string, controllerId: string, over: Partial<Grant> = {}): Grant => ({
  id,
  incidentId: 'inc-1',
  buildingId: 'bld-1',
  doorIds: ['d1'],
  unitIds: ['u1'],
  notBefore: NOW - 1000,
  notAfter: NOW + 60_000,
  status: 'active',
  createdBy: 'user-1',
  createdAt: NOW - 1000,
  deliveries: [{ controllerId, version: 1, state: 'delivered' }],
  ...over,
});
const entry = (id: number): AuditItem => ({ id: String(id), hash: 'h', v: 1, chain: 'building:bld-1', seq: id, at: NOW + id, type: 'access.granted', actor: { kind: 'controller', id: 'ctl-1' } });

describe('LiveState', () => {
  it('alerts when a controller on a live grant goes offline, once, and clears when it is back', () => {
    const live = new LiveState();
    const raised: string[] = [];
    live.onAlert = (a) => raised.push(`${a.controllerId}:${a.grantIds.join(',')}`);
    live.grants.set('g-1', grant('g-1', 'ctl-1'));
    live.grants.set('g-old', grant('g-old', 'ctl-1', { status: 'expired' }));
    live.applyController(ctl('ctl-1', true), NOW);
    live.applyController(ctl('ctl-2', true), NOW);
    expect(live.alerts).toEqual([]);

    live.applyController(ctl('ctl-1', false), NOW);
    expect(raised).toEqual(['ctl-1:g-1']);
    expect(live.alerts.map((a) => a.controllerId)).toEqual(['ctl-1']);
    // Still offline: no second alert; a controller on no route going offline: none.
    live.applyController(ctl('ctl-1', false), NOW);
    live.applyController(ctl('ctl-2', false), NOW);
    expect(raised).toHaveLength(1);

    live.applyController(ctl('ctl-1', true), NOW);
    expect(live.alerts).toEqual([]);
  });

  it('raises no alert for a grant that has ended', () => {
    const live = new LiveState();
    live.grants.set('g-1', grant('g-1', 'ctl-1', { notAfter: NOW - 1 }));
    live.applyController(ctl('ctl-1', true), NOW);
    live.applyController(ctl('ctl-1', false), NOW);
    expect(live.alerts).toEqual([]);
    expect(isLiveGrant(grant('g', 'c', { status: 'pending' }), NOW)).toBe(true);
    expect(isLiveGrant(grant('g', 'c', { status: 'revoked' }), NOW)).toBe(false);
  });

  it('keeps each audit entry once, at most FEED_LIMIT, and the highest id as the resume point', () => {
    const live = new LiveState();
    live.addAudit(entry(1));
    live.addAudit(entry(2));
    live.addAudit(entry(2));
    expect(live.feed.map((a) => a.id)).toEqual(['1', '2']);
    expect(live.lastAuditId).toBe('2');
    for (let i = 3; i <= FEED_LIMIT + 10; i++) live.addAudit(entry(i));
    expect(live.feed).toHaveLength(FEED_LIMIT);
    expect(live.feed[0]?.id).toBe('11');
    expect(live.lastAuditId).toBe(String(FEED_LIMIT + 10));
  });
});
