/**
 * `/api/v1/tags` (issue 3 CRUD + block; DESIGN §3 Tag; §7: admin writes, dispatcher reads and
 * blocks). A tag opens nothing on its own, but every change to one can change what controllers
 * hold for live grants, so writes call the injected hooks (see AdminDeps).
 */
import { Type } from '@sinclair/typebox';
import type { Tag } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { clockOf, Id, IdParams, idFor, listPage, mustExist, Page, PageQuery, PATCH_OPTIONS, Text, unique, type AdminDeps } from './common.js';

const TagStatus = Type.Union([Type.Literal('active'), Type.Literal('blocked'), Type.Literal('lost')]);

/** PROTOCOL TagUid, stored upper-case; lower-case hex is accepted on input and normalised. */
export const TAG_UID = /^(?:[0-9A-F]{2}){2,16}$/;
const TagUidInput = Type.String({ pattern: '^(?:[0-9A-Fa-f]{2}){2,16}$', description: '2–16 bytes as hex; stored upper-case' });

export const TagSchema = Type.Object(
  { id: Type.String(), uid: Type.String({ pattern: TAG_UID.source }), label: Type.String(), unitId: Type.String(), status: TagStatus },
  { additionalProperties: false },
);

const CreateBody = Type.Object({ id: Type.Optional(Id), uid: TagUidInput, label: Text(120), unitId: Id, status: Type.Optional(TagStatus) });
const UpdateBody = Type.Object(
  { uid: Type.Optional(TagUidInput), label: Type.Optional(Text(120)), unitId: Type.Optional(Id), status: Type.Optional(TagStatus) },
  PATCH_OPTIONS,
);

const pick = (t: Tag): Tag => ({ id: t.id, uid: t.uid, label: t.label, unitId: t.unitId, status: t.status });

export function tagRoutes(deps: AdminDeps): RouteDef[] {
  const { store } = deps;
  const now = clockOf(deps);
  const tags = ['tags'];
  const changed = async (change: { before?: Tag; after?: Tag }): Promise<void> => {
    if (deps.onTagChanged) await deps.onTagChanged(change);
  };
  const blocked = async (t: Tag, status: 'blocked' | 'lost', userId: string): Promise<void> => {
    await deps.audit?.record({ type: 'tag.blocked', actor: { kind: 'user', id: userId }, tagId: t.id, unitId: t.unitId, reason: status, data: { label: t.label, previousStatus: t.status } });
  };
  return [
    route({
      method: 'get',
      path: '/api/v1/tags',
      summary: 'List tags',
      tags,
      auth: ['admin', 'dispatcher'],
      query: Type.Object({ ...PageQuery, unitId: Type.Optional(Id) }),
      responses: { 200: Page(TagSchema) },
      handler: ({ query }) => listPage(store, 'tags', query, pick, query.unitId ? { field: 'unitId', value: query.unitId } : undefined),
    }),
    route({
      method: 'get',
      path: '/api/v1/tags/{id}',
      summary: 'Get a tag',
      tags,
      auth: ['admin', 'dispatcher'],
      params: IdParams,
      responses: { 200: TagSchema },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const t = await store.get('tags', params.id);
        if (!t) throw AppError.notFound('tag');
        return pick(t);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/tags',
      summary: 'Register a tag for a unit',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: TagSchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        await mustExist(store, 'units', body.unitId, '/unitId', 'unit');
        const t: Tag = { id: idFor('tag', body.id, now()), uid: body.uid.toUpperCase(), label: body.label.normalize('NFC'), unitId: body.unitId, status: body.status ?? 'active' };
        await unique(() => store.insert('tags', t));
        await changed({ after: t });
        setHeader('Location', `/api/v1/tags/${t.id}`);
        return t;
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/tags/{id}',
      summary: 'Change a tag (uid, label, unit, status)',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: TagSchema },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, body, principal }) => {
        const before = await store.get('tags', params.id);
        if (!before) throw AppError.notFound('tag');
        if (body.unitId !== undefined) await mustExist(store, 'units', body.unitId, '/unitId', 'unit');
        // Taking a tag out of service this way is a block too (issue 4).
        if ((body.status === 'blocked' || body.status === 'lost') && before.status === 'active') {
          await blocked(before, body.status, principal.userId);
        }
        const next = await unique(() =>
          store.update('tags', params.id, (cur) => ({
            ...cur,
            ...(body.uid !== undefined ? { uid: body.uid.toUpperCase() } : {}),
            ...(body.label !== undefined ? { label: body.label.normalize('NFC') } : {}),
            ...(body.unitId !== undefined ? { unitId: body.unitId } : {}),
            ...(body.status !== undefined ? { status: body.status } : {}),
          })),
        );
        if (!next) throw AppError.notFound('tag');
        if (next.uid !== before.uid || next.unitId !== before.unitId || next.status !== before.status) await changed({ before, after: next });
        return pick(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/tags/{id}',
      summary: 'Delete a tag',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const before = await store.get('tags', params.id);
        if (!before || !(await store.delete('tags', params.id))) throw AppError.notFound('tag');
        await changed({ before });
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/tags/{id}/block',
      summary: 'Block a tag: it stops opening doors, also in live grants',
      description: 'Idempotent: blocking a blocked tag re-runs the controller re-sync.',
      tags,
      auth: ['admin', 'dispatcher'],
      params: IdParams,
      responses: { 200: TagSchema },
      errors: ['not-found'],
      handler: async ({ params, log, principal }) => {
        const cur = await store.get('tags', params.id);
        if (!cur) throw AppError.notFound('tag');
        // Audited before the change (a repeated block changes nothing and records nothing).
        if (cur.status !== 'blocked') await blocked(cur, 'blocked', principal.userId);
        const t = await store.update('tags', params.id, (c) => (c.status === 'blocked' ? undefined : { ...c, status: 'blocked' }));
        if (!t) throw AppError.notFound('tag');
        log.info('tag blocked', { tag: t.id, unit: t.unitId });
        if (deps.onTagBlocked) await deps.onTagBlocked(t);
        return pick(t);
      },
    }),
  ];
}
