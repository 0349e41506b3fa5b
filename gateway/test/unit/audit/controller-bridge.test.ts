// The controller bridge's audit path (DESIGN §8, issue 4), with a fake MQTT client handed in
// through the constructor: an event is audited before it is acknowledged; a record that fails
// leaves it unacknowledged and unclassified and makes the broker hand it back; a redelivery
// records once; drops, gaps, deliveries, finished commands and presence are audited too.
import { EventEmitter } from 'node:events';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { buildMessage, controllerTopic, generateRawKeyPair, privateKeyFromSeed, silentLogger, type BodyOf, type EvtBody, type Message, type StateBody } from '@smart-passage/protocol';
import { ControllerBridge } from '../../../src/features/controllers/controller-bridge.js';
import { CollectingSink, memoryStore } from './fakes.js';

/** Just what the bridge uses of an mqtt.js client; `deliver` plays the broker handing over a PUBLISH. */
class FakeClient extends EventEmitter {
  handleMessage: (packet: IPublishPacket, done: (err?: Error) => void) => void = (_p, done) => done();
  readonly options = { clean: false, reconnectPeriod: 1000 };
  readonly published: { topic: string; payload: string }[] = [];
  dropped = 0;
  readonly stream = { destroy: () => void (this.dropped += 1) };
  subscribeAsync(): Promise<unknown[]> {
    return Promise.resolve([]);
  }
  publish(topic: string, payload: string, _o: unknown, cb?: (err?: Error) => void): this {
    this.published.push({ topic, payload });
    cb?.();
    return this;
  }
  /** Resolves 'acked' when the handler lets mqtt.js send the PUBACK, else the error it gave. */
  deliver(topic: string, msg: unknown, retain = false): Promise<'acked' | Error> {
    const packet = { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(msg)), qos: 1, retain, dup: false, messageId: 1 } as IPublishPacket;
    return new Promise((resolve) => this.handleMessage(packet, (err) => resolve(err ?? 'acked')));
  }
  /** The session resumed (mqtt.js reconnected). */
  reconnected(): void {
    this.emit('connect');
  }
}

const BOOT = 'boot-aaaaaaaa';
const ctlKeys = generateRawKeyPair();
const ctlKey = { kid: 'ctl-1-k1', key: privateKeyFromSeed(ctlKeys.privateKey) };
const gwKey = { kid: 'gw', key: privateKeyFromSeed(generateRawKeyPair().privateKey) };

async function world(o: { rejectedEveryMs?: number; reconcileMs?: number; laneBackoffMs?: number } = {}) {
  const store = await memoryStore();
  const now = Date.now();
  await store.insert('controllers', { id: 'ctl-1', buildingId: 'bld-1', vendor: 'v', publicKey: ctlKeys.publicKey, controllerKid: ctlKey.kid, mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: now });
  await store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'Street', kind: 'entrance', routeOrder: 1, controllerId: 'ctl-1', ref: 'street', pulseSeconds: 5, emergency: true });
  await store.insert('tags', { id: 'tag-1', uid: '04C0FFEE01', label: 'RTJ #1', unitId: 'unit-1', status: 'active' });
  await store.insert('tags', { id: 'tag-9', uid: '0BADBAD0', label: 'lost one', unitId: 'unit-2', status: 'blocked' });
  await store.insert('grants', {
    id: 'grt-1', incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], notBefore: now, notAfter: now + 600_000,
    status: 'pending', createdBy: 'usr-1', createdAt: now, deliveries: [{ controllerId: 'ctl-1', version: 1, state: 'pending' }],
  });
  await store.bumpDesiredVersion('ctl-1');
  const client = new FakeClient();
  const audit = new CollectingSink();
  const bridge = new ControllerBridge({ client: client as unknown as MqttClient, store, gatewayKey: gwKey, boot: 'gwboot-1', logger: silentLogger, audit, ...o });
  const events: Message<'evt'>[] = [];
  bridge.on('event', (_c, m) => events.push(m));
  await bridge.start();
  let seq = 0;
  const evt = (body: EvtBody, s = ++seq) => buildMessage({ type: 'evt', ctrl: 'ctl-1', seq: s, boot: BOOT, body, key: ctlKey, iat: Date.now() });
  const state = (body: StateBody, boot = BOOT) => buildMessage({ type: 'state', ctrl: 'ctl-1', seq: 0, boot, body, key: ctlKey, iat: Date.now() });
  const reply = (body: BodyOf<'reply'>) => buildMessage({ type: 'reply', ctrl: 'ctl-1', seq: ++seq, boot: BOOT, body, key: ctlKey, iat: Date.now() });
  return { store, client, audit, bridge, events, evt, state, reply, stop: () => bridge.stop() };
}

