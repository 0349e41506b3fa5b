/**
 * The emergency route of a building and the state of each door in a grant (DESIGN §4 flows 1–3).
 * Pure functions over the API's shapes, so they are unit-tested without a browser.
 */
import type { AuditItem, ControllerLive, Door, EmergencyPolicy, Grant } from '../api/types';

const byRoute = (a: Door, b: Door): number => a.routeOrder - b.routeOrder || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Every door of the building in route order (the street door first). */
export function sortByRoute(doors: readonly Door[]): Door[] {
  return [...doors].sort(byRoute);
}

/**
 * The doors a grant may name: emergency doors, limited to `policy.doorIds` when it names any
 * (empty = every emergency door), in route order.
 */
export function routeDoors(doors: readonly Door[], policy: Pick<EmergencyPolicy, 'doorIds'>): Door[] {
  const allowed = policy.doorIds.length > 0 ? new Set(policy.doorIds) : undefined;
  return sortByRoute(doors.filter((d) => d.emergency && (allowed === undefined || allowed.has(d.id))));
}

/** The grant duration the form proposes: 30 minutes, or the policy's maximum when lower. */
export function defaultMinutes(maxMinutes: number): number {
  return Math.max(1, Math.min(30, maxMinutes));
}

/** A duration the API accepts: a whole number of minutes in [1, max]. */
export function clampMinutes(minutes: number, maxMinutes: number): number {
  if (!Number.isFinite(minutes)) return defaultMinutes(maxMinutes);
  return Math.max(1, Math.min(maxMinutes, Math.round(minutes)));
}

export type DoorGrantState = 'pending' | 'delivered' | 'used';

/**
 * A door in a grant: `used` once an `access.granted` entry names this grant and door, else
 * `delivered` once the door's controller applied a version covering the grant, else `pending`.
 */
export function doorGrantState(grant: Pick<Grant, 'id' | 'deliveries'>, door: Pick<Door, 'id' | 'controllerId'>, feed: readonly AuditItem[]): DoorGrantState {
  if (feed.some((a) => a.type === 'access.granted' && a.grantId === grant.id && a.doorId === door.id)) return 'used';
  const d = grant.deliveries.find((x) => x.controllerId === door.controllerId);
  return d?.state === 'delivered' ? 'delivered' : 'pending';
}

export interface DoorLive {
  online: boolean;
  /** Undefined when the controller has not reported this door. */
  locked?: boolean;
  open?: boolean;
}

/** A door's live state from its controller's (by the door's local ref). */
export function doorLive(door: Pick<Door, 'ref'>, controller: ControllerLive | undefined): DoorLive {
  if (!controller) return { online: false };
  const d = controller.doors.find((x) => x.ref === door.ref);
  return d ? { online: controller.online, locked: d.locked, open: d.open } : { online: controller.online };
}

/** Short text for a door's live state: "online · locked · closed", "offline". */
export function doorLiveText(s: DoorLive): string {
  if (!s.online) return 'offline';
  const parts = ['online'];
  if (s.locked !== undefined) parts.push(s.locked ? 'locked' : 'unlocked');
  if (s.open !== undefined) parts.push(s.open ? 'open' : 'closed');
  return parts.join(' · ');
}

/** Units grouped by agency (agencies in the given order, only those with units, only allowed ones). */
export function unitsByAgency<A extends { id: string }, U extends { agencyId: string }>(
  agencies: readonly A[],
  units: readonly U[],
  allowedAgencyIds: readonly string[] = [],
): { agency: A; units: U[] }[] {
  const allowed = allowedAgencyIds.length > 0 ? new Set(allowedAgencyIds) : undefined;
  return agencies
    .filter((a) => allowed === undefined || allowed.has(a.id))
    .map((agency) => ({ agency, units: units.filter((u) => u.agencyId === agency.id) }))
    .filter((g) => g.units.length > 0);
}
