// The grant lifecycle end to end below the HTTP layer: the gateway's bridge, grant service and
// expiry scheduler, a real broker, a real store, and three reference controllers.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { deletePrefix, uniquePrefix } from '../store/helpers.js';
import { controllerTopic, generateRawKeyPair, privateKeyFromSeed, silentLogger, streamLogger, type Message, type ProvisioningBundle } from '@smart-passage/protocol';
import { connectMqtt, MemoryStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { EmbeddedBroker } from '../../src/adapters/embedded-broker.js';
import type { Door } from '../../src/domain/types.js';
import { AuditLog, type AuditSink } from '../../src/features/audit/audit-log.js';
import { ControllerBridge } from '../../src/features/controllers/controller-bridge.js';
import { ExpiryScheduler } from '../../src/features/grants/expiry-scheduler.js';
import { GrantService } from '../../src/features/grants/grant-service.js';
import { EmbeddedStore } from '../../src/store/embedded-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { StorePort } from '../../src/store/port.js';

const TAG = '04C0FFEE01';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MOSQUITTO_URL = process.env.SP_TEST_MOSQUITTO_URL ?? 'mqtt://127.0.0.1:1883';
const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Embedded: aedes + SQLite. Production services: the machine's Mosquitto + Redis, under a prefix of our own. */
async function services(kind: 'embedded' | 'services'): Promise<{ url: string; store: StorePort }> {
  if (kind === 'embedded') {
    const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
    await broker.start();
    cleanups.push(() => broker.stop());
    const store = new EmbeddedStore({ path: ':memory:' });
    await store.start();
    cleanups.push(() => store.stop());
    return { url: broker.url, store };
  }
  const prefix = uniquePrefix();
  const store = new RedisStore({ url: REDIS_URL, prefix, logger: silentLogger });
  await store.start();
  cleanups.push(async () => {
    await store.stop();
    // Leave nothing behind on the shared Redis: only our own prefix.
    await deletePrefix(prefix);
  });
  return { url: MOSQUITTO_URL, store };
}

async function world(kind: 'embedded' | 'services', o: { persistent?: boolean; wrapAudit?: (a: AuditSink) => AuditSink } = {}) {
  const { url, store } = await services(kind);
  const broker = { url };

  const gw = generateRawKeyPair();
  const gatewayKey = { kid: 'gw-test', key: privateKeyFromSeed(gw.privateKey) };
  const now = Date.now();
  const suffix = randomBytes(3).toString('hex');
  await store.insert('organisations', { id: 'org-1', name: 'Owner', kind: 'owner', createdAt: now });
  await store.insert('buildings', {
    id: 'bld-1', orgId: 'org-1', name: 'Götgatan 1', address: 'Götgatan 1', location: { lat: 59.31, lng: 18.07 },
    policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: now, updatedAt: now,
  });
  await store.insert('agencies', { id: 'ag-fire', name: 'Fire', kind: 'fire' });
  await store.insert('units', { id: 'unit-1', agencyId: 'ag-fire', callSign: 'RTJ 2310' });
  await store.insert('tags', { id: 'tag-1', uid: TAG, label: 'RTJ 2310 #1', unitId: 'unit-1', status: 'active' });
  await store.insert('incidents', { id: 'inc-1', kind: 'fire', location: { lat: 59.31, lng: 18.07 }, status: 'open', buildingIds: [], openedBy: 'user-1', openedAt: now });

  // A 5-door route over 3 controllers.
  const route: [string, string][] = [['ctl-a', 'street'], ['ctl-a', 'stair'], ['ctl-b', 'floor-2'], ['ctl-b', 'floor-3'], ['ctl-c', 'lift']];
  const controllers: ReferenceController[] = [];
  for (const id of ['ctl-a', 'ctl-b', 'ctl-c']) {
    const ctrlId = `${id}-${suffix}`;
    const keys = generateRawKeyPair();
    await store.insert('controllers', { id: ctrlId, buildingId: 'bld-1', vendor: 'ref', publicKey: keys.publicKey, controllerKid: `${ctrlId}-k1`, mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: now });
    const bundle: ProvisioningBundle = {
      controllerId: ctrlId,
      mqtt: { url: broker.url, username: ctrlId, password: 'unused-here' },
      gatewayKeys: [{ kid: 'gw-test', publicKey: gw.publicKey }],
      controllerKid: `${ctrlId}-k1`,
      controllerKey: { kid: `${ctrlId}-k1`, privateKey: keys.privateKey },
      doors: route.filter(([c]) => c === id).map(([, ref]) => ({ ref })),
    };
    controllers.push(new ReferenceController({ bundle, store: new MemoryStateStore() }));
  }
  const doors: Door[] = route.map(([c, ref], i) => ({
    id: `door-${i + 1}`, buildingId: 'bld-1', name: ref, kind: 'entrance', routeOrder: i + 1, controllerId: `${c}-${suffix}`, ref, pulseSeconds: 5, emergency: true,
  }));
  for (const d of doors) await store.insert('doors', d);

  // clean: true unless a test needs the persistent session (redelivery); then the session is
  // wiped at the end, or it would stay on the shared Mosquitto and queue messages forever.
  const clientId = `gw-${suffix}`;
  if (o.persistent) {
    cleanups.push(async () => {
      const wipe = connectMqtt({ url: broker.url, clientId, clean: true, reconnectPeriod: 0 });
      await new Promise<void>((resolve) => wipe.once('connect', () => resolve()));
      await wipe.endAsync();
    });
  }
  const client = connectMqtt({ url: broker.url, clientId, clean: !o.persistent, reconnectPeriod: 200 });
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  cleanups.push(() => client.endAsync());
  const auditKey = generateRawKeyPair();
  const auditLog = new AuditLog({ store, key: { kid: 'audit-test', key: privateKeyFromSeed(auditKey.privateKey) }, logger: silentLogger });
  auditLog.start();
  cleanups.push(() => auditLog.stop());
  const audit = o.wrapAudit ? o.wrapAudit(auditLog) : auditLog;
  const bridge = new ControllerBridge({ client, store, gatewayKey, boot: `gwboot-${suffix}`, logger: process.env.SP_TEST_DEBUG ? streamLogger('bridge', 'debug') : silentLogger, retryMs: 300, audit });
  const events: Message<'evt'>[] = [];
  bridge.on('event', (_ctrl, msg) => events.push(msg));
  await bridge.start();
  cleanups.push(() => Promise.resolve(bridge.stop()));
  const grants = new GrantService({ store, syncer: bridge, logger: silentLogger, audit });
  const scheduler = new ExpiryScheduler({ target: grants, owner: 'test', logger: silentLogger, tickMs: 100 });
  await scheduler.start();
  cleanups.push(() => scheduler.stop());

  for (const c of controllers) await c.start();
  cleanups.push(async () => {
    for (const c of controllers) await c.stop();
    if (client.connected) {
      for (const c of controllers) client.publish(`sp/v1/c/${c.id}/state`, '', { qos: 1, retain: true });
      return;
    }
    // A test ended the gateway's client ("the gateway is gone"): clear the retained states with our own.
    const own = connectMqtt({ url: broker.url, clientId: `clear-${suffix}`, clean: true, reconnectPeriod: 0 });
    await new Promise<void>((resolve) => own.once('connect', () => resolve()));
    for (const c of controllers) await own.publishAsync(`sp/v1/c/${c.id}/state`, '', { qos: 1, retain: true });
    await own.endAsync();
  });
  return { url: broker.url, store, client, bridge, grants, scheduler, controllers, doors, events };
}

const until = async (cond: () => boolean | Promise<boolean>, ms = 5000, what = "condition") => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.each([['embedded (aedes + SQLite)', 'embedded'], ['production services (Mosquitto + Redis)', 'services']] as const)('grant lifecycle on %s', (_name, kind) => {
  it('delivers a 5-door grant to 3 controllers, reports a tag, and expires it on the controllers and in the store', async () => {
    const w = await world(kind);
    await until(async () => (await w.store.list('controllerLive')).filter((l) => l.online).length === 3);
    const { grant } = await w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: w.doors.map((d) => d.id), unitIds: ['unit-1'], durationMs: 1500 }, { userId: 'user-1' });
    expect(grant.deliveries).toHaveLength(3);
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'active');
    const stored = await w.store.get('grants', grant.id);
    expect(stored?.deliveries.every((d) => d.state === 'delivered')).toBe(true);
    const [a, b, c] = w.controllers;
    expect(a?.presentTag('street', TAG).result).toBe('granted');
    expect(b?.presentTag('floor-3', TAG).result).toBe('granted');
    expect(c?.presentTag('lift', TAG).result).toBe('granted');
    await until(() => w.events.filter((e) => e.body.kind === 'access').length === 3);
    // Audited before acked (DESIGN §8), and door events keep the live door states current.
    const trail = (await w.store.auditQuery({ chains: ['building:bld-1'], limit: 1000 })).items;
    const granted = trail.filter((e) => e.type === 'access.granted');
    expect(granted.map((e) => [e.grantId, e.tagId, e.incidentId, e.actor.kind])).toEqual([0, 1, 2].map(() => [grant.id, 'tag-1', 'inc-1', 'controller']));
    expect(granted.map((e) => e.doorId).sort()).toEqual(['door-1', 'door-4', 'door-5']);
    expect(trail.filter((e) => e.type === 'grant.created').map((e) => e.grantId)).toEqual([grant.id]);
    expect(trail.filter((e) => e.type === 'grant.delivered').map((e) => e.controllerId).sort()).toEqual(w.controllers.map((c) => c.id).sort());
    expect(trail.filter((e) => e.type === 'controller.online')).toHaveLength(3);
    await until(async () => (await w.store.get('controllerLive', a!.id))?.doors.find((d) => d.ref === 'street')?.locked === false);
    // Expiry: the controllers drop it on their own, and the gateway marks it expired.
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'expired', 5000);
    const expired = (await w.store.auditQuery({ chains: ['building:bld-1'], types: ['grant.expired'], limit: 10 })).items;
    expect(expired).toMatchObject([{ grantId: grant.id, actor: { kind: 'system' }, reason: 'time' }]);
    expect(a?.presentTag('street', TAG)).toMatchObject({ result: 'denied' });
    expect((await w.store.get('grants', grant.id))?.pin).toBeUndefined();
  });

  it('expires the grant on the controllers with the gateway gone, with no message from anyone (DESIGN §10)', async () => {
    const w = await world(kind);
    await until(async () => (await w.store.list('controllerLive')).filter((l) => l.online).length === 3);
    const { grant } = await w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: w.doors.map((d) => d.id), unitIds: ['unit-1'], durationMs: 1500 }, { userId: 'user-1' });
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'active', 5000, 'delivered');
    // A witness on the broker for anything sent to these controllers, and what they apply or drop.
    const ours = new Set(w.controllers.map((c) => c.id));
    const heard: string[] = [];
    const applied: string[] = [];
    const expired = new Map<string, string[]>();
    const spy = connectMqtt({ url: w.url, clientId: `spy-${grant.id}`.slice(0, 64), clean: true, reconnectPeriod: 0 });
    await new Promise<void>((resolve) => spy.once('connect', () => resolve()));
    cleanups.push(() => spy.endAsync());
    spy.on('message', (topic) => {
      if (ours.has(topic.split('/')[3] ?? '')) heard.push(topic);
    });
    await spy.subscribeAsync([...ours].flatMap((id) => [controllerTopic(id, 'sync'), controllerTopic(id, 'cmd')]), { qos: 1 });
    for (const c of w.controllers) {
      c.on('applied', (v) => applied.push(`${c.id}@${v}`));
      c.on('expired', (ids) => expired.set(c.id, ids));
    }

    // The gateway is gone: no scheduler, no bridge, no connection to the broker.
    await w.scheduler.stop();
    w.bridge.stop();
    await w.client.endAsync();
    expect(Date.now(), 'the gateway stopped only after the grant had ended').toBeLessThan(grant.notAfter);
    await until(() => expired.size === 3, grant.notAfter - Date.now() + 1000, 'local expiry on every controller');
    for (const ids of expired.values()) expect(ids).toEqual([grant.id]);
    // Long enough that a running gateway (tick 100 ms) would have expired it and sent new sets.
    await new Promise((r) => setTimeout(r, 700));
    const [a, b, c] = w.controllers;
    for (const [ctrl, door] of [[a, 'street'], [b, 'floor-3'], [c, 'lift']] as const) {
      expect(ctrl?.presentTag(door, TAG)).toMatchObject({ result: 'denied', reason: 'expired', grantId: grant.id });
      expect(ctrl?.grants).toEqual([]);
    }
    expect(heard).toEqual([]);
    expect(applied).toEqual([]);
    // Nobody told the store: the gateway's next start expires it there (restart.test.ts).
    expect((await w.store.get('grants', grant.id))?.status).toBe('active');
  });

  it('revokes at once, and a controller that was offline gets the grant on its birth', async () => {
    const w = await world(kind);
    const [a, , c] = w.controllers;
    await c?.stop();
    const { grant, pin } = await w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1', 'door-5'], unitIds: ['unit-1'], pin: true, durationMs: 60_000 }, { userId: 'user-1' });
    expect(pin).toMatch(/^\d{6}$/);
    await until(async () => (await w.store.get('grants', grant.id))?.deliveries.find((d) => d.controllerId.startsWith('ctl-a'))?.state === 'delivered', 5000, 'delivered to ctl-a');
    expect((await w.store.get('grants', grant.id))?.status).toBe('pending');
    await c?.start();
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'active', 5000, 'active after the birth');
    expect(c?.enterPin('lift', pin!).result).toBe('granted');
    await w.grants.revoke(grant.id);
    await until(() => a?.grants.length === 0 && c?.grants.length === 0, 5000, 'revoked on the controllers');
    expect(a?.presentTag('street', TAG)).toMatchObject({ result: 'denied', reason: 'unknown' });
  });

  it('leaves an event unacknowledged while its entry cannot be stored, and audits it once when the broker hands it back (DESIGN §8)', async () => {
    let failed = 0;
    const w = await world(kind, {
      persistent: true,
      wrapAudit: (a) => ({ record: (i) => (i.type === 'access.granted' && failed++ === 0 ? Promise.reject(new Error('store unavailable')) : a.record(i)) }),
    });
    await until(async () => (await w.store.list('controllerLive')).filter((l) => l.online).length === 3);
    const { grant } = await w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], durationMs: 60_000 }, { userId: 'user-1' });
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'active', 5000, 'delivered');
    let reconnects = 0;
    w.client.on('reconnect', () => (reconnects += 1));
    expect(w.controllers[0]?.presentTag('street', TAG).result).toBe('granted');
    await until(() => w.events.some((e) => e.body.kind === 'access'), 8000, 'the event handled after redelivery');
    expect(failed).toBe(2); // refused once, stored on the redelivery
    expect(reconnects).toBeGreaterThan(0);
    const granted = (await w.store.auditQuery({ chains: ['building:bld-1'], types: ['access.granted'], limit: 100 })).items;
    expect(granted).toMatchObject([{ grantId: grant.id, doorId: 'door-1', tagId: 'tag-1' }]);
    expect(w.events.filter((e) => e.body.kind === 'access')).toHaveLength(1);
  });

  it('refuses what the policy does not allow, and changes nothing', async () => {
    const w = await world(kind);
    const before = await w.store.list('grants');
    await expect(w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], durationMs: 61 * 60_000 }, { userId: 'u' })).rejects.toMatchObject({ code: 'policy-violation' });
    await expect(w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-x'], unitIds: ['unit-1'], durationMs: 60_000 }, { userId: 'u' })).rejects.toMatchObject({ code: 'validation-failed' });
    await expect(w.grants.create({ incidentId: 'inc-9', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], durationMs: 60_000 }, { userId: 'u' })).rejects.toMatchObject({ code: 'not-found' });
    expect(await w.store.list('grants')).toEqual(before);
  });
});
