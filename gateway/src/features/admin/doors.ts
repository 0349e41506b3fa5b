/**
 * Doors under `/api/v1/buildings/{id}/doors` (issue 3; DESIGN §3 Door, §7): read with the
 * building's scoping, listed in route order; written by the admin. A door's controller must be
 * one of the building's, and (controller, ref) names one door only.
 */
import { Type } from '@sinclair/typebox';
import { ControllerId, DoorRef } from '@smart-passage/protocol';
import type { Door } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { clockOf, DEFAULT_PAGE, Id, idFor, LatLng, liveGrants, MAX_PAGE, Page, PATCH_OPTIONS, Text, unique, visibleBuilding, type AdminDeps, type PageOf } from './common.js';

const DoorKind = Type.Union(
  (['entrance', 'stairwell', 'floor', 'elevator', 'garage', 'gate', 'apartment'] as const).map((k) => Type.Literal(k)),
);
const MAX_ROUTE_ORDER = 9999;
const Floor = Type.Integer({ minimum: -20, maximum: 300 });
const RouteOrder = Type.Integer({ minimum: 1, maximum: MAX_ROUTE_ORDER, description: '1 = the street door' });
const PulseSeconds = Type.Integer({ minimum: 1, maximum: 60 });

export const DoorSchema = Type.Object(
  {
    id: Type.String(),
    buildingId: Type.String(),
    name: Type.String(),
    kind: DoorKind,
    floor: Type.Optional(Type.Integer()),
    location: Type.Optional(LatLng),
    routeOrder: Type.Integer(),
    controllerId: Type.String(),
    ref: Type.String(),
    pulseSeconds: Type.Integer(),
    emergency: Type.Boolean(),
  },
  { additionalProperties: false },
);

const CreateBody = Type.Object({
  id: Type.Optional(Id),
  name: Text(120),
  kind: DoorKind,
  floor: Type.Optional(Floor),
  location: Type.Optional(LatLng),
  routeOrder: RouteOrder,
  controllerId: ControllerId,
  ref: DoorRef,
  pulseSeconds: Type.Optional(PulseSeconds),
  emergency: Type.Optional(Type.Boolean()),
});
const UpdateBody = Type.Object(
  {
    name: Type.Optional(Text(120)),
    kind: Type.Optional(DoorKind),
    floor: Type.Optional(Type.Union([Floor, Type.Null()])),
    location: Type.Optional(Type.Union([LatLng, Type.Null()])),
    routeOrder: Type.Optional(RouteOrder),
    controllerId: Type.Optional(ControllerId),
    ref: Type.Optional(DoorRef),
    pulseSeconds: Type.Optional(PulseSeconds),
    emergency: Type.Optional(Type.Boolean()),
  },
  PATCH_OPTIONS,
);

const DoorParams = Type.Object({ id: Id, doorId: Id });

/** Cursor of the route-ordered list: the last door's `routeOrder` (4 digits) and id. */
const DoorCursor = Type.String({ pattern: '^[0-9]{4}\\.[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', description: 'The `next` of the previous page.' });
const cursorOf = (d: Door): string => `${String(d.routeOrder).padStart(4, '0')}.${d.id}`;
const byRoute = (a: Door, b: Door): number => a.routeOrder - b.routeOrder || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

const pick = (d: Door): Door => ({
  id: d.id,
  buildingId: d.buildingId,
  name: d.name,
  kind: d.kind,
  ...(d.floor !== undefined ? { floor: d.floor } : {}),
  ...(d.location !== undefined ? { location: { lat: d.location.lat, lng: d.location.lng } } : {}),
  routeOrder: d.routeOrder,
  controllerId: d.controllerId,
  ref: d.ref,
  pulseSeconds: d.pulseSeconds,
  emergency: d.emergency,
});

/** The controller drives doors of this building, and no other door of it has `ref`. */
async function checkController(store: StorePort, buildingId: string, doorId: string, controllerId: string, ref: string, at: { controllerId: string }): Promise<void> {
  const ctrl = await store.get('controllers', controllerId);
  if (ctrl?.buildingId !== buildingId) throw AppError.badRequest(at.controllerId, 'no such controller in this building');
  const clash = (await listAll(store, 'doors', { field: 'controllerId', value: controllerId })).find((d) => d.ref === ref && d.id !== doorId);
  if (clash) throw new AppError('conflict', 'the controller already has a door with this ref', { details: { field: 'ref' } });
}

