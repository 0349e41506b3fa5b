// An esp-rfid device behind the bridge, against the real gateway below HTTP: controller bridge,
// grant service, audit log, embedded broker and store. The gateway sees a native controller; the
// device (a fake that speaks esp-rfid's documented JSON) sees esp-rfid commands.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { generateRawKeyPair, privateKeyFromSeed, silentLogger, type ProvisioningBundle } from '@smart-passage/protocol';
import { EspRfidBridge, FakeEspRfid } from '@smart-passage/protocol/bridges/esp-rfid';
import { connectMqtt, MemoryStateStore } from '@smart-passage/protocol/controller';
import { EmbeddedBroker } from '../../../src/adapters/embedded-broker.js';
import { AuditLog } from '../../../src/features/audit/audit-log.js';
import { ControllerBridge } from '../../../src/features/controllers/controller-bridge.js';
import { GrantService } from '../../../src/features/grants/grant-service.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';

const TAG = '04C0FFEE01';
const IP = '10.20.0.7';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 10_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

async function world() {
  const broker = new EmbeddedBroker({ host: '127.0.0.1', port: 0, logger: silentLogger });
  await broker.start();
  cleanups.push(() => broker.stop());
  const store = new EmbeddedStore({ path: ':memory:' });
  await store.start();
  cleanups.push(() => store.stop());
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

  const gw = generateRawKeyPair();
  const ctrlId = `esp-${suffix}`;
  const keys = generateRawKeyPair();
  await store.insert('controllers', { id: ctrlId, buildingId: 'bld-1', vendor: 'esp-rfid', publicKey: keys.publicKey, controllerKid: `${ctrlId}-k1`, mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: now });
  await store.insert('doors', { id: 'door-1', buildingId: 'bld-1', name: 'Street', kind: 'entrance', routeOrder: 1, controllerId: ctrlId, ref: 'street', pulseSeconds: 5, emergency: true });
  const bundle: ProvisioningBundle = {
    controllerId: ctrlId,
    mqtt: { url: broker.url, username: ctrlId, password: 'unused-here' },
    gatewayKeys: [{ kid: 'gw-test', publicKey: gw.publicKey }],
    controllerKid: `${ctrlId}-k1`,
    controllerKey: { kid: `${ctrlId}-k1`, privateKey: keys.privateKey },
    doors: [{ ref: 'street' }],
  };

  const client = connectMqtt({ url: broker.url, clientId: `gw-${suffix}`, clean: true, reconnectPeriod: 200 });
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  cleanups.push(() => client.endAsync());
  const audit = new AuditLog({ store, key: { kid: 'audit-test', key: privateKeyFromSeed(generateRawKeyPair().privateKey) }, logger: silentLogger });
  audit.start();
  cleanups.push(() => audit.stop());
  const gatewayKey = { kid: 'gw-test', key: privateKeyFromSeed(gw.privateKey) };
  const controllers = new ControllerBridge({ client, store, gatewayKey, boot: `gwboot-${suffix}`, logger: silentLogger, retryMs: 300, audit });
  await controllers.start();
  cleanups.push(() => Promise.resolve(controllers.stop()));
  const grants = new GrantService({ store, syncer: controllers, logger: silentLogger, audit });

  const topic = `/rfid/${suffix}`;
  const device = new FakeEspRfid({ url: broker.url, topic, ip: IP });
  await device.start();
  cleanups.push(() => device.stop());
  const bridge = new EspRfidBridge({
    deviceBroker: { url: broker.url, clientId: `esp-bridge-${suffix}` },
    devices: [{ bundle, device: { topic, doorip: IP, door: 'street', heartbeatSeconds: 1 }, store: new MemoryStateStore() }],
    tuning: { commandTimeoutMs: 2_000, listSettleMs: 300, listFirstMs: 800, retryMs: 100, heartbeatTimeoutMs: 800 },
  });
  await bridge.start();
  cleanups.push(() => bridge.stop());
  device.startHeartbeats(200);
  const live = async () => (await store.get('controllerLive', ctrlId))?.online === true;
  await until(live, 'the bridged controller online at the gateway');
  return { store, grants, device, ctrlId, live };
}

describe('esp-rfid bridge against the gateway', () => {
  it('delivers a grant as adduser acctype 1, audits a presented tag, proves the revocation, and reports the device offline', async () => {
    const w = await world();
    const { grant } = await w.grants.create({ incidentId: 'inc-1', buildingId: 'bld-1', doorIds: ['door-1'], unitIds: ['unit-1'], durationMs: 60_000 }, { userId: 'user-1' });
    // Delivered only once the bridge has proven the device's list (its `applied` waits for getuserlist).
    await until(async () => (await w.store.get('grants', grant.id))?.status === 'active', 'grant delivered');
    const user = w.device.users.get(TAG.toLowerCase());
    expect(user).toMatchObject({ acctype: 1, validsince: Math.floor(grant.notBefore / 1000), validuntil: Math.floor(grant.notAfter / 1000) });

    // A tag at the device: a signed native access event, verified and audited by the gateway.
    expect(w.device.present(TAG.toLowerCase())).toBe('Always');
    const granted = async () => (await w.store.auditQuery({ chains: ['building:bld-1'], types: ['access.granted'], limit: 10 })).items;
    await until(async () => (await granted()).length === 1, 'access audited');
    expect((await granted())[0]).toMatchObject({ grantId: grant.id, tagId: 'tag-1', doorId: 'door-1', actor: { kind: 'controller' } });

    // Revoke: deletuid, and the device's own list shows it gone.
    const mark = w.device.commands.length;
    await w.grants.revoke(grant.id);
    await until(() => !w.device.users.has(TAG.toLowerCase()), 'tag deleted on the device');
    await until(() => w.device.commands.slice(mark).map((c) => c.cmd).join(',').includes('deletuid,getuserlist'), 'removal proven');
    expect(w.device.present(TAG.toLowerCase())).toBe('Denied');
    await until(async () => (await w.store.auditQuery({ chains: ['building:bld-1'], types: ['access.denied'], limit: 10 })).items.length === 1, 'denial audited');

    // Heartbeats stop: the gateway sees the controller go offline.
    w.device.stopHeartbeats();
    await until(async () => !(await w.live()), 'controller offline at the gateway');
    expect(w.device.violations).toEqual([]);
    expect(w.device.commands.filter((c) => c.cmd === 'adduser').every((c) => c.acctype === '1')).toBe(true);
  });
});
