/**
 * `/api/v1/units` (issue 3 CRUD; DESIGN §3 Unit; §7: admin writes, dispatcher reads).
 */
import { Type } from '@sinclair/typebox';
import type { Unit } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { clockOf, Id, IdParams, idFor, listPage, liveGrants, mustExist, Page, PageQuery, PATCH_OPTIONS, refuseIfReferenced, Text, unique, type AdminDeps } from './common.js';

export const UnitSchema = Type.Object({ id: Type.String(), agencyId: Type.String(), callSign: Type.String() }, { additionalProperties: false });

const CallSign = Text(32, 'e.g. `RTJ 2310`');
const CreateBody = Type.Object({ id: Type.Optional(Id), agencyId: Id, callSign: CallSign });
const UpdateBody = Type.Object({ agencyId: Type.Optional(Id), callSign: Type.Optional(CallSign) }, PATCH_OPTIONS);

const pick = (u: Unit): Unit => ({ id: u.id, agencyId: u.agencyId, callSign: u.callSign });

export function unitRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['units'];
  return [
    route({
      method: 'get',
      path: '/api/v1/units',
      summary: 'List units',
      tags,
      auth: ['admin', 'dispatcher'],
      query: Type.Object({ ...PageQuery, agencyId: Type.Optional(Id) }),
      responses: { 200: Page(UnitSchema) },
      handler: ({ query }) => listPage(store, 'units', query, pick, query.agencyId ? { field: 'agencyId', value: query.agencyId } : undefined),
    }),
    route({
      method: 'get',
      path: '/api/v1/units/{id}',
      summary: 'Get a unit',
      tags,
      auth: ['admin', 'dispatcher'],
      params: IdParams,
      responses: { 200: UnitSchema },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const u = await store.get('units', params.id);
        if (!u) throw AppError.notFound('unit');
        return pick(u);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/units',
      summary: 'Create a unit',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: UnitSchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        await mustExist(store, 'agencies', body.agencyId, '/agencyId', 'agency');
        const u: Unit = { id: idFor('unit', body.id, now()), agencyId: body.agencyId, callSign: body.callSign.normalize('NFC') };
        await unique(() => store.insert('units', u));
        setHeader('Location', `/api/v1/units/${u.id}`);
        return u;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/units/{id}',
      summary: 'Change a unit',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: UnitSchema },
      errors: ['not-found'],
      handler: async ({ params, body }) => {
        if (!(await store.get('units', params.id))) throw AppError.notFound('unit');
        if (body.agencyId !== undefined) await mustExist(store, 'agencies', body.agencyId, '/agencyId', 'agency');
        const next = await store.update('units', params.id, (cur) => ({
          ...cur,
          ...(body.agencyId !== undefined ? { agencyId: body.agencyId } : {}),
          ...(body.callSign !== undefined ? { callSign: body.callSign.normalize('NFC') } : {}),
        }));
        if (!next) throw AppError.notFound('unit');
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/units/{id}',
      summary: 'Delete a unit without tags, users or live grants',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params }) => {
        const id = params.id;
        if (!(await store.get('units', id))) throw AppError.notFound('unit');
        await refuseIfReferenced(store, 'tags', { field: 'unitId', value: id }, 'the unit still has tags');
        await refuseIfReferenced(store, 'users', { field: 'unitId', value: id }, 'users still ride with the unit');
        if ((await liveGrants(store, { field: 'unitIds', value: id })).length > 0) throw AppError.conflict('the unit is in a live grant');
        await store.delete('units', id);
      },
    }),
  ];
}
