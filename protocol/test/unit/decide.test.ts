// The controller's local decision (PROTOCOL §5.3) and the pure seq/boot/exp checks (§4.4, §6).
import { describe, expect, it } from 'vitest';
import { decideAccess, holdGrant, type HeldGrant, type Presented } from '../../src/controller/decide.js';
import { acceptSeq, classifyEventSeq, clockSkew, deathApplies, isExpired, isReplay, nextSeq, REPLAY_WINDOW } from '../../src/index.js';

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
  it('classifies event seqs per boot, taking late arrivals exactly once', () => {
    let st = classifyEventSeq(undefined, 1);
    expect(st).toMatchObject({ kind: 'new', missing: 0 });
    st = classifyEventSeq(st.state, 2);
    expect(st).toMatchObject({ kind: 'new', missing: 0, state: { highest: 2, missing: [] } });
    expect(classifyEventSeq(st.state, 2).kind).toBe('duplicate');
    st = classifyEventSeq(st.state, 5);
    expect(st).toMatchObject({ kind: 'new', missing: 2, state: { highest: 5, missing: [3, 4] } });
    const late = classifyEventSeq(st.state, 4);
    expect(late).toMatchObject({ kind: 'late', state: { highest: 5, missing: [3] } });
    expect(classifyEventSeq(late.state, 4).kind).toBe('duplicate');
    expect(classifyEventSeq(undefined, 3)).toMatchObject({ kind: 'new', missing: 2 });
  });

  it('anti-replay window: seen or too old is a replay, an overtaken seq is not', () => {
    let w = { highest: 0, recent: [] as readonly number[] };
    for (const seq of [1, 2, 5]) {
      expect(isReplay(w, seq)).toBe(false);
      w = acceptSeq(w, seq);
    }
    expect(w).toEqual({ highest: 5, recent: [1, 2, 5] });
    expect(isReplay(w, 5)).toBe(true);
    expect(isReplay(w, 2)).toBe(true);
    expect(isReplay(w, 4)).toBe(false);
    w = acceptSeq(w, 4);
    expect(isReplay(w, 4)).toBe(true);
    w = acceptSeq(w, 5 + REPLAY_WINDOW);
    expect(w.recent).toEqual([5 + REPLAY_WINDOW]);
    expect(isReplay(w, 6)).toBe(false);
    expect(isReplay(w, 5)).toBe(true);
  });

  it('replay, expiry, death and skew', () => {
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