const EVT = controllerTopic('ctl-1', 'evt');
const access = (): EvtBody => ({ kind: 'access', door: 'street', credential: { kind: 'tag', uid: '04C0FFEE01' }, result: 'granted', reason: 'grant', grantId: 'grt-1', at: 1_764_330_000_000 });
const birth = (o: { appliedVersion?: number; clockSynced?: boolean } = {}): StateBody => ({
  online: true, fw: 'fw/1', vendor: 'v', appliedVersion: o.appliedVersion ?? 0, lastSeq: 0, clock: Date.now(), clockSynced: o.clockSynced ?? true, doors: [{ ref: 'street', locked: true, open: false }],
});

describe('ControllerBridge: controller events', () => {
  it('audits an access event with our ids before acking it, then hands it on', async () => {
    const w = await world();
    const m = w.evt(access());
    expect(await w.client.deliver(EVT, m)).toBe('acked');
    expect(w.audit.inputs).toEqual([
      {
        type: 'access.granted',
        actor: { kind: 'controller', id: 'ctl-1' },
        controllerId: 'ctl-1',
        buildingId: 'bld-1',
        dedupe: `evt:ctl-1:${BOOT}:${m.seq}`,
        reason: 'grant',
        doorId: 'door-1',
        grantId: 'grt-1',
        incidentId: 'inc-1',
        tagId: 'tag-1',
        unitId: 'unit-1',
        data: { door: 'street', credential: 'tag', at: 1_764_330_000_000, boot: BOOT, seq: m.seq },
      },
    ]);
    expect(w.events).toHaveLength(1);
    // A blocked tag outside any grant is still named by its id.
    await w.client.deliver(EVT, w.evt({ kind: 'access', door: 'street', credential: { kind: 'tag', uid: '0BADBAD0' }, result: 'denied', reason: 'unknown', at: 1 }));
    expect(w.audit.inputs.at(-1)).toMatchObject({ type: 'access.denied', tagId: 'tag-9', doorId: 'door-1' });
    w.stop();
  });

  it('records a redelivered event once and does not act on it twice', async () => {
    const w = await world();
    const m = w.evt({ kind: 'door', door: 'street', state: 'open', cause: 'credential', at: 1 });
    expect(await w.client.deliver(EVT, m)).toBe('acked');
    expect(await w.client.deliver(EVT, m)).toBe('acked');
    expect(w.audit.calls).toHaveLength(2);
    expect(w.audit.types()).toEqual(['door.state']);
    expect(w.events).toHaveLength(1);
    w.stop();
  });

  it('leaves an event unacked and unclassified when its record fails, drops the connection, and handles the redelivery', async () => {
    const w = await world();
    const m = w.evt(access());
    const after = w.evt({ kind: 'tamper', at: 2 });
    w.audit.failures = 1;
    const r = await w.client.deliver(EVT, m);
    expect(r).toBe(w.audit.error);
    expect(w.client.dropped).toBe(1);
    expect(w.events).toEqual([]);
    // What comes after it on the same connection waits too, so the order holds on redelivery.
    expect(await w.client.deliver(EVT, after)).toBeInstanceOf(Error);
    expect(w.audit.types()).toEqual([]);
    expect(w.client.dropped).toBe(1);

    w.client.reconnected();
    expect(await w.client.deliver(EVT, m)).toBe('acked');
    expect(await w.client.deliver(EVT, after)).toBe('acked');
    expect(w.audit.types()).toEqual(['access.granted', 'tamper']);
    // Unclassified the first time: the redelivery is new, not a duplicate, and no gap is seen.
    expect(w.events.map((e) => e.seq)).toEqual([m.seq, after.seq]);
    w.stop();
  });

  it('records a gap as controller.events-missing, once', async () => {
    const w = await world();
    await w.client.deliver(EVT, w.evt({ kind: 'tamper', at: 1 }, 1));
    const late = w.evt({ kind: 'tamper', at: 4 }, 4);
    await w.client.deliver(EVT, late);
    await w.client.deliver(EVT, late);
    expect(w.audit.inputs.filter((i) => i.type === 'controller.events-missing')).toEqual([
      { type: 'controller.events-missing', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', data: { boot: BOOT, seq: 4, count: 2 }, dedupe: `missing:ctl-1:${BOOT}:4` },
    ]);
    w.stop();
  });

  it('still handles an event whose gap entry fails (a redelivery could not bring the gap back)', async () => {
    const w = await world();
    await w.client.deliver(EVT, w.evt({ kind: 'tamper', at: 1 }, 1));
    w.audit.failing.add('controller.events-missing');
    expect(await w.client.deliver(EVT, w.evt({ kind: 'door', door: 'street', state: 'open', at: 3 }, 3))).toBe('acked');
    expect(w.audit.types()).toEqual(['tamper', 'door.state']);
    expect(w.events.map((e) => e.seq)).toEqual([1, 3]);
    expect(w.client.dropped).toBe(0);
    w.stop();
  });
});

describe('ControllerBridge: drops, replies, presence', () => {
  it('records a dropped message as security.rejected, rate-limited with the repeats counted', async () => {
    const w = await world({ rejectedEveryMs: 100 });
    const forged = { ...w.evt(access()), sig: 'A'.repeat(86) };
    for (let i = 0; i < 3; i++) expect(await w.client.deliver(EVT, forged)).toBe('acked');
    expect(await w.client.deliver(controllerTopic('ctl-zz', 'evt'), forged)).toBe('acked');
    expect(w.audit.inputs).toEqual([
      { type: 'security.rejected', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', reason: 'bad-signature', data: { detail: 'signature does not verify' } },
      { type: 'security.rejected', actor: { kind: 'controller', id: 'ctl-zz' }, controllerId: 'ctl-zz', buildingId: undefined, reason: 'unknown-controller', data: { detail: 'no registered controller with this id' } },
    ]);
    await new Promise((r) => setTimeout(r, 150));
    expect(w.audit.inputs.at(-1)).toMatchObject({ type: 'security.rejected', controllerId: 'ctl-1', reason: 'bad-signature', data: { suppressed: 2 } });
    expect(w.events).toEqual([]);
    w.stop();
  });

  it('records a finished door command as door.pulse.done, and nothing for a reply it did not ask for', async () => {
    const w = await world();
    const id = await w.bridge.command('ctl-1', 'door.pulse', { door: 'street', seconds: 5 });
    expect(await w.client.deliver(controllerTopic('ctl-1', 'reply'), w.reply({ ref: id, status: 'done' }))).toBe('acked');
    expect(await w.client.deliver(controllerTopic('ctl-1', 'reply'), w.reply({ ref: '01JD0000000000000000000000', status: 'done' }))).toBe('acked');
    await w.bridge.idle(); // replies are acked when taken, handled in the controller's lane
    expect(w.audit.inputs).toEqual([
      { type: 'door.pulse.done', actor: { kind: 'controller', id: 'ctl-1' }, controllerId: 'ctl-1', buildingId: 'bld-1', doorId: 'door-1', data: { door: 'street', command: id }, dedupe: `reply:ctl-1:${id}` },
    ]);
    w.stop();
  });

  it('acks a reply when it takes it and handles it in its lane; a birth sent after it waits for it', async () => {
    const w = await world();
    const sent = JSON.parse(w.client.published.at(-1)?.payload ?? '{}') as { id?: string };
    const acks = [
      w.client.deliver(controllerTopic('ctl-1', 'reply'), w.reply({ ref: sent.id ?? '01JD0000000000000000000001', status: 'applied', appliedVersion: 1 })),
      w.client.deliver(controllerTopic('ctl-1', 'state'), w.state(birth({ appliedVersion: 1 }))),
    ];
    expect(await acks[0]).toBe('acked');
    expect(await acks[1]).toBe('acked');
    await w.bridge.idle();
    // The delivery was marked by the reply, before the birth (which then found nothing to mark).
    expect(w.audit.types()).toEqual(['grant.delivered', 'controller.online']);
    expect((await w.store.get('grants', 'grt-1'))?.status).toBe('active');
    expect((await w.store.get('controllerLive', 'ctl-1'))?.appliedVersion).toBe(1);
    w.stop();
  });

  it('marks a delivery left pending of a controller in step at its next reconcile (a reply lost before it was handled)', async () => {
    const w = await world({ reconcileMs: 20 });
    await w.store.put('controllerLive', { id: 'ctl-1', online: true, appliedVersion: 1, lastSeq: 0, clockSafe: true, doors: [] });
    const deadline = Date.now() + 2_000;
    while ((await w.store.get('grants', 'grt-1'))?.status !== 'active' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect((await w.store.get('grants', 'grt-1'))?.status).toBe('active');
    expect(w.audit.types()).toEqual(['grant.delivered']);
    w.stop();
  });

  it('records online, grant.delivered, clock-unsafe and offline, each only on a change', async () => {
    const w = await world();
    const STATE = controllerTopic('ctl-1', 'state');
    // States are acked when taken and handled in the controller's lane: settle before looking.
    const deliver = async (msg: unknown, retain = false) => {
      const r = await w.client.deliver(STATE, msg, retain);
      await w.bridge.idle();
      return r;
    };
    const b = w.state(birth({ appliedVersion: 1 }));
    expect(await deliver(b)).toBe('acked');
    expect(w.audit.types()).toEqual(['controller.online', 'grant.delivered']);
    expect(w.audit.inputs[1]).toMatchObject({ grantId: 'grt-1', incidentId: 'inc-1', controllerId: 'ctl-1', data: { version: 1 }, dedupe: 'delivered:grt-1:ctl-1:1' });
    expect((await w.store.get('grants', 'grt-1'))?.status).toBe('active');
    // The retained birth again (a resubscribe): no change, no entry.
    expect(await deliver(b, true)).toBe('acked');
    expect(w.audit.types()).toHaveLength(2);
    await deliver(w.state(birth({ appliedVersion: 1, clockSynced: false })));
    await deliver(w.state(birth({ appliedVersion: 1, clockSynced: false })));
    await deliver(w.state({ online: false }));
    expect(w.audit.types().slice(2)).toEqual(['controller.clock-unsafe', 'controller.offline']);
    w.stop();
  });

  it('acks a birth at once; a handling that fails is tried again in its lane, and the delivery is never marked before its entry', async () => {
    const w = await world({ laneBackoffMs: 2 });
    const b = w.state(birth({ appliedVersion: 1 }));
    w.audit.failures = 1; // controller.online, the first time
    w.audit.failing.add('grant.delivered');
    expect(await w.client.deliver(controllerTopic('ctl-1', 'state'), b)).toBe('acked');
    const tries = () => w.audit.calls.filter((c) => c.type === 'grant.delivered').length;
    const deadline = Date.now() + 2_000;
    while (tries() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(tries()).toBeGreaterThanOrEqual(2); // tried again after the failures, in the lane
    expect((await w.store.get('controllerLive', 'ctl-1'))?.online).toBe(true);
    expect((await w.store.get('grants', 'grt-1'))?.deliveries[0]?.state).toBe('pending');
    w.audit.failing.clear();
    await w.bridge.idle();
    expect((await w.store.get('grants', 'grt-1'))?.deliveries[0]?.state).toBe('delivered');
    expect(w.audit.types()).toEqual(['controller.online', 'grant.delivered']);
    w.stop();
  });
});
