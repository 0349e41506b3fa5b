// Access tokens (ES256 JWT) against the attacks of RFC 8725, and refresh-token rotation with
// replay detection, over a fake of the store's session methods.
import { createHmac, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { describe, expect, it } from 'vitest';
import type { User } from '../../../src/domain/types.js';
import { AuthError } from '../../../src/features/auth/errors.js';
import { TokenService, type AccessClaims, type SessionStore } from '../../../src/features/auth/tokens.js';
import type { RefreshTokenRecord } from '../../../src/store/port.js';

/** The session methods of StorePort, as the port specifies them. */
class FakeSessions implements SessionStore {
  readonly refresh = new Map<string, RefreshTokenRecord>();
  readonly revokedFamilies = new Set<string>();
  readonly revokedJtis = new Map<string, number>();
  saveRefreshToken(r: RefreshTokenRecord): Promise<void> {
    this.refresh.set(r.id, { ...r });
    return Promise.resolve();
  }
  consumeRefreshToken(id: string): Promise<RefreshTokenRecord | undefined> {
    const r = this.refresh.get(id);
    this.refresh.delete(id);
    return Promise.resolve(r);
  }
  revokeRefreshFamily(family: string): Promise<void> {
    this.revokedFamilies.add(family);
    return Promise.resolve();
  }
  isRefreshFamilyRevoked(family: string): Promise<boolean> {
    return Promise.resolve(this.revokedFamilies.has(family));
  }
  revokeAccessToken(jti: string, until: number): Promise<void> {
    this.revokedJtis.set(jti, until);
    return Promise.resolve();
  }
  isAccessTokenRevoked(jti: string): Promise<boolean> {
    return Promise.resolve(this.revokedJtis.has(jti));
  }
}

const p256 = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
};
const KEYS = p256();
const T0 = 1_764_330_000_000;

const alice: User = {
  id: 'u-alice', username: 'alice', displayName: 'Alice', role: 'dispatcher', orgId: 'org-1',
  passwordHash: 'scrypt$…', disabled: false, createdAt: 0,
};

function setup(o: { issuer?: string; audience?: string; keys?: typeof KEYS } = {}) {
  const clock = { now: T0 };
  const store = new FakeSessions();
  const users = new Map<string, User>([[alice.id, alice]]);
  const tokens = new TokenService({
    ...(o.keys ?? KEYS),
    issuer: o.issuer ?? 'smart-passage',
    audience: o.audience ?? 'smart-passage-api',
    store,
    now: () => clock.now,
  });
  const loadUser = (id: string) => Promise.resolve(users.get(id));
  return { clock, store, users, tokens, loadUser };
}

async function failure(p: Promise<unknown>): Promise<AuthError> {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AuthError);
  return err as AuthError;
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
const parts = (token: string): [string, string, string] => token.split('.') as [string, string, string];

