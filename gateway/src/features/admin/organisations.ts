/**
 * `/api/v1/organisations` (issue 3 CRUD; DESIGN §3 Organisation, §7: admin only).
 */
import { Type } from '@sinclair/typebox';
import type { Organisation } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { clockOf, Id, IdParams, idFor, listPage, Page, PageQuery, PATCH_OPTIONS, refuseIfReferenced, scanAll, Text, unique, type AdminDeps } from './common.js';

const OrgKind = Type.Union([Type.Literal('owner'), Type.Literal('agency'), Type.Literal('operator')]);

export const OrganisationSchema = Type.Object(
  { id: Type.String(), name: Type.String(), kind: OrgKind, createdAt: Type.Integer() },
  { additionalProperties: false },
);

const CreateBody = Type.Object({ id: Type.Optional(Id), name: Text(120), kind: OrgKind });
const UpdateBody = Type.Object({ name: Type.Optional(Text(120)), kind: Type.Optional(OrgKind) }, PATCH_OPTIONS);

const pick = (o: Organisation): Organisation => ({ id: o.id, name: o.name, kind: o.kind, createdAt: o.createdAt });

export function organisationRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['organisations'];
  return [
    route({
      method: 'get',
      path: '/api/v1/organisations',
      summary: 'List organisations',
      tags,
      auth: ['admin'],
      query: Type.Object({ ...PageQuery, kind: Type.Optional(OrgKind) }),
      responses: { 200: Page(OrganisationSchema) },
      handler: ({ query }) => listPage(store, 'organisations', query, pick, query.kind ? { field: 'kind', value: query.kind } : undefined),
    }),
    route({
      method: 'get',
      path: '/api/v1/organisations/{id}',
      summary: 'Get an organisation',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 200: OrganisationSchema },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const o = await store.get('organisations', params.id);
        if (!o) throw AppError.notFound('organisation');
        return pick(o);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/organisations',
      summary: 'Create an organisation',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: OrganisationSchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        const t = now();
        const org: Organisation = { id: idFor('org', body.id, t), name: body.name.normalize('NFC'), kind: body.kind, createdAt: t };
        await unique(() => store.insert('organisations', org));
        setHeader('Location', `/api/v1/organisations/${org.id}`);
        return org;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/organisations/{id}',
      summary: 'Change an organisation',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: OrganisationSchema },
      errors: ['not-found'],
      handler: async ({ params, body }) => {
        const next = await store.update('organisations', params.id, (cur) => ({
          ...cur,
          ...(body.name !== undefined ? { name: body.name.normalize('NFC') } : {}),
          ...(body.kind !== undefined ? { kind: body.kind } : {}),
        }));
        if (!next) throw AppError.notFound('organisation');
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/organisations/{id}',
      summary: 'Delete an organisation that nothing refers to',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params }) => {
        const id = params.id;
        if (!(await store.get('organisations', id))) throw AppError.notFound('organisation');
        await refuseIfReferenced(store, 'buildings', { field: 'orgId', value: id }, 'the organisation still owns buildings');
        await refuseIfReferenced(store, 'users', { field: 'orgId', value: id }, 'the organisation still has users');
        if ((await scanAll(store, 'agencies')).some((a) => a.orgId === id)) throw AppError.conflict('an agency still belongs to the organisation');
        await store.delete('organisations', id);
      },
    }),
  ];
}
