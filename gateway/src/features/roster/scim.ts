/**
 * A SCIM 2.0 Users endpoint per agency (issue 8; RFC 7643 core User, RFC 7644 protocol), so an
 * identity provider can keep the roster in step: base URL `/api/v1/agencies/{agencyId}/scim/v2`,
 * authenticated with an admin's bearer token.
 *
 * A member as a SCIM User (RFC 7643 §4.1):
 *   id                the member id (opaque, fixed per externalId)
 *   externalId        the roster id; `userName` is the same value (a POST may give either)
 *   name.formatted    the name (`displayName` is accepted too and answered the same)
 *   active            false = suspended: the member's tags are blocked everywhere
 *   urn:smartpassage:params:scim:schemas:extension:responder:2.0:User
 *     { unitCallSign, tagUids: [hex, …] }  (unit created in the agency when missing)
 * Supported: GET list (`filter=externalId eq "…"` or `userName eq "…"`, `startIndex`, `count`),
 * GET one, POST, PUT, PATCH (`replace`/`add` of `active`, `name.formatted`, `displayName` and the
 * extension's attributes, with or without `path`), DELETE (tags blocked, member removed).
 * Errors answer the SCIM error schema (RFC 7644 §3.12) with `scimType` where one fits.
 */
import { Type } from '@sinclair/typebox';
import { AppError } from '../../errors.js';
import { RawReply, route, type ErrorReply, type Principal, type RouteDef } from '../../http/routes.js';
import { Id } from '../admin/common.js';
import { checkTagUids, checkText, type MemberInput } from './csv.js';
import { memberId, type RosterPlan } from './roster-service.js';
import { actorOf, mustBeAgency, type RosterRouteDeps } from './common.js';
import type { RosterMember } from './types.js';

export const SCIM_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCIM_EXT = 'urn:smartpassage:params:scim:schemas:extension:responder:2.0:User';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const MEDIA = 'application/scim+json';

type ScimType = 'invalidFilter' | 'invalidSyntax' | 'invalidPath' | 'invalidValue' | 'uniqueness' | 'mutability' | 'noTarget';

/** A 4xx carrying its SCIM `scimType` (RFC 7644 §3.12 Table 9). */
function scimError(status: 400 | 409, scimType: ScimType, detail: string): AppError {
  return new AppError(status === 409 ? 'conflict' : 'validation-failed', detail, { details: { scimType } });
}

/** RFC 7644 §3.12: `{schemas, status (a string), scimType?, detail}`. */
export function renderScimError(e: AppError): ErrorReply {
  const d = e.details;
  const given = d !== null && typeof d === 'object' && !Array.isArray(d) && typeof d['scimType'] === 'string' ? d['scimType'] : undefined;
  const scimType = given ?? (e.code === 'validation-failed' ? 'invalidValue' : undefined);
  let detail = e.message;
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  if (e.code === 'validation-failed' && Array.isArray(d)) detail = d.map((i) => (i !== null && typeof i === 'object' && !Array.isArray(i) ? `${text(i['path'])} ${text(i['message'])}`.trim() : '')).join('; ');
  return { status: e.status, contentType: MEDIA, body: JSON.stringify({ schemas: [ERROR], status: String(e.status), ...(scimType !== undefined ? { scimType } : {}), detail }) };
}

const scim = (body: unknown): RawReply => new RawReply(MEDIA, JSON.stringify(body));

