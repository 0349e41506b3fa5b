/**
 * The responder's API (issue 5, DESIGN §4 flows 2–3, §7 "responder: own unit's active grants"):
 * what the crew needs at the door — its unit's live grants with the PIN, the building and the
 * route — and "Open door" from the phone where the building's policy allows it.
 *
 * Opening goes the dispatcher's way (incidents/routes.ts `POST /doors/{id}/pulse`): the
 * `door.pulse.requested` entry is stored BEFORE the command, with the responder as its actor, so a
 * door never opens without its entry in the trail.
 *
 * Scope: a grant of another unit is `not-found`, never `forbidden` (whether it exists is not the
 * caller's to learn). An admin has no unit: it lists nothing here, and (DESIGN §7 "admin: all")
 * may open a door through any live grant.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { AuditActor } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Building, Door, Grant } from '../../domain/types.js';
import { route, type Principal, type RouteDef } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';
import type { AuditSink } from '../audit/audit-log.js';
import { openGrants } from '../grants/desired-state.js';
import { GrantView, grantView } from '../incidents/routes.js';

const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });
const LatLng = Type.Object({ lat: Type.Number(), lng: Type.Number() });
const DoorKind = Type.Union(['entrance', 'stairwell', 'floor', 'elevator', 'garage', 'gate', 'apartment'].map((k) => Type.Literal(k)));

/** One live grant as the crew sees it (dispatch-ui `MyGrant`). */
export const MyGrantView = Type.Object({
  grant: GrantView,
  incident: Type.Object({ id: Type.String(), kind: Type.String(), address: Type.Optional(Type.String()) }),
  building: Type.Object({ id: Type.String(), name: Type.String(), address: Type.String(), location: LatLng }),
  doors: Type.Array(
    Type.Object({
      id: Type.String(),
      name: Type.String(),
      kind: DoorKind,
      floor: Type.Optional(Type.Integer()),
      routeOrder: Type.Integer(),
      /** The building's policy lets this door be opened from the phone now. */
      canOpen: Type.Boolean(),
    }),
  ),
});
export type MyGrantView = Static<typeof MyGrantView>;

export interface MeRoutesDeps {
  store: StorePort;
  /** Publishes "open now" to a door's controller; returns the command id (the dispatcher's pulse). */
  pulse: (controllerId: string, door: string, seconds: number) => Promise<string>;
  audit?: AuditSink;
  now?: () => number;
}

const RESPONDER = ['admin', 'responder'] as const;

/** Live = pending or active and not past its end (the scheduler may not have expired it yet). */
const isLive = (g: Grant, at: number): boolean => (g.status === 'pending' || g.status === 'active') && g.notAfter > at;

/** The building's policy lets a granted door be opened: enabled, an emergency door, and allowed by the owner. */
function policyAllows(b: Building | undefined, door: Door): boolean {
  if (!b?.policy.enabled || !door.emergency) return false;
  return b.policy.doorIds.length === 0 || b.policy.doorIds.includes(door.id);
}

export function meRoutes(d: MeRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  const actorOf = (p: Principal): AuditActor => ({ kind: 'user', id: p.userId });

  async function myGrant(g: Grant, p: Principal): Promise<MyGrantView | undefined> {
    const [incident, building] = await Promise.all([d.store.get('incidents', g.incidentId), d.store.get('buildings', g.buildingId)]);
    if (!incident || !building) return undefined;
    const doors = (await Promise.all(g.doorIds.map((id) => d.store.get('doors', id)))).filter((x): x is Door => x !== undefined && x.buildingId === g.buildingId);
    doors.sort((a, b) => a.routeOrder - b.routeOrder || a.id.localeCompare(b.id));
    return {
      grant: grantView(g, p),
      incident: { id: incident.id, kind: incident.kind, ...(incident.address !== undefined ? { address: incident.address } : {}) },
      building: { id: building.id, name: building.name, address: building.address, location: { lat: building.location.lat, lng: building.location.lng } },
      doors: doors.map((x) => ({
        id: x.id,
        name: x.name,
        kind: x.kind,
        ...(x.floor !== undefined ? { floor: x.floor } : {}),
        routeOrder: x.routeOrder,
        canOpen: policyAllows(building, x),
      })),
    };
  }

  return [
    route({
      method: 'get',
      path: '/api/v1/me/grants',
      summary: "The caller's unit's live grants: building, route doors, incident and PIN",
      description: 'Pending and active grants not past `notAfter`, soonest end first. The PIN is included while the grant lives. An admin (no unit) gets an empty list.',
      tags: ['responder'],
      auth: RESPONDER,
      responses: { 200: Type.Object({ items: Type.Array(MyGrantView) }) },
      handler: async ({ principal }) => {
        const unit = principal.unitId;
        if (unit === undefined) return { items: [] };
        const t = now();
        const mine = (await openGrants(d.store)).filter((g) => g.unitIds.includes(unit) && isLive(g, t)).sort((a, b) => a.notAfter - b.notAfter);
        const items = await Promise.all(mine.map((g) => myGrant(g, principal)));
        return { items: items.filter((x): x is MyGrantView => x !== undefined) };
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/me/doors/{id}/open',
      summary: 'Open a door of a live grant of the caller\'s unit now (the door\'s pulse time)',
      description:
        '`not-found` for a grant of another unit or a door not in it, `conflict` when the grant has ended, `policy-violation` when the building\'s policy does not allow this door. Audited as `door.pulse.requested` before the command is sent.',
      tags: ['responder'],
      auth: RESPONDER,
      params: Type.Object({ id: Id }),
      body: Type.Object({ grantId: Id }),
      responses: { 202: Type.Object({ commandId: Type.String() }) },
      errors: ['not-found', 'conflict', 'policy-violation'],
      handler: async ({ params, body, principal }) => {
        const g = await d.store.get('grants', body.grantId);
        const mine = g !== undefined && (principal.role === 'admin' || (principal.unitId !== undefined && g.unitIds.includes(principal.unitId)));
        if (!g || !mine) throw AppError.notFound('grant');
        if (!g.doorIds.includes(params.id)) throw AppError.notFound('door');
        const door = await d.store.get('doors', params.id);
        if (!door || door.buildingId !== g.buildingId) throw AppError.notFound('door');
        if (!isLive(g, now())) throw AppError.conflict('the grant has ended');
        const building = await d.store.get('buildings', g.buildingId);
        if (!policyAllows(building, door)) throw AppError.policy('the building\'s policy does not allow opening this door');
        const incident = await d.store.get('incidents', g.incidentId);
        if (incident?.status !== 'open') throw AppError.conflict('the incident is closed');
        // Before the command: a door never opens without its entry in the trail.
        await d.audit?.record({
          type: 'door.pulse.requested',
          actor: actorOf(principal),
          buildingId: door.buildingId,
          incidentId: g.incidentId,
          grantId: g.id,
          doorId: door.id,
          controllerId: door.controllerId,
          ...(principal.unitId !== undefined ? { unitId: principal.unitId } : {}),
          data: { seconds: door.pulseSeconds, door: door.ref, via: 'responder' },
        });
        return { commandId: await d.pulse(door.controllerId, door.ref, door.pulseSeconds) };
      },
    }),
  ];
}
