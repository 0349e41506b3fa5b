/**
 * `/api/v1/agencies` (issue 3 CRUD; DESIGN §3 Agency; §7: admin writes, dispatcher reads).
 */
import { Type } from '@sinclair/typebox';
import type { Agency } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { Id, IdParams, idFor, clockOf, listPage, mustExist, Page, PageQuery, PATCH_OPTIONS, refuseIfReferenced, scanAll, Text, unique, type AdminDeps } from './common.js';

export const AgencyKindSchema = Type.Union([Type.Literal('fire'), Type.Literal('ambulance'), Type.Literal('police'), Type.Literal('rescue')]);

export const AgencySchema = Type.Object(
  { id: Type.String(), name: Type.String(), kind: AgencyKindSchema, orgId: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

const CreateBody = Type.Object({ id: Type.Optional(Id), name: Text(120), kind: AgencyKindSchema, orgId: Type.Optional(Id) });
const UpdateBody = Type.Object(
  { name: Type.Optional(Text(120)), kind: Type.Optional(AgencyKindSchema), orgId: Type.Optional(Type.Union([Id, Type.Null()], { description: 'null detaches it' })) },
  PATCH_OPTIONS,
);

const pick = (a: Agency): Agency => ({ id: a.id, name: a.name, kind: a.kind, ...(a.orgId !== undefined ? { orgId: a.orgId } : {}) });

export function agencyRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['agencies'];
  return [
    route({
      method: 'get',
      path: '/api/v1/agencies',
      summary: 'List agencies',
      tags,
      auth: ['admin', 'dispatcher'],
      query: Type.Object({ ...PageQuery, kind: Type.Optional(AgencyKindSchema) }),
      responses: { 200: Page(AgencySchema) },
      handler: ({ query }) => listPage(store, 'agencies', query, pick, query.kind ? { field: 'kind', value: query.kind } : undefined),
    }),
    route({
      method: 'get',
      path: '/api/v1/agencies/{id}',
      summary: 'Get an agency',
      tags,
      auth: ['admin', 'dispatcher'],
      params: IdParams,
      responses: { 200: AgencySchema },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const a = await store.get('agencies', params.id);
        if (!a) throw AppError.notFound('agency');
        return pick(a);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/agencies',
      summary: 'Create an agency',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: AgencySchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        if (body.orgId !== undefined) await mustExist(store, 'organisations', body.orgId, '/orgId', 'organisation');
        const a: Agency = { id: idFor('ag', body.id, now()), name: body.name.normalize('NFC'), kind: body.kind, ...(body.orgId !== undefined ? { orgId: body.orgId } : {}) };
        await unique(() => store.insert('agencies', a));
        setHeader('Location', `/api/v1/agencies/${a.id}`);
        return a;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/agencies/{id}',
      summary: 'Change an agency',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: AgencySchema },
      errors: ['not-found'],
      handler: async ({ params, body }) => {
        if (!(await store.get('agencies', params.id))) throw AppError.notFound('agency');
        if (typeof body.orgId === 'string') await mustExist(store, 'organisations', body.orgId, '/orgId', 'organisation');
        const next = await store.update('agencies', params.id, (cur) => {
          const { orgId: _old, ...rest } = cur;
          const orgId = body.orgId === null ? undefined : (body.orgId ?? cur.orgId);
          return {
            ...rest,
            ...(body.name !== undefined ? { name: body.name.normalize('NFC') } : {}),
            ...(body.kind !== undefined ? { kind: body.kind } : {}),
            ...(orgId !== undefined ? { orgId } : {}),
          };
        });
        if (!next) throw AppError.notFound('agency');
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/agencies/{id}',
      summary: 'Delete an agency without units',
      description: 'Refused (409) while units belong to it or a building policy names it: dropping the last allowed agency from a policy would open the building to every agency.',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params }) => {
        const id = params.id;
        if (!(await store.get('agencies', id))) throw AppError.notFound('agency');
        await refuseIfReferenced(store, 'units', { field: 'agencyId', value: id }, 'the agency still has units');
        if ((await scanAll(store, 'buildings')).some((b) => b.policy.allowedAgencyIds.includes(id))) throw AppError.conflict('a building policy still names the agency');
        await store.delete('agencies', id);
      },
    }),
  ];
}