const Open = { additionalProperties: true } as const;
const Ext = Type.Object({ unitCallSign: Type.Optional(Type.Union([Type.String(), Type.Null()])), tagUids: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })) }, Open);
const UserBody = Type.Object(
  {
    schemas: Type.Optional(Type.Array(Type.String())),
    userName: Type.Optional(Type.String()),
    externalId: Type.Optional(Type.String()),
    name: Type.Optional(Type.Object({ formatted: Type.Optional(Type.String()) }, Open)),
    displayName: Type.Optional(Type.String()),
    active: Type.Optional(Type.Boolean()),
    [SCIM_EXT]: Type.Optional(Ext),
  },
  Open,
);
type UserBodyT = {
  userName?: string | undefined;
  externalId?: string | undefined;
  name?: { formatted?: string | undefined } | undefined;
  displayName?: string | undefined;
  active?: boolean | undefined;
  [SCIM_EXT]?: { unitCallSign?: string | null | undefined; tagUids?: string[] | undefined } | undefined;
};
const PatchBody = Type.Object(
  {
    schemas: Type.Optional(Type.Array(Type.String())),
    Operations: Type.Array(Type.Object({ op: Type.String(), path: Type.Optional(Type.String()), value: Type.Optional(Type.Unknown()) }, Open), { minItems: 1, maxItems: 50 }),
  },
  Open,
);
const Resource = Type.Record(Type.String(), Type.Unknown(), { description: 'application/scim+json' });
const Params = Type.Object({ agencyId: Id });
const OneParams = Type.Object({ agencyId: Id, id: Id });

/** A SCIM User (answered) from a member. */
export function toScimUser(m: RosterMember, unitCallSign: string | undefined, base: string): Record<string, unknown> {
  return {
    schemas: [SCIM_USER, SCIM_EXT],
    id: m.id,
    externalId: m.externalId,
    userName: m.externalId,
    name: { formatted: m.name },
    displayName: m.name,
    active: m.active,
    [SCIM_EXT]: { ...(unitCallSign !== undefined ? { unitCallSign } : {}), tagUids: m.tagUids },
    meta: { resourceType: 'User', created: new Date(m.createdAt).toISOString(), lastModified: new Date(m.updatedAt).toISOString(), location: `${base}/${m.id}` },
  };
}

/** A member input from a SCIM User body; `fallback` fills what a PUT may leave out. */
export function fromScimUser(b: UserBodyT, fallback?: { externalId: string }): MemberInput {
  const rawId = b.externalId ?? b.userName ?? fallback?.externalId;
  if (rawId === undefined) throw scimError(400, 'invalidValue', 'userName or externalId is required');
  const ext = checkText(rawId, 128);
  if ('error' in ext) throw scimError(400, 'invalidValue', `externalId ${ext.error}`);
  if (fallback !== undefined && ext.value !== fallback.externalId) throw scimError(400, 'mutability', 'externalId (userName) cannot change; create a new user');
  const rawName = b.name?.formatted ?? b.displayName;
  if (rawName === undefined) throw scimError(400, 'invalidValue', 'name.formatted or displayName is required');
  const name = checkText(rawName, 120);
  if ('error' in name) throw scimError(400, 'invalidValue', `name ${name.error}`);
  const x = b[SCIM_EXT];
  let unit: string | undefined;
  if (typeof x?.unitCallSign === 'string' && x.unitCallSign.trim() !== '') {
    const u = checkText(x.unitCallSign, 32);
    if ('error' in u) throw scimError(400, 'invalidValue', `unitCallSign ${u.error}`);
    unit = u.value;
  }
  const tags = checkTagUids(x?.tagUids ?? []);
  if ('error' in tags) throw scimError(400, 'invalidValue', tags.error);
  return { externalId: ext.value, name: name.value, ...(unit !== undefined ? { unitCallSign: unit } : {}), tagUids: tags.value, active: b.active ?? true };
}

/** SCIM booleans arrive as `false` or (Azure AD) `"False"`. */
function bool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  throw scimError(400, 'invalidValue', 'active must be a boolean');
}

