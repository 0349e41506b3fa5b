/**
 * Which audit entries belong to an incident's live feed (pure, unit-tested). The wording of each
 * line is logic/audit-text.ts's, shared with the owner log.
 */
import type { AuditItem, Incident } from '../../api/types';

/**
 * An incident's entries, in the order given: those naming it or one of its grants, and those about
 * its buildings while it is open (door states, controllers going offline) — what the dispatcher
 * must see.
 */
export function incidentFeed(feed: readonly AuditItem[], incident: Pick<Incident, 'id' | 'buildingIds' | 'openedAt' | 'closedAt'>, grantIds: ReadonlySet<string>, limit = 200): AuditItem[] {
  const buildings = new Set(incident.buildingIds);
  const out: AuditItem[] = [];
  for (const a of feed) {
    if (out.length >= limit) break;
    const mine =
      a.incidentId === incident.id ||
      (a.grantId !== undefined && grantIds.has(a.grantId)) ||
      (a.buildingId !== undefined && buildings.has(a.buildingId) && a.at >= incident.openedAt && (incident.closedAt === undefined || a.at <= incident.closedAt));
    if (mine) out.push(a);
  }
  return out;
}
