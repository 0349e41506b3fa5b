// The controller's local decision (PROTOCOL §5.3) and the pure seq/boot/exp checks (§4.4, §6).
import { describe, expect, it } from 'vitest';
import { decideAccess, holdGrant, type HeldGrant, type Presented } from '../../src/controller/decide.js';
import { classifyEventSeq, clockSkew, deathApplies, isExpired, isReplay, nextSeq } from '../../src/index.js';

const T = 1_764_330_000_000;
const grant = holdGrant({
  grantId: 'g-1',
  incident: 'inc-1',
  doors: ['street', 'stair'],
  credentials: [{ kind: 'tag', uid: '04A1B2C3' }, { kind: 'pin', pin: '4711' }],
  notBefore: T,
  notAfter: T + 60_000,
});
const decide = (credential: Presented, opts: { door?: string; now?: number; grants?: HeldGrant[]; expired?: HeldGrant[]; clockSynced?: boolean } = {}) =>
  decideAccess({
    grants: opts.grants ?? [grant],
    expired: opts.expired ?? [],
    door: opts.door ?? 'street',
    credential,
    now: opts.now ?? T + 1000,
    clockSynced: opts.clockSynced ?? true,
  });
const tag: Presented = { kind: 'tag', uid: '04A1B2C3' };

describe('decideAccess', () => {
  it('grants a held tag or PIN at a granted door inside the window', () => {
    expect(decide(tag)).toEqual({ result: 'granted', reason: 'grant', grantId: 'g-1' });
    expect(decide({ kind: 'pin', pin: '4711' }, { door: 'stair' })).toEqual({ result: 'granted', reason: 'grant', grantId: 'g-1' });
  });
  it('keeps PINs only as hashes', () => {
    expect(JSON.stringify(grant)).not.toContain('4711');
  });
  it('names the reason for each denial', () => {
    expect(decide({ kind: 'tag', uid: 'FFFF0000' })).toMatchObject({ result: 'denied', reason: 'unknown' });
    expect(decide({ kind: 'pin', pin: '0000' })).toMatchObject({ result: 'denied', reason: 'unknown' });
    expect(decide(tag, { door: 'floor-3' })).toMatchObject({ result: 'denied', reason: 'wrong-door' });
    expect(decide(tag, { now: T - 1 })).toMatchObject({ result: 'denied', reason: 'not-yet-valid' });
    expect(decide(tag, { now: T + 60_000 })).toMatchObject({ result: 'denied', reason: 'expired' });
    expect(decide(tag, { grants: [], expired: [grant] })).toMatchObject({ result: 'denied', reason: 'expired' });
    expect(decide(tag, { clockSynced: false })).toEqual({ result: 'denied', reason: 'clock-unsafe' });
  });
  it('a PIN of one grant does not open another grant', () => {
    const other = holdGrant({ grantId: 'g-2', incident: 'inc-2', doors: ['garage'], credentials: [{ kind: 'pin', pin: '9999' }], notBefore: T, notAfter: T + 1000 });
    expect(decide({ kind: 'pin', pin: '9999' }, { grants: [grant, other], door: 'street' })).toMatchObject({ reason: 'wrong-door' });
  });
});

describe('seq, boot, exp and clock checks', () => {
  it('classifies event seqs per boot', () => {
    expect(classifyEventSeq(undefined, 1)).toEqual({ kind: 'new' });
    expect(classifyEventSeq(4, 5)).toEqual({ kind: 'new' });
    expect(classifyEventSeq(4, 4)).toEqual({ kind: 'duplicate' });
    expect(classifyEventSeq(4, 2)).toEqual({ kind: 'duplicate' });
    expect(classifyEventSeq(7, 10)).toEqual({ kind: 'gap', missing: 2 });
    expect(classifyEventSeq(undefined, 3)).toEqual({ kind: 'gap', missing: 2 });
  });
  it('replay, expiry, death and skew', () => {
    expect(isReplay(10, 10)).toBe(true);
    expect(isReplay(10, 11)).toBe(false);
    expect(isExpired(undefined, T)).toBe(false);
    expect(isExpired(T, T)).toBe(false);
    expect(isExpired(T, T + 1)).toBe(true);
    expect(deathApplies('boot-b', 'boot-a')).toBe(false);
    expect(deathApplies('boot-b', 'boot-b')).toBe(true);
    expect(deathApplies(undefined, 'boot-a')).toBe(true);
    expect(clockSkew(T + 5000, T)).toEqual({ skewMs: 5000, safe: true });
    expect(clockSkew(T - 5001, T)).toEqual({ skewMs: -5001, safe: false });
    expect(nextSeq(10, 25)).toBe(26);
    expect(nextSeq(30, 25)).toBe(31);
    expect(nextSeq(0, undefined)).toBe(1);
  });
});
