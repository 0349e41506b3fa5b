/**
 * `/api/v1/buildings` and `/api/v1/buildings/{id}/policy` (issue 3; DESIGN §3 Building, §7):
 * admin and dispatcher read every building, an owner only its organisation's (another's is 404);
 * the admin writes; the policy is the admin's or the owning organisation's to set.
 */
import { Type } from '@sinclair/typebox';
import type { Building, EmergencyPolicy } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';
import {
  clockOf,
  DEFAULT_PAGE,
  Id,
  IdParams,
  idFor,
  LatLng,
  listPage,
  liveGrants,
  mustExist,
  Page,
  PageQuery,
  PATCH_OPTIONS,
  refuseIfReferenced,
  Text,
  unique,
  visibleBuilding,
  type AdminDeps,
  type PageOf,
} from './common.js';

/**
 * The largest page of `GET /api/v1/buildings` (other lists: MAX_PAGE): twice the 10,000 buildings
 * DESIGN §12 plans for, so the dispatch map reads a whole city in one request rather than 21 pages
 * of 500 one after another (issue 7, scenario 5).
 */
export const MAX_BUILDINGS_PAGE = 20_000;

/** The longest grant a policy may allow: a day. */
export const MAX_POLICY_MINUTES = 24 * 60;

export const PolicySchema = Type.Object({
  enabled: Type.Boolean(),
  maxMinutes: Type.Integer({ minimum: 1, maximum: MAX_POLICY_MINUTES, description: 'Longest grant, minutes' }),
  allowedAgencyIds: Type.Array(Id, { maxItems: 100, uniqueItems: true, description: 'Empty = every agency' }),
  doorIds: Type.Array(Id, { maxItems: 500, uniqueItems: true, description: "Empty = every door on the building's emergency route" }),
});

export const BuildingSchema = Type.Object(
  {
    id: Type.String(),
    orgId: Type.String(),
    name: Type.String(),
    address: Type.String(),
    location: LatLng,
    policy: PolicySchema,
    createdAt: Type.Integer(),
    updatedAt: Type.Integer(),
  },
  { additionalProperties: false },
);

const CreateBody = Type.Object({ id: Type.Optional(Id), orgId: Id, name: Text(120), address: Text(200), location: LatLng, policy: Type.Optional(PolicySchema) });
const UpdateBody = Type.Object(
  { orgId: Type.Optional(Id), name: Type.Optional(Text(120)), address: Type.Optional(Text(200)), location: Type.Optional(LatLng) },
  PATCH_OPTIONS,
);

export const DEFAULT_POLICY: Readonly<EmergencyPolicy> = { enabled: true, maxMinutes: 30, allowedAgencyIds: [], doorIds: [] };

const pick = (b: Building): Building => ({
  id: b.id,
  orgId: b.orgId,
  name: b.name,
  address: b.address,
  location: { lat: b.location.lat, lng: b.location.lng },
  policy: { enabled: b.policy.enabled, maxMinutes: b.policy.maxMinutes, allowedAgencyIds: [...b.policy.allowedAgencyIds], doorIds: [...b.policy.doorIds] },
  createdAt: b.createdAt,
  updatedAt: b.updatedAt,
});

/** Every door named is in this building and every agency exists; 400 at the first that is not. */
async function checkPolicy(store: StorePort, buildingId: string | undefined, p: EmergencyPolicy, at: string): Promise<void> {
  for (const [i, id] of p.doorIds.entries()) {
    const d = buildingId === undefined ? undefined : await store.get('doors', id);
    if (d === undefined || d.buildingId !== buildingId) throw AppError.badRequest(`${at}/doorIds/${i}`, 'no such door in this building');
  }
  for (const [i, id] of p.allowedAgencyIds.entries()) await mustExist(store, 'agencies', id, `${at}/allowedAgencyIds/${i}`, 'agency');
}

