/**
 * Login, refresh and logout (DESIGN §7), and the `authenticate` function the HTTP layer calls on
 * every protected route: a bearer ES256 access token, verified with its algorithm pinned.
 */
import { Type } from '@sinclair/typebox';
import { AppError } from '../../errors.js';
import { AuthError } from './errors.js';
import type { User } from '../../domain/types.js';
import { route, type Authenticate, type Principal, type RouteDef } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';
import type { LoginLimiter } from './login-limiter.js';
import type { PasswordHasher } from './passwords.js';
import type { AccessClaims, Session, TokenService } from './tokens.js';

export interface AuthRoutesDeps {
  store: StorePort;
  tokens: TokenService;
  hasher: PasswordHasher;
  limiter: LoginLimiter;
  /** Finds a user by username (users are indexed by id; the composition root keeps the lookup). */
  findUser: (username: string) => Promise<User | undefined>;
  /**
   * Audit hook (issue 4: auth.login, auth.login-failed, auth.logout): called on every login,
   * refused login and logout, and awaited — a login is refused, and a logout answers with the
   * error, when the hook rejects. Never carries the password or a token.
   */
  onAuth?: (e: AuthEvent) => void | Promise<void>;
}

/** Why a login was refused: the password was wrong, nobody has that name, the user is disabled, or the rate limit spoke. */
export type LoginFailure = 'bad-password' | 'unknown-user' | 'disabled' | 'rate-limited';

export type AuthEvent =
  | { type: 'login'; username: string; userId: string; ip: string }
  | { type: 'login-failed'; username: string; userId?: string; ip: string; reason: LoginFailure }
  | { type: 'logout'; username: string; userId: string; ip: string };

export const UserView = Type.Object({
  id: Type.String(),
  username: Type.String(),
  displayName: Type.String(),
  role: Type.String(),
  orgId: Type.Optional(Type.String()),
  unitId: Type.Optional(Type.String()),
});

const SessionView = Type.Object({
  accessToken: Type.String(),
  accessExpiresAt: Type.Integer(),
  refreshToken: Type.String(),
  refreshExpiresAt: Type.Integer(),
  user: UserView,
});

function userView(u: User) {
  return {
    id: u.id,
    username: u.username,
    displayName: u.displayName,
    role: u.role,
    ...(u.orgId !== undefined ? { orgId: u.orgId } : {}),
    ...(u.unitId !== undefined ? { unitId: u.unitId } : {}),
  };
}

function sessionView(s: Session, u: User) {
  return { accessToken: s.accessToken, accessExpiresAt: s.accessExpiresAt, refreshToken: s.refreshToken, refreshExpiresAt: s.refreshExpiresAt, user: userView(u) };
}

export function principalOf(c: AccessClaims): Principal {
  return {
    userId: c.sub,
    role: c.role,
    ...(c.orgId !== undefined ? { orgId: c.orgId } : {}),
    ...(c.unitId !== undefined ? { unitId: c.unitId } : {}),
    session: { jti: c.jti, exp: c.exp, ...(c.sid !== undefined ? { sid: c.sid } : {}) },
  };
}

/** `Authorization: Bearer <token>` → Principal, or 401 `unauthenticated` / `token-expired`. */
export function bearerAuthenticate(tokens: TokenService): Authenticate {
  return async (req) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer ([A-Za-z0-9_.-]{10,4096})$/.exec(h) : null;
    if (!m) throw AppError.unauthenticated('a bearer token is required');
    return principalOf(await tokens.verifyAccess(m[1] as string));
  };
}

const Credentials = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 256 }),
});

export function authRoutes(d: AuthRoutesDeps): RouteDef[] {
  return [
    route({
      method: 'post',
      path: '/api/v1/auth/login',
      summary: 'Log in: a 15-minute access token and a rotating refresh token',
      tags: ['auth'],
      auth: 'public',
      body: Credentials,
      responses: { 200: SessionView },
      errors: ['unauthenticated', 'rate-limited'],
      handler: async ({ body, ip }) => {
        // The limiter counts before the (deliberately slow) password check.
        try {
          await d.limiter.attempt(body.username, ip);
        } catch (err) {
          if (err instanceof AuthError && err.code === 'rate-limited') await d.onAuth?.({ type: 'login-failed', username: body.username, ip, reason: 'rate-limited' });
          throw err;
        }
        const user = await d.findUser(body.username);
        const ok = await d.hasher.verify(body.password, user?.passwordHash);
        // The caller learns only "wrong username or password"; the trail says which.
        const failure: LoginFailure | undefined = !user ? 'unknown-user' : !ok ? 'bad-password' : user.disabled ? 'disabled' : undefined;
        if (!user || failure !== undefined) {
          await d.onAuth?.({ type: 'login-failed', username: body.username, ...(user ? { userId: user.id } : {}), ip, reason: failure ?? 'unknown-user' });
          throw AppError.unauthenticated('wrong username or password');
        }
        await d.onAuth?.({ type: 'login', username: user.username, userId: user.id, ip });
        return sessionView(await d.tokens.startSession(user), user);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/auth/refresh',
      summary: 'Trade a refresh token for a new pair (the old one is spent; reusing it ends the session)',
      tags: ['auth'],
      auth: 'public',
      body: Type.Object({ refreshToken: Type.String({ minLength: 10, maxLength: 512 }) }),
      responses: { 200: SessionView },
      errors: ['unauthenticated'],
      handler: async ({ body }) => {
        let user: User | undefined;
        const session = await d.tokens.refreshSession(body.refreshToken, async (id) => (user = await d.store.get('users', id)));
        if (!user) throw AppError.unauthenticated('session ended');
        return sessionView(session, user);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/auth/logout',
      summary: 'End this session: the access token and its refresh family are revoked',
      tags: ['auth'],
      auth: ['admin', 'dispatcher', 'responder', 'owner'],
      body: Type.Object({ refreshToken: Type.Optional(Type.String({ minLength: 10, maxLength: 512 })) }),
      responses: { 204: null },
      handler: async ({ body, principal, ip }) => {
        await d.tokens.logout({ ...(principal.session ? { access: principal.session } : {}), ...(body.refreshToken !== undefined ? { refreshToken: body.refreshToken } : {}) });
        const u = await d.store.get('users', principal.userId);
        await d.onAuth?.({ type: 'logout', username: u?.username ?? principal.userId, userId: principal.userId, ip });
        return undefined;
      },
    }),
  ];
}
