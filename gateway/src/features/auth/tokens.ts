/**
 * Access and refresh tokens (DESIGN §7).
 *
 * Access tokens are JWTs signed ES256 with the gateway's P-256 key. Verification pins the
 * algorithm to ES256 and checks issuer, audience and expiry, so `alg: none`, HS256 signed with the
 * public key as the HMAC secret (algorithm confusion, RFC 8725 §2.1) and tokens from another
 * issuer or for another audience are all refused. A revoked `jti`, or a token of a revoked
 * session, is refused through the store.
 *
 * Refresh tokens are opaque: `<familyKey>.<secret>`, 16 + 32 random bytes in base64url. The store
 * keeps only SHA-256 of the whole token as the record id, and the session id `sid` =
 * SHA-256(familyKey) as the family. Every refresh consumes the token and issues the next one in
 * the same family. A token that is presented again after it was spent (stolen and used by one
 * party, then by the other) no longer has a record, but its familyKey still names the family, so
 * the whole family is revoked: the thief and the victim both have to log in again (RFC 9700
 * §4.14.2). Only a holder of a refresh token knows its familyKey; access tokens carry `sid`, a
 * hash of it, so logout and revocation checks work from an access token, yet a leaked access
 * token cannot be turned into a replay that ends somebody else's session.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { silentLogger, type Logger } from '@smart-passage/protocol';
import { ROLES, type Role, type User } from '../../domain/types.js';
import type { StorePort } from '../../store/port.js';
import { AuthError } from './errors.js';

/** The session methods of the store, all this service needs. */
export type SessionStore = Pick<
  StorePort,
  'saveRefreshToken' | 'consumeRefreshToken' | 'revokeRefreshFamily' | 'isRefreshFamilyRevoked' | 'revokeAccessToken' | 'isAccessTokenRevoked'
>;

export interface TokenServiceOptions {
  /** P-256 private key, PEM (PKCS#8 or SEC1). Secret: never log it. */
  privateKeyPem: string;
  /** The matching public key, PEM (SPKI). */
  publicKeyPem: string;
  issuer: string;
  audience: string;
  /** Access token lifetime; 15 minutes by default (DESIGN §7). */
  accessTtlSec?: number;
  /** Refresh token lifetime, renewed at every rotation; 7 days by default. */
  refreshTtlSec?: number;
  store: SessionStore;
  /** Clock, ms epoch. */
  now?: () => number;
  logger?: Logger;
}

/** What a verified access token says. Times in seconds (JWT NumericDate). */
export interface AccessClaims {
  sub: string;
  role: Role;
  orgId?: string;
  unitId?: string;
  /** The session (refresh family) the token was issued in; absent on tokens issued outside one. */
  sid?: string;
  jti: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
}

export interface IssuedAccess {
  token: string;
  claims: AccessClaims;
  /** ms epoch. */
  expiresAt: number;
}

/** What login and refresh hand back to the client. Times are ms epoch. */
export interface Session {
  accessToken: string;
  accessExpiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
  claims: AccessClaims;
}

const ALGORITHM = 'ES256';
const FAMILY_BYTES = 16;
const SECRET_BYTES = 32;
const REFRESH_TOKEN = /^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
/** Far above any token we issue; refuses absurd input before parsing it. */
const MAX_ACCESS_TOKEN_CHARS = 4096;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url');
const sessionId = (familyKey: string): string => sha256(`sp-session\n${familyKey}`);
const isString = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isSeconds = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

function positiveInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${what} must be a positive whole number of seconds`);
  return v;
}

/** The P-256 key pair, checked: the right curve, and the two halves belong together. */
function loadKeys(privateKeyPem: string, publicKeyPem: string): { privateKey: KeyObject; publicKey: KeyObject } {
  let privateKey: KeyObject;
  let publicKey: KeyObject;
  try {
    privateKey = createPrivateKey(privateKeyPem);
    publicKey = createPublicKey(publicKeyPem);
  } catch {
    // Not the parser's message: it can quote the input.
    throw new TypeError('JWT keys: not a readable PEM key pair');
  }
  for (const k of [privateKey, publicKey]) {
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new TypeError('JWT keys: ES256 needs an EC P-256 (prime256v1) key pair');
    }
  }
  const derived = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  if (!derived.equals(publicKey.export({ format: 'der', type: 'spki' }))) throw new TypeError('JWT keys: the public key does not match the private key');
  return { privateKey, publicKey };
}

function toClaims(payload: unknown): AccessClaims | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const p = payload as Record<string, unknown>;
  if (!isString(p.sub) || !isString(p.jti) || !isString(p.iss) || !isString(p.aud)) return undefined;
  if (!ROLES.includes(p.role as Role) || !isSeconds(p.iat) || !isSeconds(p.exp)) return undefined;
  for (const f of ['orgId', 'unitId', 'sid'] as const) if (p[f] !== undefined && !isString(p[f])) return undefined;
  const claims: AccessClaims = { sub: p.sub, role: p.role as Role, jti: p.jti, iat: p.iat, exp: p.exp, iss: p.iss, aud: p.aud };
  if (isString(p.orgId)) claims.orgId = p.orgId;
  if (isString(p.unitId)) claims.unitId = p.unitId;
  if (isString(p.sid)) claims.sid = p.sid;
  return claims;
}

const unauthenticated = (message: string): AuthError => new AuthError('unauthenticated', message);

export class TokenService {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly issuer: string;
  private readonly audience: string;
  private readonly accessTtlSec: number;
  private readonly refreshTtlSec: number;
  private readonly store: SessionStore;
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(o: TokenServiceOptions) {
    ({ privateKey: this.privateKey, publicKey: this.publicKey } = loadKeys(o.privateKeyPem, o.publicKeyPem));
    if (o.issuer === '' || o.audience === '') throw new TypeError('TokenService: issuer and audience must not be empty');
    this.issuer = o.issuer;
    this.audience = o.audience;
    this.accessTtlSec = positiveInt(o.accessTtlSec ?? 15 * 60, 'accessTtlSec');
    this.refreshTtlSec = positiveInt(o.refreshTtlSec ?? 7 * 24 * 60 * 60, 'refreshTtlSec');
    this.store = o.store;
    this.now = o.now ?? Date.now;
    this.logger = o.logger ?? silentLogger;
  }

  /** Sign an access token for `user`, in session `sid` when given. */
  issueAccess(user: User, sid?: string): IssuedAccess {
    if (user.disabled) throw unauthenticated('account disabled');
    const iat = Math.floor(this.now() / 1000);
    const claims: AccessClaims = {
      sub: user.id,
      role: user.role,
      jti: randomBytes(16).toString('base64url'),
      iat,
      exp: iat + this.accessTtlSec,
      iss: this.issuer,
      aud: this.audience,
    };
    if (user.orgId !== undefined) claims.orgId = user.orgId;
    if (user.unitId !== undefined) claims.unitId = user.unitId;
    if (sid !== undefined) claims.sid = sid;
    const token = jwt.sign({ ...claims }, this.privateKey, { algorithm: ALGORITHM, header: { alg: ALGORITHM, typ: 'JWT' } });
    return { token, claims, expiresAt: claims.exp * 1000 };
  }

  /**
   * The claims of a valid access token. Throws AuthError `token-expired` for an authentic token
   * past its `exp` (the client should refresh), `unauthenticated` for anything else.
   */
  async verifyAccess(token: string): Promise<AccessClaims> {
    if (token.length === 0 || token.length > MAX_ACCESS_TOKEN_CHARS) throw unauthenticated('invalid access token');
    let payload: unknown;
    try {
      payload = jwt.verify(token, this.publicKey, {
        algorithms: [ALGORITHM],
        issuer: this.issuer,
        audience: this.audience,
        clockTimestamp: Math.floor(this.now() / 1000),
      });
    } catch (err) {
      // The library checks the signature before exp, so only our own tokens get here as expired.
      if (err instanceof jwt.TokenExpiredError) throw new AuthError('token-expired', 'access token expired');
      throw unauthenticated('invalid access token');
    }
    const claims = toClaims(payload);
    if (claims === undefined) throw unauthenticated('invalid access token');
    const [revoked, sessionRevoked] = await Promise.all([
      this.store.isAccessTokenRevoked(claims.jti),
      claims.sid === undefined ? false : this.store.isRefreshFamilyRevoked(claims.sid),
    ]);
    if (revoked || sessionRevoked) throw unauthenticated('access token revoked');
    return claims;
  }

  /** Open a session for a user who just proved who they are (login): access + refresh token. */
  async startSession(user: User): Promise<Session> {
    if (user.disabled) throw unauthenticated('account disabled');
    const familyKey = randomBytes(FAMILY_BYTES).toString('base64url');
    return this.continueSession(user, familyKey);
  }

  /**
   * Trade a refresh token for a new access and refresh token. `loadUser` reads the user afresh, so
   * a changed role applies and a disabled or deleted user's session ends here.
   *
   * Two refreshes racing with the same token look like a replay and end the session; the client
   * must refresh one request at a time.
   */
  async refreshSession(refreshToken: string, loadUser: (id: string) => Promise<User | undefined>): Promise<Session> {
    const m = REFRESH_TOKEN.exec(refreshToken);
    if (m === null) throw unauthenticated('invalid refresh token');
    const familyKey = m[1] as string;
    const sid = sessionId(familyKey);
    const record = await this.store.consumeRefreshToken(sha256(refreshToken));
    if (record === undefined) {
      // Spent (or never issued, which needs the familyKey too, so the holder had a token of this
      // family). Either way the family is no longer trustworthy.
      await this.store.revokeRefreshFamily(sid);
      this.logger.warn('refresh token reused; session revoked', { session: sid.slice(0, 12) });
      throw unauthenticated('refresh token already used; session ended');
    }
    if (record.family !== sid) {
      await Promise.all([this.store.revokeRefreshFamily(sid), this.store.revokeRefreshFamily(record.family)]);
      throw unauthenticated('invalid refresh token');
    }
    if (await this.store.isRefreshFamilyRevoked(sid)) throw unauthenticated('session ended');
    if (record.expiresAt <= this.now()) throw unauthenticated('refresh token expired; log in again');
    const user = await loadUser(record.userId);
    if (user === undefined || user.disabled) {
      await this.store.revokeRefreshFamily(sid);
      throw unauthenticated('account disabled');
    }
    return this.continueSession(user, familyKey);
  }

  /**
   * End a session: the access token's `jti` is refused until it would have expired anyway, and its
   * session's refresh family (and that of `refreshToken`, if given) is revoked. Either part may be
   * missing, e.g. logout with only a refresh token after the access token expired.
   */
  async logout(o: { access?: Pick<AccessClaims, 'jti' | 'exp' | 'sid'>; refreshToken?: string }): Promise<void> {
    const work: Promise<unknown>[] = [];
    if (o.access !== undefined) {
      work.push(this.store.revokeAccessToken(o.access.jti, o.access.exp * 1000));
      if (o.access.sid !== undefined) work.push(this.store.revokeRefreshFamily(o.access.sid));
    }
    const m = o.refreshToken === undefined ? null : REFRESH_TOKEN.exec(o.refreshToken);
    if (m !== null && o.refreshToken !== undefined) {
      work.push(this.store.revokeRefreshFamily(sessionId(m[1] as string)), this.store.consumeRefreshToken(sha256(o.refreshToken)));
    }
    await Promise.all(work);
  }

  private async continueSession(user: User, familyKey: string): Promise<Session> {
    const sid = sessionId(familyKey);
    const refreshToken = `${familyKey}.${randomBytes(SECRET_BYTES).toString('base64url')}`;
    const refreshExpiresAt = this.now() + this.refreshTtlSec * 1000;
    const access = this.issueAccess(user, sid);
    await this.store.saveRefreshToken({ id: sha256(refreshToken), userId: user.id, family: sid, expiresAt: refreshExpiresAt });
    return { accessToken: access.token, accessExpiresAt: access.expiresAt, refreshToken, refreshExpiresAt, claims: access.claims };
  }
}