/** Apply PATCH operations (RFC 7644 §3.5.2) to a User body. */
export function patchUser(cur: UserBodyT, ops: readonly { op: string; path?: string | undefined; value?: unknown }[]): UserBodyT {
  const next: UserBodyT = { ...cur, name: { ...cur.name }, [SCIM_EXT]: { ...cur[SCIM_EXT] } };
  const set = (path: string, value: unknown): void => {
    const p = path.startsWith(`${SCIM_EXT}:`) ? `ext:${path.slice(SCIM_EXT.length + 1)}` : path.startsWith(`${SCIM_USER}:`) ? path.slice(SCIM_USER.length + 1) : path;
    switch (p) {
      case 'active':
        next.active = bool(value);
        return;
      case 'name.formatted':
      case 'displayName':
        if (typeof value !== 'string') throw scimError(400, 'invalidValue', `${p} must be a string`);
        next.name = { formatted: value };
        return;
      case 'name':
        if (typeof value !== 'object' || value === null || typeof (value as { formatted?: unknown }).formatted !== 'string') throw scimError(400, 'invalidValue', 'name needs formatted');
        next.name = { formatted: (value as { formatted: string }).formatted };
        return;
      case 'ext:unitCallSign':
        if (typeof value !== 'string' && value !== null) throw scimError(400, 'invalidValue', 'unitCallSign must be a string');
        next[SCIM_EXT] = { ...next[SCIM_EXT], unitCallSign: value };
        return;
      case 'ext:tagUids':
        if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw scimError(400, 'invalidValue', 'tagUids must be an array of strings');
        next[SCIM_EXT] = { ...next[SCIM_EXT], tagUids: value };
        return;
      case SCIM_EXT:
        if (typeof value !== 'object' || value === null) throw scimError(400, 'invalidValue', `${SCIM_EXT} must be an object`);
        for (const [k, v] of Object.entries(value)) set(`${SCIM_EXT}:${k}`, v);
        return;
      default:
        throw scimError(400, 'invalidPath', `cannot change "${path.slice(0, 100)}"`);
    }
  };
  for (const o of ops) {
    const op = o.op.toLowerCase();
    if (op !== 'replace' && op !== 'add') throw scimError(400, 'invalidValue', `op "${o.op.slice(0, 20)}" is not supported (replace, add)`);
    if (o.path !== undefined) set(o.path, o.value);
    else if (typeof o.value === 'object' && o.value !== null && !Array.isArray(o.value)) for (const [k, v] of Object.entries(o.value)) set(k, v);
    else throw scimError(400, 'invalidSyntax', 'an operation without path needs an object value');
  }
  return next;
}

/** Plan errors as one SCIM error: a uid taken elsewhere is `uniqueness` (409). */
function planError(plan: RosterPlan): AppError | undefined {
  const e = plan.errors[0];
  if (e === undefined) return undefined;
  const detail = plan.errors.map((x) => x.message).join('; ');
  return /held by|belongs to|also given/.test(detail) ? scimError(409, 'uniqueness', detail) : scimError(400, 'invalidValue', detail);
}

const FILTER = /^\s*(externalId|userName)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$/i;

