/**
 * `/api/v1/users` (issue 3 CRUD; DESIGN §3 User, §7: admin only). Passwords arrive in the body,
 * are hashed with scrypt and never leave: no response carries `passwordHash`, and the closed
 * response schema lets `checkResponses` catch it if one ever did.
 */
import { Type } from '@sinclair/typebox';
import { ROLES, type Role, type User } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import type { PasswordHasher } from '../auth/passwords.js';
import { clockOf, Id, IdParams, idFor, listPage, mustExist, Page, PageQuery, PATCH_OPTIONS, Text, unique, type AdminDeps } from './common.js';

const RoleSchema = Type.Union(ROLES.map((r) => Type.Literal(r)));
/** Lower-case only, so `Admin` and `admin` cannot be two accounts. */
const Username = Type.String({ pattern: '^[a-z0-9][a-z0-9._@-]{0,63}$', description: 'lower-case letters, digits, `._@-`' });
// NIST SP 800-63B: at least 8; the upper bound keeps one scrypt call cheap to refuse.
const Password = Type.String({ minLength: 8, maxLength: 256, writeOnly: true });

export type PublicUser = Omit<User, 'passwordHash'>;

export const UserSchema = Type.Object(
  {
    id: Type.String(),
    username: Type.String(),
    displayName: Type.String(),
    role: RoleSchema,
    orgId: Type.Optional(Type.String()),
    unitId: Type.Optional(Type.String()),
    disabled: Type.Boolean(),
    createdAt: Type.Integer(),
  },
  { additionalProperties: false },
);

const CreateBody = Type.Object({
  id: Type.Optional(Id),
  username: Username,
  displayName: Text(120),
  password: Password,
  role: RoleSchema,
  orgId: Type.Optional(Id),
  unitId: Type.Optional(Id),
  disabled: Type.Optional(Type.Boolean({ default: false })),
});
const Clearable = Type.Union([Id, Type.Null()], { description: 'null removes it' });
const UpdateBody = Type.Object(
  {
    username: Type.Optional(Username),
    displayName: Type.Optional(Text(120)),
    password: Type.Optional(Password),
    role: Type.Optional(RoleSchema),
    orgId: Type.Optional(Clearable),
    unitId: Type.Optional(Clearable),
    disabled: Type.Optional(Type.Boolean()),
  },
  PATCH_OPTIONS,
);

/** The user without its hash: built field by field so nothing new leaks by default. */
export function publicUser(u: User): PublicUser {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    ...(u.orgId !== undefined ? { orgId: u.orgId } : {}),
    ...(u.unitId !== undefined ? { unitId: u.unitId } : {}),
    disabled: u.disabled,
    createdAt: u.createdAt,
  };
}

export function userRoutes(deps: AdminDeps & { hasher: PasswordHasher }): RouteDef[] {
  const { store, hasher } = deps;
  const now = clockOf(deps);
  const tags = ['users'];

  /** The role decides what a user must carry (DESIGN §7 scoping needs the org or the unit). */
  async function checkShape(u: { role: Role; orgId?: string | undefined; unitId?: string | undefined }): Promise<void> {
    if (u.role === 'owner' && u.orgId === undefined) throw AppError.badRequest('/orgId', 'an owner needs an organisation');
    if (u.role === 'responder' && u.unitId === undefined) throw AppError.badRequest('/unitId', 'a responder needs a unit');
    if (u.role !== 'responder' && u.unitId !== undefined) throw AppError.badRequest('/unitId', 'only a responder rides with a unit');
    if (u.orgId !== undefined) await mustExist(store, 'organisations', u.orgId, '/orgId', 'organisation');
    if (u.unitId !== undefined) await mustExist(store, 'units', u.unitId, '/unitId', 'unit');
  }

  return [
    route({
      method: 'get',
      path: '/api/v1/users',
      summary: 'List users',
      tags,
      auth: ['admin'],
      query: Type.Object({ ...PageQuery, role: Type.Optional(RoleSchema) }),
      responses: { 200: Page(UserSchema) },
      handler: ({ query }) => listPage(store, 'users', query, publicUser, query.role ? { field: 'role', value: query.role } : undefined),
    }),
    route({
      method: 'get',
      path: '/api/v1/users/{id}',
      summary: 'Get a user',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 200: UserSchema },
      errors: ['not-found'],
      handler: async ({ params }) => {
        const u = await store.get('users', params.id);
        if (!u) throw AppError.notFound('user');
        return publicUser(u);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/users',
      summary: 'Create a user',
      description: 'An owner needs `orgId`, a responder `unitId`; the username is unique (409).',
      tags,
      auth: ['admin'],
      body: CreateBody,
      responses: { 201: UserSchema },
      errors: ['conflict'],
      handler: async ({ body, setHeader, log }) => {
        await checkShape(body);
        const t = now();
        const u: User = {
          id: idFor('user', body.id, t),
          username: body.username,
          displayName: body.displayName.normalize('NFC'),
          role: body.role,
          ...(body.orgId !== undefined ? { orgId: body.orgId } : {}),
          ...(body.unitId !== undefined ? { unitId: body.unitId } : {}),
          passwordHash: await hasher.hash(body.password),
          disabled: body.disabled ?? false,
          createdAt: t,
        };
        await unique(() => store.insert('users', u));
        log.info('user created', { user: u.id, role: u.role });
        setHeader('Location', `/api/v1/users/${u.id}`);
        return publicUser(u);
      },
    }),
    route({
      method: 'patch',
      path: '/api/v1/users/{id}',
      summary: 'Change a user (also its password)',
      tags,
      auth: ['admin'],
      params: IdParams,
      body: UpdateBody,
      responses: { 200: UserSchema },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, body, principal, log }) => {
        const cur = await store.get('users', params.id);
        if (!cur) throw AppError.notFound('user');
        if (params.id === principal.userId && ((body.role !== undefined && body.role !== cur.role) || body.disabled === true)) {
          // An admin demoting or disabling themselves could leave nobody to undo it.
          throw AppError.conflict('you cannot change the role of, or disable, your own account');
        }
        const pickRef = (given: string | null | undefined, old: string | undefined) => (given === null ? undefined : (given ?? old));
        const shape = { role: body.role ?? cur.role, orgId: pickRef(body.orgId, cur.orgId), unitId: pickRef(body.unitId, cur.unitId) };
        await checkShape(shape);
        const passwordHash = body.password !== undefined ? await hasher.hash(body.password) : undefined;
        const next = await unique(() =>
          store.update('users', params.id, (u) => {
            const { orgId: _o, unitId: _u, ...rest } = u;
            return {
              ...rest,
              ...(body.username !== undefined ? { username: body.username } : {}),
              ...(body.displayName !== undefined ? { displayName: body.displayName.normalize('NFC') } : {}),
              role: shape.role,
              ...(shape.orgId !== undefined ? { orgId: shape.orgId } : {}),
              ...(shape.unitId !== undefined ? { unitId: shape.unitId } : {}),
              ...(passwordHash !== undefined ? { passwordHash } : {}),
              ...(body.disabled !== undefined ? { disabled: body.disabled } : {}),
            };
          }),
        );
        if (!next) throw AppError.notFound('user');
        log.info('user changed', { user: next.id, password: passwordHash !== undefined, role: next.role, disabled: next.disabled });
        return publicUser(next);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/users/{id}',
      summary: 'Delete a user',
      tags,
      auth: ['admin'],
      params: IdParams,
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, principal }) => {
        if (params.id === principal.userId) throw AppError.conflict('you cannot delete your own account');
        if (!(await store.delete('users', params.id))) throw AppError.notFound('user');
      },
    }),
  ];
}
