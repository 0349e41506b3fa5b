// Per-controller sync claimed by a store lease (DESIGN §11; PROTOCOL §5.8, §6.3): two gateway
// instances — two controller bridges, each with its own MQTT client — on one embedded store and
// one aedes broker on an ephemeral port. A raw subscriber counts what goes out on
// sp/v1/c/<id>/sync and tells the instances apart by the envelope's `boot` (each bridge's own).
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildMessage,
  controllerTopic,
  generateRawKeyPair,
  privateKeyFromSeed,
  silentLogger,
  type BodyOf,
  type ProvisioningBundle,
  type SigningKey,
} from '@smart-passage/protocol';
import { connectMqtt, MemoryStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { EmbeddedBroker } from '../../../src/adapters/embedded-broker.js';
import { ControllerBridge } from '../../../src/features/controllers/controller-bridge.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import type { StorePort } from '../../../src/store/port.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await sleep(20);
  }
};

/** Short timings, so retries, lease expiry and the reconcile all happen within a second or two. */
const TIMING = { retryMs: 200, maxRetryMs: 400, leaseGraceMs: 300, reconcileMs: 250 };

interface SyncSeen {
  boot: string;
  version: number;
  at: number;
}

async function connected(url: string, clientId: string): Promise<MqttClient> {
  const client = connectMqtt({ url, clientId, clean: true, reconnectPeriod: 200 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  cleanups.push(() => client.endAsync(true));
  return client;
}

/** A store whose releaseLease does nothing: an instance that dies keeps its leases until they run out. */
function neverReleases(store: StorePort): StorePort {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'releaseLease') return () => Promise.resolve();
      const v: unknown = Reflect.get(target, key);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function world() {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
  await broker.start();
  cleanups.push(() => broker.stop());
  const store = new EmbeddedStore({ path: ':memory:' });
  await store.start();
  cleanups.push(() => store.stop());

  const gw = generateRawKeyPair();
  const gatewayKey: SigningKey = { kid: 'gw-test', key: privateKeyFromSeed(gw.privateKey) };
  const ctrl = `ctl-${randomBytes(3).toString('hex')}`;
  const ctlKeys = generateRawKeyPair();
  const ctlKey: SigningKey = { kid: `${ctrl}-k1`, key: privateKeyFromSeed(ctlKeys.privateKey) };
  const now = Date.now();
  await store.insert('controllers', { id: ctrl, buildingId: 'bld-1', vendor: 'v', publicKey: ctlKeys.publicKey, controllerKid: ctlKey.kid, mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: now });
  await store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'Street', kind: 'entrance', routeOrder: 1, controllerId: ctrl, ref: 'street', pulseSeconds: 5, emergency: true });
  await store.insert('tags', { id: 'tag-1', uid: '04C0FFEE01', label: 'RTJ #1', unitId: 'unit-1', status: 'active' });
  await store.insert('grants', {
    id: 'grt-1', incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], notBefore: now, notAfter: now + 600_000,
    status: 'pending', createdBy: 'usr-1', createdAt: now, deliveries: [{ controllerId: ctrl, version: 1, state: 'pending' }],
  });
  expect(await store.bumpDesiredVersion(ctrl)).toBe(1);

  // Everything that goes out on the controller's sync topic, in order.
  const syncs: SyncSeen[] = [];
  const watcher = await connected(broker.url, `watch-${ctrl}`);
  watcher.on('message', (_topic, payload) => {
    const m = JSON.parse(payload.toString('utf8')) as { boot: string; body: { version: number } };
    syncs.push({ boot: m.boot, version: m.body.version, at: Date.now() });
  });
  await watcher.subscribeAsync(controllerTopic(ctrl, 'sync'), { qos: 1 });

  /** One gateway instance: its own client and boot id; `crashes` makes its stop() keep its leases. */
  const instance = async (name: string, o: { crashes?: boolean; leaseOwner?: string; leaseGraceMs?: number; reconcileMs?: number } = {}) => {
    const { crashes, ...timing } = o;
    const client = await connected(broker.url, `gw-${name}-${ctrl}`);
    const bridge = new ControllerBridge({ client, store: crashes ? neverReleases(store) : store, gatewayKey, boot: `gwboot-${name}`, logger: silentLogger, ...TIMING, ...timing });
    await bridge.start();
    let stopped = false;
    const stop = async () => {
      if (stopped) return;
      stopped = true;
      bridge.stop();
      await client.endAsync(true);
    };
    cleanups.push(stop);
    return { bridge, boot: `gwboot-${name}`, stop };
  };

  /**
   * A controller that says it is online and otherwise answers only when told: its birth, and a
   * reply that reports a version applied.
   */
  const silent = async () => {
    const client = await connected(broker.url, ctrl);
    let seq = 0;
    const boot = `boot-${randomBytes(4).toString('hex')}`;
    const birth = async (appliedVersion = 0) => {
      const body: BodyOf<'state'> = { online: true, fw: 'fw/1', vendor: 'v', appliedVersion, lastSeq: 0, clock: Date.now(), clockSynced: true, doors: [{ ref: 'street', locked: true, open: false }] };
      await client.publishAsync(controllerTopic(ctrl, 'state'), JSON.stringify(buildMessage({ type: 'state', ctrl, seq: 0, boot, body, key: ctlKey, iat: Date.now() })), { qos: 1 });
    };
    const applied = async (appliedVersion: number) => {
      const body: BodyOf<'reply'> = { ref: '01JD0000000000000000000000', status: 'applied', appliedVersion };
      await client.publishAsync(controllerTopic(ctrl, 'reply'), JSON.stringify(buildMessage({ type: 'reply', ctrl, seq: ++seq, boot, body, key: ctlKey, iat: Date.now() })), { qos: 1 });
    };
    return { birth, applied };
  };

  /** A reference controller that applies what it gets and replies (PROTOCOL §5.2). */
  const reference = async () => {
    const bundle: ProvisioningBundle = {
      controllerId: ctrl,
      mqtt: { url: broker.url, username: ctrl, password: 'unused-here' },
      gatewayKeys: [{ kid: gatewayKey.kid, publicKey: gw.publicKey }],
      controllerKid: ctlKey.kid,
      controllerKey: { kid: ctlKey.kid, privateKey: ctlKeys.privateKey },
      doors: [{ ref: 'street' }],
    };
    const c = new ReferenceController({ bundle, store: new MemoryStateStore() });
    await c.start();
    cleanups.push(() => c.stop());
    return c;
  };

  const online = () => until(async () => (await store.get('controllerLive', ctrl))?.online === true, 5000, 'controller online');
  const bootsOf = (list: readonly SyncSeen[]) => [...new Set(list.map((s) => s.boot))];
  return { store, ctrl, syncs, instance, silent, reference, online, bootsOf };
}

