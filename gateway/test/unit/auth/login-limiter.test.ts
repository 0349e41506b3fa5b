// Login rate limit: per (username, IP) and per IP budgets over the store's sliding-window hit().
import { describe, expect, it } from 'vitest';
import { AuthError } from '../../../src/features/auth/errors.js';
import { LoginLimiter } from '../../../src/features/auth/login-limiter.js';
import type { StorePort } from '../../../src/store/port.js';

/** The store's hit(), as specified: count one hit, return the hits within the window. */
class FakeHits implements Pick<StorePort, 'hit'> {
  readonly log = new Map<string, number[]>();
  hit(key: string, windowMs: number, now: number): Promise<number> {
    const hits = (this.log.get(key) ?? []).filter((t) => t > now - windowMs);
    hits.push(now);
    this.log.set(key, hits);
    return Promise.resolve(hits.length);
  }
}

function setup() {
  const clock = { now: 1_764_330_000_000 };
  const store = new FakeHits();
  const limiter = new LoginLimiter({ store, now: () => clock.now });
  return { clock, store, limiter };
}

async function refusal(p: Promise<unknown>): Promise<AuthError> {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(AuthError);
  return err as AuthError;
}

describe('LoginLimiter', () => {
  it('allows 5 attempts per username and IP in 15 minutes, then refuses with retryAfter', async () => {
    const { limiter } = setup();
    for (let i = 0; i < 5; i++) await limiter.attempt('alice', '10.0.0.1');
    const err = await refusal(limiter.attempt('alice', '10.0.0.1'));
    expect(err).toMatchObject({ code: 'rate-limited', status: 429, retryAfter: 900 });
  });

  it('counts the username case-insensitively, and keeps other users and other IPs apart', async () => {
    const { limiter } = setup();
    for (let i = 0; i < 5; i++) await limiter.attempt(i % 2 === 0 ? 'Alice' : 'alice', '10.0.0.1');
    await refusal(limiter.attempt('ALICE', '10.0.0.1'));
    await expect(limiter.attempt('alice', '10.0.0.2')).resolves.toBeUndefined();
    await expect(limiter.attempt('bob', '10.0.0.1')).resolves.toBeUndefined();
  });

  it('allows 50 attempts per IP across usernames, then refuses every username from it', async () => {
    const { limiter } = setup();
    for (let i = 0; i < 50; i++) await limiter.attempt(`user${i}`, '10.0.0.9');
    const err = await refusal(limiter.attempt('someone-new', '10.0.0.9'));
    expect(err).toMatchObject({ code: 'rate-limited', retryAfter: 900 });
    await expect(limiter.attempt('someone-new', '10.0.0.10')).resolves.toBeUndefined();
  });

  it('opens again once the window has passed without attempts', async () => {
    const { limiter, clock } = setup();
    for (let i = 0; i < 6; i++) await limiter.attempt('alice', '10.0.0.1').catch(() => undefined);
    clock.now += 14 * 60 * 1000;
    await refusal(limiter.attempt('alice', '10.0.0.1'));
    // Refused attempts count too: the window restarts from the last one.
    clock.now += 15 * 60 * 1000 + 1;
    await expect(limiter.attempt('alice', '10.0.0.1')).resolves.toBeUndefined();
  });

  it('takes custom budgets and reports the longer window when both are spent', async () => {
    const store = new FakeHits();
    const limiter = new LoginLimiter({ store, perUser: { max: 1, windowMs: 60_000 }, perIp: { max: 1, windowMs: 120_000 }, now: () => 0 });
    await limiter.attempt('a', '::1');
    await expect(refusal(limiter.attempt('a', '::1'))).resolves.toMatchObject({ retryAfter: 120 });
  });

  it('keeps usernames out of store keys', async () => {
    const { limiter, store } = setup();
    await limiter.attempt('alice:*\n', '10.0.0.1');
    for (const key of store.log.keys()) expect(key).toMatch(/^login:(user-ip|ip):[A-Za-z0-9_-]{32}$/);
  });
});