export function scimRoutes(deps: RosterRouteDeps): RouteDef[] {
  const { store, roster } = deps;
  const tags = ['roster', 'scim'];
  const base = (agencyId: string): string => `/api/v1/agencies/${agencyId}/scim/v2/Users`;
  const callSign = async (m: RosterMember): Promise<string | undefined> => (m.unitId !== undefined ? (await store.get('units', m.unitId))?.callSign : undefined);
  const user = async (m: RosterMember): Promise<Record<string, unknown>> => toScimUser(m, await callSign(m), base(m.agencyId));
  const member = async (agencyId: string, id: string): Promise<RosterMember> => {
    const m = await store.get('rosterMembers', id);
    if (m === undefined || m.agencyId !== agencyId) throw AppError.notFound('user');
    return m;
  };
  /** Upsert one member (merge mode) and answer it as a SCIM User. */
  const save = async (agencyId: string, input: MemberInput, principal: Principal): Promise<Record<string, unknown>> => {
    const plan = await roster.apply(agencyId, 'merge', [input], actorOf(principal));
    const err = planError(plan);
    if (err) throw err;
    return user(await member(agencyId, memberId(agencyId, input.externalId)));
  };
  const common = { tags, auth: ['admin'] as const, renderError: renderScimError, errors: ['not-found', 'conflict'] as const };
  return [
    route({
      ...common,
      method: 'get',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users',
      summary: 'SCIM: list or find roster members',
      params: Params,
      query: Type.Object({
        filter: Type.Optional(Type.String({ maxLength: 300 })),
        startIndex: Type.Optional(Type.Integer({ minimum: 1, default: 1 })),
        count: Type.Optional(Type.Integer({ minimum: 0, maximum: 500, default: 100 })),
        attributes: Type.Optional(Type.String()),
        excludedAttributes: Type.Optional(Type.String()),
      }),
      responses: { 200: Resource },
      handler: async ({ params, query }) => {
        await mustBeAgency(store, params.agencyId);
        let all = await roster.members(params.agencyId);
        if (query.filter !== undefined) {
          const m = FILTER.exec(query.filter);
          if (!m) throw scimError(400, 'invalidFilter', 'supported filters: externalId eq "…", userName eq "…"');
          const want = m[2]!.replace(/\\(.)/g, '$1');
          all = all.filter((x) => x.externalId === want);
        }
        const start = query.startIndex ?? 1;
        const page = all.slice(start - 1, start - 1 + (query.count ?? 100));
        const Resources = [];
        for (const m of page) Resources.push(await user(m));
        return scim({ schemas: [LIST], totalResults: all.length, startIndex: start, itemsPerPage: page.length, Resources });
      },
    }),
    route({
      ...common,
      method: 'get',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users/{id}',
      summary: 'SCIM: one roster member',
      params: OneParams,
      responses: { 200: Resource },
      handler: async ({ params }) => scim(await user(await member(params.agencyId, params.id))),
    }),
    route({
      ...common,
      method: 'post',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users',
      summary: 'SCIM: add a roster member',
      params: Params,
      body: UserBody,
      responses: { 201: Resource },
      handler: async ({ params, body, principal, setHeader }) => {
        await mustBeAgency(store, params.agencyId);
        const input = fromScimUser(body);
        if ((await roster.members(params.agencyId)).some((m) => m.externalId === input.externalId)) throw scimError(409, 'uniqueness', 'a user with this externalId exists');
        const out = await save(params.agencyId, input, principal);
        setHeader('Location', String(out['meta'] !== undefined ? (out['meta'] as { location: string }).location : ''));
        return scim(out);
      },
    }),
    route({
      ...common,
      method: 'put',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users/{id}',
      summary: 'SCIM: replace a roster member',
      params: OneParams,
      body: UserBody,
      responses: { 200: Resource },
      handler: async ({ params, body, principal }) => {
        const cur = await member(params.agencyId, params.id);
        return scim(await save(params.agencyId, fromScimUser(body, { externalId: cur.externalId }), principal));
      },
    }),
    route({
      ...common,
      method: 'patch',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users/{id}',
      summary: 'SCIM: change a roster member (active=false blocks their tags)',
      params: OneParams,
      body: PatchBody,
      responses: { 200: Resource },
      handler: async ({ params, body, principal }) => {
        if (body.schemas !== undefined && !body.schemas.includes(PATCH_OP)) throw scimError(400, 'invalidSyntax', `schemas must hold ${PATCH_OP}`);
        const cur = await member(params.agencyId, params.id);
        const asUser = toScimUser(cur, await callSign(cur), '') as UserBodyT;
        const next = patchUser(asUser, body.Operations);
        return scim(await save(params.agencyId, fromScimUser(next, { externalId: cur.externalId }), principal));
      },
    }),
    route({
      ...common,
      method: 'delete',
      path: '/api/v1/agencies/{agencyId}/scim/v2/Users/{id}',
      summary: 'SCIM: remove a roster member; their tags are blocked everywhere',
      params: OneParams,
      responses: { 204: null },
      handler: async ({ params, principal }) => {
        const cur = await member(params.agencyId, params.id);
        const plan = await roster.apply(params.agencyId, 'merge', [], actorOf(principal), [cur.externalId]);
        const err = planError(plan);
        if (err) throw err;
      },
    }),
  ];
}