export function buildingRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['buildings'];
  return [
    route({
      method: 'get',
      path: '/api/v1/buildings',
      summary: 'List the buildings the caller may see',
      description: 'An owner sees only its organisation’s buildings, whatever `orgId` it asks for. `limit` goes up to 20,000 here (500 on other lists): the dispatch map reads every building in one request.',
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      query: Type.Object({
        after: PageQuery.after,
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_BUILDINGS_PAGE, default: DEFAULT_PAGE })),
        orgId: Type.Optional(Id),
      }),
      responses: { 200: Page(BuildingSchema) },
      handler: async ({ query, principal }): Promise<PageOf<Building>> => {
        let orgId = query.orgId;
        if (principal.role === 'owner') {
          if (principal.orgId === undefined || (orgId !== undefined && orgId !== principal.orgId)) return { items: [] };
          orgId = principal.orgId;
        }
        return listPage(store, 'buildings', query, pick, orgId !== undefined ? { field: 'orgId', value: orgId } : undefined);
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}',
      summary: 'Get a building',
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: IdParams,
      responses: { 200: BuildingSchema },
      errors: ['not-found'],
      handler: async ({ params, principal }) => pick(await visibleBuilding(store, params.id, principal)),
    }),
    route({
      method: 'post',
      path: '/api/v1/buildings',
      summary: 'Create a building',
      description: 'A new building has no doors yet, so its policy names none.',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: BuildingSchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        await mustExist(store, 'organisations', body.orgId, '/orgId', 'organisation');
        const policy = body.policy ?? DEFAULT_POLICY;
        await checkPolicy(store, undefined, policy, '/policy');
        const t = now();
        const b: Building = pick({
          id: idFor('bld', body.id, t),
          orgId: body.orgId,
          name: body.name.normalize('NFC'),
          address: body.address.normalize('NFC'),
          location: body.location,
          policy,
          createdAt: t,
          updatedAt: t,
        });
        await unique(() => store.insert('buildings', b));
        deps.onBuildingChanged?.(b.id);
        setHeader('Location', `/api/v1/buildings/${b.id}`);
        return b;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/buildings/{id}',
      summary: 'Change a building (not its policy)',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: BuildingSchema },
      errors: ['not-found'],
      handler: async ({ params, body }) => {
        if (!(await store.get('buildings', params.id))) throw AppError.notFound('building');
        if (body.orgId !== undefined) await mustExist(store, 'organisations', body.orgId, '/orgId', 'organisation');
        const t = now();
        const next = await store.update('buildings', params.id, (cur) => ({
          ...cur,
          ...(body.orgId !== undefined ? { orgId: body.orgId } : {}),
          ...(body.name !== undefined ? { name: body.name.normalize('NFC') } : {}),
          ...(body.address !== undefined ? { address: body.address.normalize('NFC') } : {}),
          ...(body.location !== undefined ? { location: { lat: body.location.lat, lng: body.location.lng } } : {}),
          updatedAt: t,
        }));
        deps.onBuildingChanged?.(params.id);
        if (!next) throw AppError.notFound('building');
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/buildings/{id}',
      summary: 'Delete a building without doors, controllers or live grants',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params }) => {
        const id = params.id;
        if (!(await store.get('buildings', id))) throw AppError.notFound('building');
        await refuseIfReferenced(store, 'doors', { field: 'buildingId', value: id }, 'the building still has doors');
        await refuseIfReferenced(store, 'controllers', { field: 'buildingId', value: id }, 'the building still has controllers');
        if ((await liveGrants(store, { field: 'buildingId', value: id })).length > 0) throw AppError.conflict('the building has a live grant');
        await store.delete('buildings', id);
        deps.onBuildingChanged?.(id);
      },
    }),
    route({
      method: 'put',
      path: '/api/v1/buildings/{id}/policy',
      summary: "Set a building's emergency policy",
      description: 'For the admin and for an owner of the building. Applies to grants made from now on.',
      tags,
      auth: ['admin', 'owner'],
      params: IdParams,
      body: PolicySchema,
      responses: { 200: BuildingSchema },
      errors: ['not-found'],
      handler: async ({ params, body, principal, log }) => {
        const before = await visibleBuilding(store, params.id, principal);
        await checkPolicy(store, params.id, body, '');
        const policy: EmergencyPolicy = { enabled: body.enabled, maxMinutes: body.maxMinutes, allowedAgencyIds: [...body.allowedAgencyIds], doorIds: [...body.doorIds] };
        // Audited before the change (issue 4): who may open which doors, for how long.
        await deps.audit?.record({
          type: 'policy.changed',
          actor: { kind: 'user', id: principal.userId },
          buildingId: before.id,
          data: { policy, previous: pick(before).policy },
        });
        const t = now();
        const next = await store.update('buildings', params.id, (cur) => ({ ...cur, policy, updatedAt: t }));
        deps.onBuildingChanged?.(params.id);
        if (!next) throw AppError.notFound('building');
        log.info('building policy set', { building: next.id, by: principal.userId, enabled: policy.enabled });
        return pick(next);
      },
    }),
  ];
}