describe('per-controller sync claimed by a lease (DESIGN §11)', () => {
  it('sends one sync for a birth that both instances see, and the grant is delivered', async () => {
    const w = await world();
    await w.instance('a');
    await w.instance('b');
    const c = await w.reference();
    await until(async () => (await w.store.get('grants', 'grt-1'))?.status === 'active', 5000, 'grant delivered');
    expect(c.grants.map((g) => g.grantId)).toEqual(['grt-1']);
    // Past several retry periods and a reconcile or two: nothing more goes out.
    await sleep(1_200);
    expect(w.syncs).toHaveLength(1);
    expect(w.syncs[0]?.version).toBe(1);
    // The exchange is over, so the lease was let go.
    expect(await w.store.acquireLease(`sync:${w.ctrl}`, 'someone-else', 1_000)).toBe(true);
  });

  it('retries from the lease holder only, and stops (lease released) when the controller answers applied', async () => {
    const w = await world();
    await w.instance('a');
    await w.instance('b');
    const c = await w.silent();
    await c.birth(0);
    await until(() => w.syncs.length >= 4, 5000, 'four syncs');
    expect(w.bootsOf(w.syncs)).toHaveLength(1);
    // Backoff: each gap at least about the retry delay (two senders would interleave much closer).
    const gaps = w.syncs.slice(1).map((s, i) => s.at - (w.syncs[i]?.at ?? 0));
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(150);
    await c.applied(1);
    await until(async () => (await w.store.get('grants', 'grt-1'))?.status === 'active', 5000, 'grant delivered');
    const sent = w.syncs.length;
    await sleep(1_200);
    expect(w.syncs).toHaveLength(sent);
    expect(await w.store.acquireLease(`sync:${w.ctrl}`, 'someone-else', 1_000)).toBe(true);
  });

  it('when the holder dies mid-retry, the other instance’s reconcile takes the controller over once its lease runs out', async () => {
    const w = await world();
    const a = await w.instance('a', { crashes: true });
    const b = await w.instance('b', { crashes: true });
    const c = await w.silent();
    await c.birth(0);
    await until(() => w.syncs.length >= 2, 5000, 'two syncs');
    const [holderBoot] = w.bootsOf(w.syncs);
    const [holder, other] = holderBoot === a.boot ? [a, b] : [b, a];
    await holder.stop();
    const before = w.syncs.length;
    await until(() => w.syncs.slice(before).some((s) => s.boot === other.boot), 5000, 'a sync from the other instance');
    expect(w.bootsOf(w.syncs.slice(before))).toEqual([other.boot]);
    // And it owns the retries now: they go on until applied.
    const taken = w.syncs.length;
    await until(() => w.syncs.length >= taken + 2, 5000, 'retries from the new holder');
    expect(w.bootsOf(w.syncs.slice(before))).toEqual([other.boot]);
    await c.applied(1);
    await until(async () => (await w.store.get('grants', 'grt-1'))?.status === 'active', 5000, 'grant delivered');
  });

  it('finds a controller it never saw behind through the open grants’ pending deliveries', async () => {
    const w = await world();
    const a = await w.instance('a', { crashes: true });
    const c = await w.silent();
    await c.birth(0);
    await until(() => w.syncs.length >= 1, 5000, 'a sync');
    await a.stop();
    // B starts after the birth (not retained here): only the store tells it the controller is behind.
    const b = await w.instance('b');
    const before = w.syncs.length;
    await until(() => w.syncs.slice(before).some((s) => s.boot === b.boot), 5000, 'a sync from the late instance');
    expect(w.bootsOf(w.syncs.slice(before))).toEqual([b.boot]);
  });

  it('sends a change made on the instance without the lease at once; the holder retries it until applied', async () => {
    const w = await world();
    const a = await w.instance('a');
    const b = await w.instance('b');
    const c = await w.silent();
    await c.birth(0);
    await until(() => w.syncs.length >= 2, 5000, 'two syncs');
    const [holderBoot] = w.bootsOf(w.syncs);
    const [holder, other] = holderBoot === a.boot ? [a, b] : [b, a];

    // A grant changed through the other instance: a new version, sent from there at once.
    const before = w.syncs.length;
    expect(await w.store.bumpDesiredVersion(w.ctrl)).toBe(2);
    const t0 = Date.now();
    await other.bridge.sync(w.ctrl);
    await until(() => w.syncs.slice(before).some((s) => s.boot === other.boot && s.version === 2), 1000, 'the change on the wire');
    expect(Date.now() - t0).toBeLessThan(150);

    // The controller answers the older set only: the holder keeps on, now with version 2.
    await c.applied(1);
    const after1 = w.syncs.length;
    await until(() => w.syncs.slice(after1).some((s) => s.boot === holder.boot && s.version === 2), 5000, 'the holder retrying version 2');
    await until(() => w.syncs.length >= after1 + 2, 5000, 'more retries');
    expect(w.bootsOf(w.syncs.slice(after1))).toEqual([holder.boot]);
    expect(w.syncs.slice(after1).every((s) => s.version === 2)).toBe(true);

    await c.applied(2);
    await sleep(100);
    const sent = w.syncs.length;
    await sleep(1_200);
    expect(w.syncs).toHaveLength(sent);
    expect(await w.store.acquireLease(`sync:${w.ctrl}`, 'someone-else', 1_000)).toBe(true);
  });

  it('a restarted instance under the same leaseOwner takes its leases straight back; under a new one it waits for them to run out', async () => {
    const w = await world();
    const long = { crashes: true, leaseGraceMs: 20_000, reconcileMs: 0 };
    const first = await w.instance('first', { ...long, leaseOwner: 'gw-main' });
    const c = await w.silent();
    await c.birth(0);
    await until(() => w.syncs.length >= 1, 5000, 'a sync');
    await first.stop();
    // A new process (new boot) under another owner: the dead run's lease holds it back.
    const stranger = await w.instance('stranger', long);
    await c.birth(0);
    await sleep(500);
    expect(w.syncs.filter((s) => s.boot === stranger.boot)).toEqual([]);
    await stranger.stop();
    // The same owner again: the birth is answered at once.
    const again = await w.instance('again', { ...long, leaseOwner: 'gw-main' });
    await c.birth(0);
    await until(() => w.syncs.some((s) => s.boot === again.boot), 1000, 'a sync from the restarted instance');
  });

  it('takes the lease with a change when nobody holds it, and retries that change itself', async () => {
    const w = await world();
    const c = await w.silent();
    const a = await w.instance('a');
    await w.store.update('grants', 'grt-1', (g) => ({ ...g, deliveries: [] }));
    // The controller is online and in step at version 1: nothing to send, nobody holds the lease.
    await c.birth(1);
    await w.online();
    const b = await w.instance('b');
    await sleep(400);
    expect(w.syncs).toHaveLength(0);
    expect(await w.store.bumpDesiredVersion(w.ctrl)).toBe(2);
    await b.bridge.sync(w.ctrl);
    await until(() => w.syncs.length >= 3, 5000, 'the change and its retries');
    expect(w.bootsOf(w.syncs)).toEqual([b.boot]);
    expect(w.syncs.every((s) => s.version === 2)).toBe(true);
    expect(a.boot).not.toBe(b.boot);
  });
});