export function doorRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['doors'];

  async function doorOf(buildingId: string, doorId: string): Promise<Door> {
    const d = await store.get('doors', doorId);
    if (d?.buildingId !== buildingId) throw AppError.notFound('door');
    return d;
  }

  async function refuseIfLive(d: Door, what: string): Promise<void> {
    const live = await liveGrants(store, { field: 'buildingId', value: d.buildingId });
    if (live.some((g) => g.doorIds.includes(d.id))) throw AppError.conflict(`a live grant includes the door: ${what}`);
  }

  return [
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}/doors',
      summary: "A building's doors in route order",
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: Type.Object({ id: Id }),
      query: Type.Object({ after: Type.Optional(DoorCursor), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE })) }),
      responses: { 200: Page(DoorSchema) },
      errors: ['not-found'],
      handler: async ({ params, query, principal }): Promise<PageOf<Door>> => {
        await visibleBuilding(store, params.id, principal);
        const all = (await listAll(store, 'doors', { field: 'buildingId', value: params.id })).sort(byRoute);
        const after = query.after;
        const rest = after === undefined ? all : all.filter((d) => cursorOf(d) > after);
        const limit = query.limit ?? DEFAULT_PAGE;
        const items = rest.slice(0, limit).map(pick);
        const last = items[items.length - 1];
        return rest.length > limit && last !== undefined ? { items, next: cursorOf(last) } : { items };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}/doors/{doorId}',
      summary: 'Get a door',
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: DoorParams,
      responses: { 200: DoorSchema },
      errors: ['not-found'],
      handler: async ({ params, principal }) => {
        await visibleBuilding(store, params.id, principal);
        return pick(await doorOf(params.id, params.doorId));
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/buildings/{id}/doors',
      summary: 'Add a door to a building',
      tags,
      auth: ['admin'],
      params: Type.Object({ id: Id }),
      body: CreateBody,
      responses: { 201: DoorSchema },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, body, principal, setHeader }) => {
        await visibleBuilding(store, params.id, principal);
        const id = idFor('door', body.id, now());
        await checkController(store, params.id, id, body.controllerId, body.ref, { controllerId: '/controllerId' });
        const d: Door = pick({
          id,
          buildingId: params.id,
          name: body.name.normalize('NFC'),
          kind: body.kind,
          ...(body.floor !== undefined ? { floor: body.floor } : {}),
          ...(body.location !== undefined ? { location: body.location } : {}),
          routeOrder: body.routeOrder,
          controllerId: body.controllerId,
          ref: body.ref,
          pulseSeconds: body.pulseSeconds ?? 5,
          emergency: body.emergency ?? true,
        });
        await unique(() => store.insert('doors', d));
        setHeader('Location', `/api/v1/buildings/${params.id}/doors/${d.id}`);
        return d;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/buildings/{id}/doors/{doorId}',
      summary: 'Change a door',
      description: 'Its controller and ref cannot change while a live grant includes it (409): the controllers hold the grant by ref.',
      tags,
      auth: ['admin'],
      params: DoorParams,
      body: UpdateBody,
      responses: { 200: DoorSchema },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, body, principal }) => {
        await visibleBuilding(store, params.id, principal);
        const cur = await doorOf(params.id, params.doorId);
        const controllerId = body.controllerId ?? cur.controllerId;
        const ref = body.ref ?? cur.ref;
        if (controllerId !== cur.controllerId || ref !== cur.ref) {
          await checkController(store, params.id, cur.id, controllerId, ref, { controllerId: '/controllerId' });
          await refuseIfLive(cur, 'its controller and ref are fixed until the grant ends');
        }
        const next = await store.update('doors', cur.id, (d) => {
          const { floor: _f, location: _l, ...rest } = d;
          const floor = body.floor === null ? undefined : (body.floor ?? d.floor);
          const location = body.location === null ? undefined : (body.location ?? d.location);
          return pick({
            ...rest,
            ...(body.name !== undefined ? { name: body.name.normalize('NFC') } : {}),
            ...(body.kind !== undefined ? { kind: body.kind } : {}),
            ...(floor !== undefined ? { floor } : {}),
            ...(location !== undefined ? { location } : {}),
            ...(body.routeOrder !== undefined ? { routeOrder: body.routeOrder } : {}),
            controllerId,
            ref,
            ...(body.pulseSeconds !== undefined ? { pulseSeconds: body.pulseSeconds } : {}),
            ...(body.emergency !== undefined ? { emergency: body.emergency } : {}),
          });
        });
        if (!next) throw AppError.notFound('door');
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/buildings/{id}/doors/{doorId}',
      summary: 'Remove a door',
      description:
        "Refused (409) while a live grant includes it or the building's policy names it: dropping the last named door from a policy would open every emergency door.",
      tags,
      auth: ['admin'],
      params: DoorParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, principal }) => {
        const b = await visibleBuilding(store, params.id, principal);
        const d = await doorOf(params.id, params.doorId);
        if (b.policy.doorIds.includes(d.id)) throw AppError.conflict("the building's policy names the door");
        await refuseIfLive(d, 'it cannot be removed until the grant ends');
        await store.delete('doors', d.id);
      },
    }),
  ];
}
