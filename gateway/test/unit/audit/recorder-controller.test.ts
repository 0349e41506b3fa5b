// What controller messages become in the audit trail (issue 4): types, ids, actor, the
// controller's own time and (boot, seq), dedupe keys, and presence only on changes.
import { describe, expect, it } from 'vitest';
import { buildMessage, generateRawKeyPair, privateKeyFromSeed, type EvtBody, type StateBody } from '@smart-passage/protocol';
import {
  commandDoneInput,
  controllerEventInput,
  eventsMissingInput,
  grantDeliveredInput,
  presenceInputs,
  securityRejectedInput,
} from '../../../src/features/audit/recorder-controller.js';
import { applyState, emptyLive } from '../../../src/features/controllers/presence.js';

const AT = 1_764_330_000_000;
const BOOT = 'boot-aaaaaaaa';
const evt = (body: EvtBody, seq = 7) => ({ boot: BOOT, seq, body });
const common = { actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', dedupe: `evt:ctl-1:${BOOT}:7` };

describe('controllerEventInput', () => {
  it('maps a granted tag access with our door, tag, grant and incident ids', () => {
    const body: EvtBody = { kind: 'access', door: 'street', credential: { kind: 'tag', uid: '04C0FFEE01' }, result: 'granted', reason: 'grant', grantId: 'grt-1', at: AT };
    expect(controllerEventInput('ctl-1', evt(body), { buildingId: 'bld-1', doorId: 'door-1', tagId: 'tag-1', incidentId: 'inc-1' })).toEqual({
      ...common,
      type: 'access.granted',
      reason: 'grant',
      doorId: 'door-1',
      grantId: 'grt-1',
      incidentId: 'inc-1',
      tagId: 'tag-1',
      data: { door: 'street', credential: 'tag', at: AT, boot: BOOT, seq: 7 },
    });
  });

  it('keeps an unknown tag as its uid, and a PIN as its kind only', () => {
    const unknown: EvtBody = { kind: 'access', door: 'street', credential: { kind: 'tag', uid: 'DEADBEEF' }, result: 'denied', reason: 'unknown', at: AT };
    const i = controllerEventInput('ctl-1', evt(unknown), { buildingId: 'bld-1' });
    expect(i).toMatchObject({ type: 'access.denied', reason: 'unknown', data: { credential: 'tag', uid: 'DEADBEEF' } });
    expect(i.tagId).toBeUndefined();
    const pin: EvtBody = { kind: 'access', door: 'street', credential: { kind: 'pin' }, result: 'denied', reason: 'expired', at: AT };
    expect(controllerEventInput('ctl-1', evt(pin), { buildingId: 'bld-1' }).data).toEqual({ door: 'street', credential: 'pin', at: AT, boot: BOOT, seq: 7 });
  });

  it('maps door states: forced and held get their own types, the rest door.state with the cause', () => {
    const door = (state: 'forced' | 'held' | 'open', cause?: 'pulse') => controllerEventInput('ctl-1', evt({ kind: 'door', door: 'street', state, ...(cause ? { cause } : {}), at: AT }), { buildingId: 'bld-1', doorId: 'door-1' });
    expect(door('forced')).toMatchObject({ type: 'door.forced', doorId: 'door-1' });
    expect(door('held')).toMatchObject({ type: 'door.held-open', doorId: 'door-1' });
    expect(door('open', 'pulse')).toEqual({ ...common, type: 'door.state', doorId: 'door-1', data: { door: 'street', state: 'open', cause: 'pulse', at: AT, boot: BOOT, seq: 7 } });
  });

  it('maps tamper and a message the controller rejected', () => {
    expect(controllerEventInput('ctl-1', evt({ kind: 'tamper', at: AT }), { buildingId: 'bld-1' })).toEqual({ ...common, type: 'tamper', data: { at: AT, boot: BOOT, seq: 7 } });
    expect(controllerEventInput('ctl-1', evt({ kind: 'rejected', code: 'bad-signature', suppressed: 3, at: AT }), { buildingId: 'bld-1' })).toEqual({
      ...common,
      type: 'controller.rejected',
      reason: 'bad-signature',
      data: { suppressed: 3, at: AT, boot: BOOT, seq: 7 },
    });
  });
});

describe('the other controller entries', () => {
  it('gaps, drops, finished commands and deliveries, each with its key', () => {
    expect(eventsMissingInput('ctl-1', BOOT, 9, 2, 'bld-1')).toEqual({ type: 'controller.events-missing', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', data: { boot: BOOT, seq: 9, count: 2 }, dedupe: `missing:ctl-1:${BOOT}:9` });
    expect(securityRejectedInput('ctl-x', 'unknown-controller', 'no such', undefined)).toEqual({ type: 'security.rejected', actor: { kind: 'controller', id: 'ctl-x' }, controllerId: 'ctl-x', buildingId: undefined, reason: 'unknown-controller', data: { detail: 'no such' } });
    expect(securityRejectedInput('ctl-1', 'bad-signature', 'x', 'bld-1', 4).data).toEqual({ detail: 'x', suppressed: 4 });
    expect(commandDoneInput('ctl-1', { id: 'cmd-1', type: 'door.hold', door: 'street' }, { buildingId: 'bld-1', doorId: 'door-1' })).toMatchObject({ type: 'door.hold.done', doorId: 'door-1', dedupe: 'reply:ctl-1:cmd-1' });
    expect(grantDeliveredInput('ctl-1', { id: 'grt-1', incidentId: 'inc-1', buildingId: 'bld-1' }, 4)).toEqual({
      type: 'grant.delivered', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', grantId: 'grt-1', incidentId: 'inc-1', data: { version: 4 }, dedupe: 'delivered:grt-1:ctl-1:4',
    });
  });
});

describe('presenceInputs', () => {
  const key = { kid: 'k', key: privateKeyFromSeed(generateRawKeyPair().privateKey) };
  const state = (boot: string, body: StateBody) => buildMessage({ type: 'state', ctrl: 'ctl-1', seq: 0, boot, body, key, iat: AT });
  const birth = (boot: string, o: { clock?: number; synced?: boolean } = {}) =>
    state(boot, { online: true, fw: 'fw/1', vendor: 'v', appliedVersion: 3, lastSeq: 1, clock: o.clock ?? AT, clockSynced: o.synced ?? true, doors: [] });
  const fold = (cur: ReturnType<typeof emptyLive>, msg: ReturnType<typeof birth>, retained = false) => {
    const change = applyState(cur, msg, { receivedAt: AT, retained });
    return { change, inputs: presenceInputs('ctl-1', cur, change, msg, 'bld-1') };
  };

  it('records online on a birth, nothing for a repeat of the live boot, offline on its will', () => {
    const b = birth(BOOT);
    const first = fold(emptyLive('ctl-1'), b);
    expect(first.inputs).toEqual([
      { type: 'controller.online', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', data: { boot: BOOT, fw: 'fw/1', appliedVersion: 3 }, dedupe: `online:ctl-1:${b.id}` },
    ]);
    expect(fold(first.change.live, b, true).inputs).toEqual([]);
    expect(fold(first.change.live, birth(BOOT)).inputs).toEqual([]);
    const will = state(BOOT, { online: false });
    const gone = applyState(first.change.live, will, { receivedAt: AT, retained: false });
    expect(presenceInputs('ctl-1', first.change.live, gone, will, 'bld-1')).toMatchObject([{ type: 'controller.offline', data: { boot: BOOT }, dedupe: `offline:ctl-1:${will.id}` }]);
  });

  it('records clock-unsafe when the clock turns unsafe, not again while it stays so', () => {
    const safe = fold(emptyLive('ctl-1'), birth(BOOT)).change.live;
    const off = fold(safe, birth(BOOT, { clock: AT + 9000 }));
    expect(off.inputs).toMatchObject([{ type: 'controller.clock-unsafe', data: { boot: BOOT, clockSynced: true, skewMs: 9000 } }]);
    expect(fold(off.change.live, birth(BOOT, { clock: AT + 9000 })).inputs).toEqual([]);
    const unsynced = fold(emptyLive('ctl-1'), birth('boot-bbbbbbbb', { synced: false }));
    expect(unsynced.inputs.map((i) => i.type)).toEqual(['controller.online', 'controller.clock-unsafe']);
  });
});