describe('TokenService access tokens', () => {
  it('issues an ES256 JWT with sub, role, orgId, jti, iat, exp (15 min), iss, aud — and verifies it', async () => {
    const { tokens } = setup();
    const { token, claims, expiresAt } = tokens.issueAccess(alice);
    const decoded = jwt.decode(token, { complete: true });
    expect(decoded?.header).toEqual({ alg: 'ES256', typ: 'JWT' });
    expect(claims).toMatchObject({ sub: 'u-alice', role: 'dispatcher', orgId: 'org-1', iat: T0 / 1000, exp: T0 / 1000 + 900, iss: 'smart-passage', aud: 'smart-passage-api' });
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(claims).not.toHaveProperty('unitId');
    expect(expiresAt).toBe(T0 + 900_000);
    await expect(tokens.verifyAccess(token)).resolves.toEqual(claims);
    expect(tokens.issueAccess(alice).claims.jti).not.toBe(claims.jti);
  });

  it('refuses to issue for a disabled user', () => {
    const { tokens } = setup();
    expect(() => tokens.issueAccess({ ...alice, disabled: true })).toThrow(AuthError);
  });

  it('expires at exp by the injected clock with `token-expired`', async () => {
    const { tokens, clock } = setup();
    const { token } = tokens.issueAccess(alice);
    clock.now = T0 + 899_999;
    await expect(tokens.verifyAccess(token)).resolves.toMatchObject({ sub: 'u-alice' });
    clock.now = T0 + 900_000;
    await expect(failure(tokens.verifyAccess(token))).resolves.toMatchObject({ code: 'token-expired', status: 401 });
  });

  describe('refuses forged and misdirected tokens with `unauthenticated`', () => {
    const { tokens } = setup();
    const genuine = tokens.issueAccess(alice);
    const [header, payload, signature] = parts(genuine.token);
    const claims: AccessClaims = genuine.claims;
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });

    const cases: [string, () => string][] = [
      ['alg: none, no signature', () => `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`],
      ['alg: none, original signature kept', () => `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`],
      ['alg: NONE spelled otherwise', () => `${b64({ alg: 'None', typ: 'JWT' })}.${b64({ ...claims, role: 'admin' })}.`],
      [
        'HS256 with the public key PEM as the HMAC secret (algorithm confusion)',
        () => {
          const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, role: 'admin' })}`;
          return `${signingInput}.${createHmac('sha256', KEYS.publicKeyPem).update(signingInput).digest('base64url')}`;
        },
      ],
      [
        'HS256 with the public key DER as the HMAC secret',
        () => {
          const der = Buffer.from(KEYS.publicKeyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
          const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, role: 'admin' })}`;
          return `${signingInput}.${createHmac('sha256', der).update(signingInput).digest('base64url')}`;
        },
      ],
      ['payload tampered (role raised to admin), signature kept', () => `${header}.${b64({ ...claims, role: 'admin' })}.${signature}`],
      ['payload tampered (another user), signature kept', () => `${header}.${b64({ ...claims, sub: 'u-bob' })}.${signature}`],
      ['signature truncated', () => `${header}.${payload}.${signature.slice(0, -4)}`],
      ['signature from another P-256 key', () => jwt.sign({ ...claims }, attacker.privateKey, { algorithm: 'ES256' })],
      [
        'another key announced in the header (jwk)',
        () => jwt.sign({ ...claims }, attacker.privateKey, { algorithm: 'ES256', header: { alg: 'ES256', jwk: attacker.publicKey.export({ format: 'jwk' }) } as jwt.JwtHeader }),
      ],
      ['RS256 with an RSA key', () => jwt.sign({ ...claims }, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, { algorithm: 'RS256' })],
      ['two segments only', () => `${header}.${payload}`],
      ['empty string', () => ''],
      ['garbage', () => 'not.a.jwt'],
      ['oversized', () => `${header}.${'A'.repeat(10_000)}.${signature}`],
    ];
    for (const [name, forge] of cases) {
      it(name, async () => {
        await expect(failure(tokens.verifyAccess(forge()))).resolves.toMatchObject({ code: 'unauthenticated', status: 401 });
      });
    }
  });

  it('refuses a token signed by our key for another audience or from another issuer', async () => {
    const ours = setup();
    const otherAudience = setup({ audience: 'some-other-api' }).tokens.issueAccess(alice).token;
    const otherIssuer = setup({ issuer: 'someone-else' }).tokens.issueAccess(alice).token;
    await expect(failure(ours.tokens.verifyAccess(otherAudience))).resolves.toMatchObject({ code: 'unauthenticated' });
    await expect(failure(ours.tokens.verifyAccess(otherIssuer))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('refuses an expired token whose signature is also bad as `unauthenticated`, not `token-expired`', async () => {
    const { tokens, clock } = setup();
    const [header, , signature] = parts(tokens.issueAccess(alice).token);
    const claims = tokens.issueAccess(alice).claims;
    clock.now = T0 + 3_600_000;
    await expect(failure(tokens.verifyAccess(`${header}.${b64({ ...claims, role: 'admin' })}.${signature}`))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('refuses a token properly signed by our key whose claims are malformed', async () => {
    const { tokens } = setup();
    const { claims } = tokens.issueAccess(alice);
    const sign = (payload: object) => jwt.sign(payload, KEYS.privateKeyPem, { algorithm: 'ES256' });
    const { role: _role, ...noRole } = claims;
    for (const bad of [noRole, { ...claims, role: 'root' }, { ...claims, sub: 42 }, { ...claims, orgId: 7 }, { ...claims, jti: '' }]) {
      await expect(failure(tokens.verifyAccess(sign(bad)))).resolves.toMatchObject({ code: 'unauthenticated' });
    }
  });

  it('refuses a revoked jti (through the store)', async () => {
    const { tokens, store } = setup();
    const { token, claims } = tokens.issueAccess(alice);
    await store.revokeAccessToken(claims.jti, claims.exp * 1000);
    await expect(failure(tokens.verifyAccess(token))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('refuses keys that are not a matching P-256 pair', () => {
    const store = new FakeSessions();
    const base = { issuer: 'i', audience: 'a', store };
    const ed = generateKeyPairSync('ed25519');
    expect(() => new TokenService({ ...base, privateKeyPem: KEYS.privateKeyPem, publicKeyPem: p256().publicKeyPem })).toThrow(/does not match/);
    expect(
      () =>
        new TokenService({
          ...base,
          privateKeyPem: ed.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
          publicKeyPem: ed.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        }),
    ).toThrow(/P-256/);
    expect(() => new TokenService({ ...base, privateKeyPem: 'nope', publicKeyPem: 'nope' })).toThrow(/PEM/);
  });
});

describe('TokenService sessions and refresh tokens', () => {
  it('starts a session: access token carrying the session id, opaque refresh token stored only as a hash', async () => {
    const { tokens, store } = setup();
    const s = await tokens.startSession(alice);
    expect(s.refreshToken).toMatch(/^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$/);
    expect(s.refreshExpiresAt).toBe(T0 + 7 * 24 * 3600 * 1000);
    expect(s.claims.sid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expect(tokens.verifyAccess(s.accessToken)).resolves.toMatchObject({ sub: 'u-alice', sid: s.claims.sid });
    expect(store.refresh.size).toBe(1);
    const [record] = [...store.refresh.values()];
    expect(record).toMatchObject({ userId: 'u-alice', family: s.claims.sid, expiresAt: s.refreshExpiresAt });
    // Neither half of the token is kept, and the access token does not reveal the family key.
    const stored = JSON.stringify([...store.refresh.entries()]);
    for (const half of s.refreshToken.split('.')) {
      expect(stored).not.toContain(half);
      expect(Buffer.from(parts(s.accessToken)[1], 'base64url').toString()).not.toContain(half);
    }
  });

  it('rotates on refresh: a new refresh token in the same family, a new access token, the old one spent', async () => {
    const { tokens, store, loadUser, clock } = setup();
    const s1 = await tokens.startSession(alice);
    clock.now += 60_000;
    const s2 = await tokens.refreshSession(s1.refreshToken, loadUser);
    expect(s2.refreshToken).not.toBe(s1.refreshToken);
    expect(s2.claims.sid).toBe(s1.claims.sid);
    expect(s2.claims.jti).not.toBe(s1.claims.jti);
    expect(s2.refreshExpiresAt).toBe(clock.now + 7 * 24 * 3600 * 1000);
    expect(store.refresh.size).toBe(1);
    await expect(tokens.verifyAccess(s2.accessToken)).resolves.toMatchObject({ sub: 'u-alice' });
    const s3 = await tokens.refreshSession(s2.refreshToken, loadUser);
    await expect(tokens.verifyAccess(s3.accessToken)).resolves.toMatchObject({ sub: 'u-alice' });
  });

  it('revokes the whole family when a spent refresh token is replayed: the newer tokens stop working too', async () => {
    const { tokens, loadUser } = setup();
    const s1 = await tokens.startSession(alice);
    const s2 = await tokens.refreshSession(s1.refreshToken, loadUser); // the legitimate client rotates…
    const replay = await failure(tokens.refreshSession(s1.refreshToken, loadUser)); // …a thief replays the old one
    expect(replay).toMatchObject({ code: 'unauthenticated' });
    await expect(failure(tokens.refreshSession(s2.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
    await expect(failure(tokens.verifyAccess(s2.accessToken))).resolves.toMatchObject({ code: 'unauthenticated' });
    await expect(failure(tokens.verifyAccess(s1.accessToken))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('keeps other sessions of the same user alive when one family is revoked', async () => {
    const { tokens, loadUser } = setup();
    const phone = await tokens.startSession(alice);
    const desk = await tokens.startSession(alice);
    await tokens.refreshSession(phone.refreshToken, loadUser);
    await failure(tokens.refreshSession(phone.refreshToken, loadUser));
    await expect(tokens.verifyAccess(desk.accessToken)).resolves.toMatchObject({ sub: 'u-alice' });
    await expect(tokens.refreshSession(desk.refreshToken, loadUser)).resolves.toMatchObject({ claims: { sid: desk.claims.sid } });
  });

  it('refuses a malformed or unknown-secret refresh token, and an unknown family does no harm', async () => {
    const { tokens, loadUser, store } = setup();
    const s = await tokens.startSession(alice);
    await expect(failure(tokens.refreshSession('garbage', loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
    await expect(failure(tokens.refreshSession(`${s.refreshToken}x`, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
    expect(store.revokedFamilies.size).toBe(0);
    // A made-up family key names no real session; the real one still refreshes.
    await failure(tokens.refreshSession(`${'A'.repeat(22)}.${'B'.repeat(43)}`, loadUser));
    await expect(tokens.refreshSession(s.refreshToken, loadUser)).resolves.toMatchObject({ claims: { sub: 'u-alice' } });
  });

  it('refuses an expired refresh token', async () => {
    const { tokens, loadUser, clock } = setup();
    const s = await tokens.startSession(alice);
    clock.now = s.refreshExpiresAt;
    await expect(failure(tokens.refreshSession(s.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('reads the user afresh on refresh: a changed role applies, a disabled or deleted user is cut off', async () => {
    const { tokens, loadUser, users, store } = setup();
    const s1 = await tokens.startSession(alice);
    users.set(alice.id, { ...alice, role: 'owner' });
    const s2 = await tokens.refreshSession(s1.refreshToken, loadUser);
    expect(s2.claims.role).toBe('owner');
    users.set(alice.id, { ...alice, disabled: true });
    await expect(failure(tokens.refreshSession(s2.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
    expect(store.revokedFamilies.has(s1.claims.sid ?? '')).toBe(true);
    await expect(failure(tokens.startSession({ ...alice, disabled: true }))).resolves.toMatchObject({ code: 'unauthenticated' });
    users.delete(alice.id);
    const s3 = await tokens.startSession(alice);
    await expect(failure(tokens.refreshSession(s3.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('logout revokes the access jti until its exp and the refresh family', async () => {
    const { tokens, store, loadUser } = setup();
    const s = await tokens.startSession(alice);
    const claims = await tokens.verifyAccess(s.accessToken);
    await tokens.logout({ access: claims });
    expect(store.revokedJtis.get(claims.jti)).toBe(claims.exp * 1000);
    await expect(failure(tokens.verifyAccess(s.accessToken))).resolves.toMatchObject({ code: 'unauthenticated' });
    await expect(failure(tokens.refreshSession(s.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
  });

  it('logout with only the refresh token (access already expired) ends the session too', async () => {
    const { tokens, store, loadUser, clock } = setup();
    const s = await tokens.startSession(alice);
    clock.now += 3_600_000;
    await tokens.logout({ refreshToken: s.refreshToken });
    expect(store.refresh.size).toBe(0);
    await expect(failure(tokens.refreshSession(s.refreshToken, loadUser))).resolves.toMatchObject({ code: 'unauthenticated' });
    await tokens.logout({ refreshToken: 'garbage' });
  });
});
