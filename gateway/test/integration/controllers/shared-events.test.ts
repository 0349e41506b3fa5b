// Controller events through a shared subscription (DESIGN §11; the bridge's `events: 'shared'`):
// two gateway instances on one store, each with a persistent session on a private Mosquitto
// (aedes 1.x has no `$share`), started and ended here by its PID — the machine's shared
// Mosquitto is never touched. One controller sends 200 events: each is handled and audited
// exactly once, both instances take a share, none is lost — across a reconnect too, and with one
// session that a previous 'all' run left subscribed to the plain event filter.
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  buildMessage,
  controllerTopic,
  gatewayShareGroup,
  generateRawKeyPair,
  privateKeyFromSeed,
  scaledGatewaySubscriptions,
  silentLogger,
  type SigningKey,
} from '@smart-passage/protocol';
import { connectMqtt } from '@smart-passage/protocol/controller';
import { AuditLog } from '../../../src/features/audit/audit-log.js';
import { ControllerBridge } from '../../../src/features/controllers/controller-bridge.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import { endServices, startMosquitto } from '../../support/services.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => endServices());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await sleep(20);
  }
};

async function connected(url: string, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = connectMqtt({ url, clientId, clean, reconnectPeriod: 200 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

describe("events: 'shared' (DESIGN §11)", () => {
  it('names the group after the deployment, and subscribes to events through it', () => {
    expect(gatewayShareGroup()).toBe('sp-gateway');
    expect(gatewayShareGroup('sp:')).toBe('sp-gateway-sp');
    expect(gatewayShareGroup('city/north:+#')).toBe('sp-gateway-city-north');
    expect(scaledGatewaySubscriptions(gatewayShareGroup('sp:'))).toEqual(['sp/v1/c/+/reply', '$share/sp-gateway-sp/sp/v1/c/+/evt', 'sp/v1/c/+/state']);
  });

  it('hands each of 200 events to one instance: audited once each, both instances take some, none lost', async () => {
    const mosquitto = await startMosquitto({ persistence: false });
    const store = new EmbeddedStore({ path: ':memory:' });
    await store.start();
    cleanups.push(() => store.stop());

    const gw = generateRawKeyPair();
    const gatewayKey: SigningKey = { kid: 'gw-test', key: privateKeyFromSeed(gw.privateKey) };
    const auditKey: SigningKey = { kid: 'audit-test', key: privateKeyFromSeed(generateRawKeyPair().privateKey) };
    const suffix = randomBytes(3).toString('hex');
    const ctrl = `ctl-${suffix}`;
    const ctlKeys = generateRawKeyPair();
    const ctlKey: SigningKey = { kid: `${ctrl}-k1`, key: privateKeyFromSeed(ctlKeys.privateKey) };
    await store.insert('controllers', { id: ctrl, buildingId: 'bld-1', vendor: 'v', publicKey: ctlKeys.publicKey, controllerKid: ctlKey.kid, mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: Date.now() });
    await store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'Street', kind: 'entrance', routeOrder: 1, controllerId: ctrl, ref: 'street', pulseSeconds: 5, emergency: true });
    const deployment = `test-${suffix}:`;

    // Instance A's persistent session first ran with the default ('all'): it holds the plain event
    // filter, which 'shared' must drop, or A would get every event besides its share.
    const old = await connected(mosquitto.url, `gw-a-${suffix}`, false);
    await old.subscribeAsync('sp/v1/c/+/evt', { qos: 1 });
    await old.endAsync();

    /** One gateway instance; `seen` is the seqs of the events its client got from the broker. */
    const instance = async (name: string) => {
      const client = await connected(mosquitto.url, `gw-${name}-${suffix}`, false);
      const counts = { seen: new Set<number>(), handled: 0 };
      client.on('message', (topic, payload) => {
        if (topic.endsWith('/evt')) counts.seen.add((JSON.parse(payload.toString('utf8')) as { seq: number }).seq);
      });
      const audit = new AuditLog({ store, key: auditKey, logger: silentLogger });
      audit.start();
      const bridge = new ControllerBridge({ client, store, gatewayKey, boot: `gwboot-${name}`, logger: silentLogger, audit, events: 'shared', deployment, reconcileMs: 0 });
      bridge.on('event', () => (counts.handled += 1));
      await bridge.start();
      cleanups.push(async () => {
        bridge.stop();
        await audit.stop();
        await client.endAsync(true);
      });
      return { client, counts };
    };
    const a = await instance('a');
    const b = await instance('b');

    const controller = await connected(mosquitto.url, ctrl, true);
    cleanups.push(() => controller.endAsync(true));
    const boot = `boot-${suffix}`;
    const send = async (from: number, to: number) => {
      for (let seq = from; seq <= to; seq++) {
        const body = { kind: 'access' as const, door: 'street', credential: { kind: 'tag' as const, uid: `0A${String(seq).padStart(6, '0')}` }, result: 'denied' as const, reason: 'unknown' as const, at: Date.now() };
        await controller.publishAsync(controllerTopic(ctrl, 'evt'), JSON.stringify(buildMessage({ type: 'evt', ctrl, seq, boot, body, key: ctlKey, iat: Date.now() })), { qos: 1 });
      }
    };
    const audited = async () => {
      const seqs: number[] = [];
      let after: { at: number; id: string } | undefined;
      for (;;) {
        const page = await store.auditQuery({ chains: ['building:bld-1'], types: ['access.denied'], limit: 1000, ...(after ? { after } : {}) });
        for (const it of page.items) seqs.push((it.data as { seq: number }).seq);
        if (!page.next) return seqs;
        after = page.next;
      }
    };

    await send(1, 100);
    // A's connection drops mid-run (its share of what comes meanwhile waits in its session); it
    // resumes the session and subscribes again — with the same filters, or the plain event
    // filter would bring it a copy of everything after.
    const resumed = new Promise<void>((resolve) => a.client.once('connect', () => resolve()));
    a.client.stream.destroy();
    await send(101, 150);
    await resumed;
    await sleep(200); // its re-subscribe answered
    await send(151, 200);
    await until(async () => (await audited()).length >= 200, 15_000, '200 events audited');
    await sleep(500); // anything extra (a copy, a redelivery) would show by now

    const seqs = await audited();
    expect(seqs).toHaveLength(200);
    expect(new Set(seqs).size).toBe(200);
    expect(Math.min(...seqs)).toBe(1);
    expect(Math.max(...seqs)).toBe(200);
    // Each event reached one instance: no plain copy to A besides B's share (A's stale filter is
    // gone). A redelivery to the same session after the reconnect is no copy, and is not handled twice.
    expect([...a.counts.seen].filter((seq) => b.counts.seen.has(seq))).toEqual([]);
    expect(a.counts.seen.size + b.counts.seen.size).toBe(200);
    expect(a.counts.handled + b.counts.handled).toBe(200);
    expect(a.counts.handled).toBeGreaterThan(0);
    expect(b.counts.handled).toBeGreaterThan(0);
  });
});
