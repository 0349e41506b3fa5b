/**
 * Building readiness (DESIGN §9, issue 8), computed on the gateway — the one source the map, the
 * building card and the owner's view show. Pure: the caller loads the building, its route doors,
 * each controller's live state and desired version, and the last drill.
 *
 * - `no-access`: emergency access is disabled, or no door is on the emergency route.
 * - `offline`: a route door's controller is offline (or was never seen): a grant would not reach it.
 * - `degraded`: every route controller is online, but one is clock-unsafe or behind its desired
 *   version, or the last drill failed, is missing or is older than `drillMaxAgeMs`.
 * - `ready`: all of §9 holds.
 */
import type { Building, ControllerLive, Door, Drill } from '../../domain/types.js';

export type ReadinessState = 'ready' | 'degraded' | 'offline' | 'no-access';

export type ReadinessReasonCode =
  | 'access-disabled'
  | 'no-route-doors'
  | 'controller-offline'
  | 'clock-unsafe'
  | 'behind-version'
  | 'drill-failed'
  | 'drill-never-run'
  | 'drill-too-old';

/** One reason, for a door (its controller) or for the whole building (`doorId` absent). */
export interface ReadinessReason {
  code: ReadinessReasonCode;
  doorId?: string;
  controllerId?: string;
  /** One line for people: `Street door: controller ctl-1 offline`. */
  text: string;
}

export interface BuildingReadiness {
  buildingId: string;
  state: ReadinessState;
  reasons: ReadinessReason[];
  /** The last finished drill, for the building card. */
  lastDrill?: { id: string; status: 'passed' | 'failed'; at: number; reasons: string[] };
}

export interface ReadinessInput {
  building: Pick<Building, 'id' | 'policy'>;
  /** Every door of the building; the route is worked out here (emergency, and in the policy's list when it has one). */
  doors: readonly Pick<Door, 'id' | 'name' | 'controllerId' | 'emergency' | 'routeOrder'>[];
  live: (controllerId: string) => Pick<ControllerLive, 'online' | 'clockSafe' | 'appliedVersion'> | undefined;
  desiredVersion: (controllerId: string) => number;
  /** The last finished drill (passed or failed), if any. */
  lastDrill: Pick<Drill, 'id' | 'status' | 'endedAt' | 'startedAt' | 'reasons'> | undefined;
  now: number;
  /** A drill older than this no longer counts as passed. Default 0 = never too old. */
  drillMaxAgeMs?: number;
}

/** The doors a grant may use in this building (the same rule as GrantService), in route order. */
export function routeDoors<D extends Pick<Door, 'id' | 'emergency' | 'routeOrder'>>(policy: Pick<Building['policy'], 'doorIds'>, doors: readonly D[]): D[] {
  return doors.filter((d) => d.emergency && (policy.doorIds.length === 0 || policy.doorIds.includes(d.id))).sort((a, b) => a.routeOrder - b.routeOrder);
}

export function computeReadiness(i: ReadinessInput): BuildingReadiness {
  const reasons: ReadinessReason[] = [];
  const last = i.lastDrill;
  const lastDrill = last && last.status !== 'running' ? { id: last.id, status: last.status, at: last.endedAt ?? last.startedAt, reasons: [...last.reasons] } : undefined;
  const out = (state: ReadinessState): BuildingReadiness => ({ buildingId: i.building.id, state, reasons, ...(lastDrill ? { lastDrill } : {}) });
  if (!i.building.policy.enabled) {
    reasons.push({ code: 'access-disabled', text: 'Emergency access is disabled' });
    return out('no-access');
  }
  const route = routeDoors(i.building.policy, i.doors);
  if (route.length === 0) {
    reasons.push({ code: 'no-route-doors', text: 'No door is on the emergency route' });
    return out('no-access');
  }
  let offline = false;
  let degraded = false;
  for (const d of route) {
    const live = i.live(d.controllerId);
    const about = { doorId: d.id, controllerId: d.controllerId };
    if (!live || !live.online) {
      offline = true;
      reasons.push({ code: 'controller-offline', ...about, text: `${d.name}: controller ${d.controllerId} offline` });
      continue;
    }
    if (!live.clockSafe) {
      degraded = true;
      reasons.push({ code: 'clock-unsafe', ...about, text: `${d.name}: controller ${d.controllerId} clock unsafe` });
    }
    const desired = i.desiredVersion(d.controllerId);
    if (live.appliedVersion < desired) {
      degraded = true;
      reasons.push({ code: 'behind-version', ...about, text: `${d.name}: controller ${d.controllerId} behind (version ${live.appliedVersion} of ${desired})` });
    }
  }
  if (!lastDrill) {
    degraded = true;
    reasons.push({ code: 'drill-never-run', text: 'No drill has been run' });
  } else if (lastDrill.status === 'failed') {
    degraded = true;
    reasons.push({ code: 'drill-failed', text: `Last drill failed: ${lastDrill.reasons.join('; ') || 'see its history'}` });
  } else if ((i.drillMaxAgeMs ?? 0) > 0 && i.now - lastDrill.at > (i.drillMaxAgeMs ?? 0)) {
    degraded = true;
    reasons.push({ code: 'drill-too-old', text: `Last drill passed ${Math.floor((i.now - lastDrill.at) / 86_400_000)} days ago` });
  }
  return out(offline ? 'offline' : degraded ? 'degraded' : 'ready');
}
