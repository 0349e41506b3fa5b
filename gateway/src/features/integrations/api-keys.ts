/**
 * Integration API keys (issue 8): `sp_int_<43 base64url chars>` (256 random bits), shown once and
 * stored only as their SHA-256. A key is found by its hash (an index lookup), then the stored
 * hash is compared in constant time. A fast hash is enough here: the key is random, not a password.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../errors.js';
import type { Authenticate, AuthRequest, Principal } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';

export const API_KEY_PREFIX = 'sp_int_';
const API_KEY = /^sp_int_[A-Za-z0-9_-]{43}$/;

export function newApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** The key's visible start, to tell keys apart in a list (12 of its 256 bits carry no weight). */
export const keyHint = (key: string): string => `${key.slice(0, API_KEY_PREFIX.length + 4)}…`;

/** The API key a request carries: `Authorization: Bearer sp_int_…` or `X-API-Key: sp_int_…`. */
export function apiKeyOf(req: AuthRequest): string | undefined {
  const auth = req.headers.authorization;
  const m = typeof auth === 'string' ? /^Bearer (sp_int_\S*)$/i.exec(auth) : null;
  if (m) return m[1];
  const x = req.headers['x-api-key'];
  return typeof x === 'string' && x.startsWith(API_KEY_PREFIX) ? x : undefined;
}

/** Resolves an integration's key to its principal, or throws `unauthenticated`. */
export async function authenticateApiKey(store: StorePort, key: string): Promise<Principal> {
  if (!API_KEY.test(key)) throw AppError.unauthenticated('invalid API key');
  const hash = hashApiKey(key);
  const found = await listAll(store, 'integrations', { field: 'keyHash', value: hash });
  const given = Buffer.from(hash, 'hex');
  const match = found.find((i) => {
    const stored = Buffer.from(i.keyHash, 'hex');
    return stored.length === given.length && timingSafeEqual(stored, given);
  });
  if (!match || match.revokedAt !== undefined) throw AppError.unauthenticated('invalid or revoked API key');
  return { userId: match.id, role: 'integration', integration: { id: match.id, scopes: [...match.scopes] } };
}

/**
 * The HTTP layer's `authenticate`: an API key when the request carries one, else the users'
 * bearer token check it wraps.
 */
export function withApiKeys(store: StorePort, users: Authenticate): Authenticate {
  return async (req) => {
    const key = apiKeyOf(req);
    return key === undefined ? users(req) : authenticateApiKey(store, key);
  };
}

/** 403 unless the integration holds `scope`. */
export function requireScope(p: Principal, scope: string): { id: string } {
  if (p.integration === undefined || !p.integration.scopes.includes(scope)) throw AppError.forbidden(`this API key lacks the scope ${scope}`);
  return { id: p.integration.id };
}
