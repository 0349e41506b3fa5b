import { describe, expect, it } from 'vitest';
import type { AuditItem } from '../../src/lib/api/types';
import { incidentFeed } from '../../src/lib/components/dispatch/incident-feed';

const item = (id: number, over: Partial<AuditItem> = {}): AuditItem => ({
  v: 1,
  chain: 'bld-1',
  seq: id,
  at: id * 1000,
  type: 'door.state',
  actor: { kind: 'system' },
  id: String(id),
  hash: 'h',
  ...over,
});

describe('incidentFeed', () => {
  const inc = { id: 'inc-1', buildingIds: ['bld-1'], openedAt: 5000 };
  // Newest first, as the view passes it.
  const feed = [
    item(10, { buildingId: 'bld-1', type: 'controller.offline' }),
    item(9, { buildingId: 'bld-2' }), // another building
    item(7, { grantId: 'g1', type: 'grant.delivered' }),
    item(6, { incidentId: 'inc-1', type: 'incident.opened' }),
    item(1, { buildingId: 'bld-1' }), // before the incident
  ];
  it('picks the incident’s entries: by incident, by grant, and its buildings while open', () => {
    expect(incidentFeed(feed, inc, new Set(['g1'])).map((a) => a.id)).toEqual(['10', '7', '6']);
  });
  it('stops at the close and at the limit', () => {
    expect(incidentFeed(feed, { ...inc, closedAt: 8000 }, new Set(['g1'])).map((a) => a.id)).toEqual(['7', '6']);
    expect(incidentFeed(feed, inc, new Set(['g1']), 1).map((a) => a.id)).toEqual(['10']);
  });
});
