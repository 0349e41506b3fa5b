/**
 * Password hashing with scrypt (DESIGN §7, RFC 7914). Stored form: `scrypt$N$r$p$salt$hash`, with
 * N, r, p in decimal and salt and hash in base64url without padding, so the cost can rise later
 * without breaking old hashes (each hash carries its own parameters).
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

/** Production cost: about 32 MiB and tens of milliseconds per hash. Tests inject a lower one. */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = { N: 2 ** 15, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
// Bounds for parameters read back from a stored hash, so a corrupt or planted row cannot make a
// verify allocate gigabytes or spin for minutes.
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

function scrypt(password: string, salt: Buffer, keyLen: number, params: ScryptParams): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is just below what N=2^15, r=8 needs (128·r·(N+p+2) bytes).
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 128 * params.r * (params.N + params.p + 2) + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCb(password.normalize('NFC'), salt, keyLen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function validParams(p: ScryptParams): boolean {
  return (
    Number.isSafeInteger(p.N) && p.N >= 2 && p.N <= MAX_N && (p.N & (p.N - 1)) === 0 &&
    Number.isSafeInteger(p.r) && p.r >= 1 && p.r <= MAX_R &&
    Number.isSafeInteger(p.p) && p.p >= 1 && p.p <= MAX_P
  );
}

interface Parsed {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
const DECIMAL = /^[1-9]\d{0,7}$/;

function parse(stored: string): Parsed | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  if (!DECIMAL.test(n) || !DECIMAL.test(r) || !DECIMAL.test(p) || !B64URL.test(salt) || !B64URL.test(hash)) return undefined;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const saltBytes = Buffer.from(salt, 'base64url');
  const hashBytes = Buffer.from(hash, 'base64url');
  if (!validParams(params) || saltBytes.length < 8 || hashBytes.length < 16 || hashBytes.length > 64) return undefined;
  return { params, salt: saltBytes, hash: hashBytes };
}

/**
 * Hashes and verifies passwords. The cost is a constructor parameter only so tests can run fast;
 * every production caller uses the default.
 *
 * @example
 *   const hasher = new PasswordHasher();
 *   const stored = await hasher.hash('correct horse');          // 'scrypt$32768$8$1$…$…'
 *   await hasher.verify('correct horse', stored);               // true
 *   await hasher.verify(password, user?.passwordHash);          // unknown user: false, same cost
 */
export class PasswordHasher {
  /**
   * For unknown users: a random salt and random "hash" at this hasher's cost. No password maps to
   * it (short of a 2^-256 chance), and nothing needs computing up front.
   */
  private readonly dummy: Parsed;

  constructor(readonly params: Readonly<ScryptParams> = DEFAULT_SCRYPT_PARAMS) {
    if (!validParams(params)) throw new RangeError('scrypt parameters out of range');
    this.dummy = { params, salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };
  }

  async hash(password: string): Promise<string> {
    const salt = randomBytes(SALT_BYTES);
    const hash = await scrypt(password, salt, HASH_BYTES, this.params);
    const { N, r, p } = this.params;
    return `scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
  }

  /**
   * True when `password` matches `stored`. With no stored hash (unknown user) or a malformed one it
   * still runs one scrypt at this hasher's cost and returns false, so the answer time does not
   * tell an attacker which usernames exist.
   */
  async verify(password: string, stored: string | undefined): Promise<boolean> {
    const parsed = stored === undefined ? undefined : parse(stored);
    if (parsed === undefined) {
      await this.verifyDummy(password);
      return false;
    }
    const actual = await scrypt(password, parsed.salt, parsed.hash.length, parsed.params);
    return timingSafeEqual(actual, parsed.hash);
  }

  /** Spend the same work as a real verify, and answer false. */
  async verifyDummy(password: string): Promise<false> {
    const d = this.dummy;
    const actual = await scrypt(password, d.salt, d.hash.length, d.params);
    timingSafeEqual(actual, d.hash);
    return false;
  }

  /** True when `stored` was made with weaker parameters than this hasher's (rehash on login). */
  needsRehash(stored: string): boolean {
    const parsed = parse(stored);
    return parsed === undefined || parsed.params.N < this.params.N || parsed.params.r < this.params.r || parsed.params.p < this.params.p;
  }
}
