// Presence (PROTOCOL §6.2): births win, wills count only for the live boot, skew only from live births.
import { describe, expect, it } from 'vitest';
import { buildMessage, generateRawKeyPair, privateKeyFromSeed, type StateBody } from '@smart-passage/protocol';
import { applyState, emptyLive } from '../../../src/features/controllers/presence.js';

const key = { kid: 'k', key: privateKeyFromSeed(generateRawKeyPair().privateKey) };
const T = 1_764_330_000_000;
const state = (boot: string, body: StateBody) => buildMessage({ type: 'state', ctrl: 'ctl-1', seq: 0, boot, body, key, iat: T });
const birth = (boot: string, clock = T, clockSynced = true) =>
  state(boot, { online: true, fw: 'fw/1', vendor: 'v', appliedVersion: 3, lastSeq: 17, clock, clockSynced, doors: [{ ref: 'street', locked: true, open: false }] });

describe('applyState', () => {
  it('takes a birth: online, boot, versions, doors, skew', () => {
    const r = applyState(emptyLive('ctl-1'), birth('boot-aaaaaaaa', T + 1200), { receivedAt: T, retained: false });
    expect(r).toMatchObject({ cameOnline: true, wentOffline: false, live: { online: true, boot: 'boot-aaaaaaaa', appliedVersion: 3, lastSeq: 17, clockSkewMs: 1200, clockSafe: true } });
  });
  it('marks a clock more than 5 s off, or unsynced, as unsafe', () => {
    expect(applyState(emptyLive('ctl-1'), birth('boot-aaaaaaaa', T - 6000), { receivedAt: T, retained: false }).live.clockSafe).toBe(false);
    expect(applyState(emptyLive('ctl-1'), birth('boot-aaaaaaaa', T, false), { receivedAt: T, retained: false }).live.clockSafe).toBe(false);
  });
  it('does not measure skew from a retained birth', () => {
    const r = applyState(emptyLive('ctl-1'), birth('boot-aaaaaaaa', T - 3_600_000), { receivedAt: T, retained: true });
    expect(r.live.clockSkewMs).toBeUndefined();
    expect(r.live.clockSafe).toBe(true);
  });
  it('takes the will of the live boot, ignores a late will of an earlier one', () => {
    const live = applyState(emptyLive('ctl-1'), birth('boot-bbbbbbbb'), { receivedAt: T, retained: false }).live;
    const late = applyState(live, state('boot-aaaaaaaa', { online: false }), { receivedAt: T + 1, retained: false });
    expect(late).toMatchObject({ wentOffline: false, live: { online: true, boot: 'boot-bbbbbbbb' } });
    const dead = applyState(live, state('boot-bbbbbbbb', { online: false }), { receivedAt: T + 2, retained: false });
    expect(dead).toMatchObject({ wentOffline: true, live: { online: false, boot: 'boot-bbbbbbbb', lastSeen: T + 2 } });
  });
  it('a repeated birth of the same boot is not a new coming online', () => {
    const live = applyState(emptyLive('ctl-1'), birth('boot-bbbbbbbb'), { receivedAt: T, retained: false }).live;
    expect(applyState(live, birth('boot-bbbbbbbb'), { receivedAt: T + 5, retained: false }).cameOnline).toBe(false);
  });
});
