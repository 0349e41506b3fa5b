/**
 * Login rate limit (DESIGN §7): a budget per (username, client IP), against guessing one account's
 * password, and a larger one per client IP, against spraying many accounts from one address.
 *
 * The store's `hit()` counts and reads in one atomic step (sliding window); there is no read
 * without a count. So the limiter counts attempts, before the password is checked, rather than
 * failures after it: a check that could only run after scrypt would let an attacker spend our
 * CPU, and a success could not be told apart from a failure without a second, racy read. The
 * price is that a successful login uses one attempt of the budget too.
 */
import { createHash } from 'node:crypto';
import type { StorePort } from '../../store/port.js';
import { AuthError } from './errors.js';

export interface RateBudget {
  max: number;
  windowMs: number;
}

export interface LoginLimiterOptions {
  store: Pick<StorePort, 'hit'>;
  /** Per username + client IP; 5 in 15 minutes by default. */
  perUser?: RateBudget;
  /** Per client IP, across usernames; 50 in 15 minutes by default. */
  perIp?: RateBudget;
  /** Clock, ms epoch. */
  now?: () => number;
}

const FIFTEEN_MINUTES = 15 * 60 * 1000;

// Usernames are user input: hashed, they cannot shape the store key, and the key's length is fixed.
const digest = (s: string): string => createHash('sha256').update(s).digest('base64url').slice(0, 32);

function checked(b: RateBudget, what: string): RateBudget {
  if (!Number.isSafeInteger(b.max) || b.max < 1 || !Number.isSafeInteger(b.windowMs) || b.windowMs < 1000) {
    throw new RangeError(`${what}: max must be ≥ 1 and windowMs ≥ 1000`);
  }
  return b;
}

export class LoginLimiter {
  private readonly store: Pick<StorePort, 'hit'>;
  private readonly perUser: RateBudget;
  private readonly perIp: RateBudget;
  private readonly now: () => number;

  constructor(o: LoginLimiterOptions) {
    this.store = o.store;
    this.perUser = checked(o.perUser ?? { max: 5, windowMs: FIFTEEN_MINUTES }, 'perUser');
    this.perIp = checked(o.perIp ?? { max: 50, windowMs: FIFTEEN_MINUTES }, 'perIp');
    this.now = o.now ?? Date.now;
  }

  /**
   * Count one login attempt by `username` from `ip`; throws AuthError `rate-limited` (with
   * `retryAfter` seconds) when either budget is spent. Call it before verifying the password.
   * Refused attempts count too, so a client that keeps hammering stays locked out; one that waits
   * `retryAfter` seconds finds the window empty again.
   */
  async attempt(username: string, ip: string): Promise<void> {
    const now = this.now();
    const user = username.normalize('NFC').toLowerCase();
    const [userHits, ipHits] = await Promise.all([
      this.store.hit(`login:user-ip:${digest(`${user}\n${ip}`)}`, this.perUser.windowMs, now),
      this.store.hit(`login:ip:${digest(ip)}`, this.perIp.windowMs, now),
    ]);
    // The port does not say when the oldest hit leaves the window, so the whole window is the
    // honest upper bound.
    let retryAfterMs = 0;
    if (userHits > this.perUser.max) retryAfterMs = this.perUser.windowMs;
    if (ipHits > this.perIp.max) retryAfterMs = Math.max(retryAfterMs, this.perIp.windowMs);
    if (retryAfterMs > 0) throw new AuthError('rate-limited', 'too many login attempts; try again later', Math.ceil(retryAfterMs / 1000));
  }
}
