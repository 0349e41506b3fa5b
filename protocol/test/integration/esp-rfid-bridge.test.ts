// The esp-rfid bridge end to end on an embedded aedes: the protocol-level gateway harness on one
// side (signs syncs and commands, verifies what the bridge signs), a fake esp-rfid device that
// speaks the documented JSON on the other.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { EspRfidBridge, type BridgedDevice } from '../../src/bridges/esp-rfid/index.js';
import { MemoryStateStore } from '../../src/controller/index.js';
import { silentLogger, streamLogger, type GrantsSyncBody } from '../../src/index.js';
import { startAedes } from '../support/brokers.js';
import { FakeEspRfid } from '../support/fake-esp-rfid.js';
import { makeFixture } from '../support/fixtures.js';
import { GatewayHarness } from '../support/gateway-harness.js';
import { ProcessSet } from '../support/processes.js';

const BRIDGE_CLI = fileURLToPath(new URL('../../dist/cli/esp-rfid-bridge.js', import.meta.url));
const procs = new ProcessSet();

const TAG = '04A1B2C3D4';
const OTHER = '0499887766';
const IP = '192.168.1.50';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await procs.endAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const until = async (cond: () => boolean, what: string, ms = 10_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not met in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function grants(version: number, tags: string[], o: { notBefore?: number; notAfter?: number; pin?: boolean } = {}): GrantsSyncBody {
  const now = Date.now();
  return {
    version,
    grants: tags.map((uid, i) => ({
      grantId: `g-${version}-${i}`,
      incident: 'inc-1',
      doors: ['street'],
      credentials: [{ kind: 'tag' as const, uid }, ...(o.pin ? [{ kind: 'pin' as const, pin: '4711' }] : [])],
      notBefore: o.notBefore ?? now - 1000,
      notAfter: o.notAfter ?? now + 120_000,
    })),
  };
}

async function world() {
  const broker = await startAedes();
  cleanups.push(() => broker.close());
  const fx = makeFixture(broker.url, { doors: ['street'] });
  const gw = new GatewayHarness(fx, broker.url);
  await gw.start();
  cleanups.push(() => gw.stop());
  const topic = `/rfid/${randomBytes(3).toString('hex')}`;
  const device = new FakeEspRfid({ url: broker.url, topic, ip: IP });
  await device.start();
  cleanups.push(() => device.stop());
  // Every publish towards the device, as the broker saw it: nothing may be retained.
  const toDevice: { retain: boolean; payload: string }[] = [];
  broker.aedes.on('publish', (packet) => {
    if (packet.topic === `${topic}/cmd`) toDevice.push({ retain: packet.retain, payload: packet.payload.toString() });
  });
  const bridge = new EspRfidBridge({
    deviceBroker: { url: broker.url, clientId: `bridge-${topic.slice(6)}` },
    devices: [{ bundle: fx.bundle, device: { topic, doorip: IP, door: 'street', heartbeatSeconds: 1 }, store: new MemoryStateStore() }],
    logger: process.env.SP_TEST_DEBUG ? streamLogger('bridge', 'debug') : silentLogger,
    tuning: { commandTimeoutMs: 2_000, listSettleMs: 300, listFirstMs: 800, retryMs: 100, heartbeatTimeoutMs: 800 },
  });
  await bridge.start();
  cleanups.push(() => bridge.stop());
  const dev = bridge.devices[0] as BridgedDevice;
  const failures: string[] = [];
  dev.on('reconcile-failed', (d) => failures.push(d));
  const rounds: number[] = [];
  dev.on('reconciled', (v) => rounds.push(v));
  device.startHeartbeats(200);
  const online = () => gw.received.some((r) => r.message.type === 'state' && (r.message).body.online);
  await until(online, 'native birth after the first heartbeat');
  return { broker, fx, gw, device, dev, toDevice, failures, rounds, topic };
}

type World = Awaited<ReturnType<typeof world>>;

/** Sync and wait for the bridge's `applied`, which it sends only once the device's list is proven. */
async function apply(w: World, body: GrantsSyncBody) {
  const { message } = await w.gw.send('grants.sync', body);
  const reply = await w.gw.reply(message.id, 10_000);
  await until(() => w.dev.idle, 'the bridge idle');
  return reply;
}

function expectClean(w: World): void {
  expect(w.device.violations).toEqual([]);
  expect(w.toDevice.length).toBeGreaterThan(0);
  expect(w.toDevice.filter((p) => p.retain)).toEqual([]);
  expect(w.device.commands.filter((c) => c.cmd === 'adduser' && String(c.acctype) !== '1')).toEqual([]);
  expect(w.toDevice.some((p) => /"acctype":"?99/.test(p.payload))).toBe(false);
}

describe('esp-rfid bridge', () => {
  it('grant → adduser acctype 1 with the grant window, proven by getuserlist before `applied`', async () => {
    const w = await world();
    // The device came online with an empty desired set: the bridge read its list, nothing to change.
    await until(() => w.rounds.length === 1, 'the first list read');
    expect(w.device.commands).toEqual([{ cmd: 'getuserlist', doorip: IP }]);
    const body = grants(1, [TAG], { pin: true });
    const reply = await apply(w, body);
    expect(reply).toMatchObject({ status: 'applied', appliedVersion: 1 });
    const g = body.grants[0]!;
    const uid = TAG.toLowerCase();
    expect(w.device.users.get(uid)).toEqual({ uid, user: 'sp:inc-1', acctype: 1, validsince: Math.floor(g.notBefore / 1000), validuntil: Math.floor(g.notAfter / 1000) });
    const adds = w.device.commands.filter((c) => c.cmd === 'adduser');
    expect(adds).toEqual([{ cmd: 'adduser', doorip: IP, uid, user: 'sp:inc-1', acctype: '1', validsince: String(Math.floor(g.notBefore / 1000)), validuntil: String(Math.floor(g.notAfter / 1000)) }]);
    // The PIN never reaches the device: esp-rfid holds tags only.
    expect(w.toDevice.some((p) => p.payload.includes('4711'))).toBe(false);
    // Read, change, read again: the add is proven on the device's own list.
    expect(w.device.commands.slice(1).map((c) => c.cmd)).toEqual(['getuserlist', 'adduser', 'getuserlist']);
    expect(w.dev.appliedVersion).toBe(1);
    // A retry of the same version is answered stale, and nothing more is sent to the device.
    const again = await w.gw.send('grants.sync', body);
    expect(await w.gw.reply(again.message.id)).toMatchObject({ status: 'stale', appliedVersion: 1 });
    expectClean(w);
  });

  it('revoke → deletuid, then getuserlist proves it gone; a device that keeps the user is retried until it is', async () => {
    const w = await world();
    const win = { notBefore: Date.now() - 1000, notAfter: Date.now() + 120_000 };
    await apply(w, grants(1, [TAG, OTHER], win));
    expect([...w.device.users.keys()].sort()).toEqual([OTHER.toLowerCase(), TAG.toLowerCase()].sort());
    const mark = w.device.commands.length;

    // A device that acknowledges the delete but keeps the user: no `applied` until it is gone.
    w.device.ignoreDeletes = true;
    const { message } = await w.gw.send('grants.sync', grants(2, [OTHER], win));
    await until(() => w.failures.length >= 2, 'the failed proof reported and retried');
    expect(w.gw.received.some((r) => r.message.type === 'reply' && (r.message).body.ref === message.id)).toBe(false);
    expect(w.dev.appliedVersion).toBe(1);
    // After three failed rounds the gateway is told (the delivery shows as failed); retries go on.
    const refused = await w.gw.waitFor((r) => r.find((x) => x.message.type === 'reply' && x.message.body.ref === message.id)?.message.body, 10_000, 'device-unconfirmed');
    expect(refused).toMatchObject({ status: 'rejected', code: 'device-unconfirmed', appliedVersion: 1 });
    expect(w.failures.length).toBeGreaterThanOrEqual(3);
    w.device.ignoreDeletes = false;
    const applied = await w.gw.waitFor(
      (r) => r.find((x) => x.message.type === 'reply' && x.message.body.ref === message.id && x.message.body.status === 'applied')?.message.body,
      10_000,
      'applied after the proof',
    );
    expect(applied).toMatchObject({ status: 'applied', appliedVersion: 2 });
    expect([...w.device.users.keys()]).toEqual([OTHER.toLowerCase()]);
    // Every round: read, delete, read again; the last read is the proof.
    const after = w.device.commands.slice(mark).map((c) => c.cmd);
    expect(after[0]).toBe('getuserlist');
    expect(after.filter((c) => c === 'deletuid').length).toBeGreaterThanOrEqual(3);
    expect(after).not.toContain('adduser'); // the kept tag's entry was already right
    expect(after.at(-1)).toBe('getuserlist');
    expect(after.at(-2)).toBe('deletuid');
    expect(w.device.commands.slice(mark).filter((c) => c.cmd === 'deletuid').every((c) => c.uid === TAG.toLowerCase())).toBe(true);
    expectClean(w);
  });

  it('door.pulse → opendoor, answered done once the device reports it; hold is refused', async () => {
    const w = await world();
    const { message } = await w.gw.send('door.pulse', { door: 'street', seconds: 5 });
    expect(await w.gw.reply(message.id)).toMatchObject({ status: 'done' });
    expect(w.device.commands.filter((c) => c.cmd === 'opendoor')).toEqual([{ cmd: 'opendoor', doorip: IP }]);
    expect(w.device.doorOpenings).toBe(1);
    await w.gw.waitFor((r) => r.find((x) => x.message.type === 'evt' && (x.message).body.kind === 'door'), 5000, 'door unlocked event');
    // The device's answer to opendoor is not a tag access.
    expect(w.gw.events().filter((e) => e.body.kind === 'access')).toEqual([]);
    const wrong = await w.gw.send('door.pulse', { door: 'stair-9', seconds: 5 });
    expect(await w.gw.reply(wrong.message.id)).toMatchObject({ status: 'rejected', code: 'unknown-door' });
    const hold = await w.gw.send('door.hold', { door: 'street', until: Date.now() + 60_000 });
    expect(await w.gw.reply(hold.message.id)).toMatchObject({ status: 'rejected', code: 'unsupported' });
    expectClean(w);
  });

  it('keeps one command in flight: a pulse during a resync waits for the device, then goes first', async () => {
    const w = await world();
    const tags = ['04000001', '04000002', '04000003', '04000004', '04000005'];
    await w.gw.send('grants.sync', grants(1, tags));
    await until(() => w.device.commands.some((c) => c.cmd === 'adduser'), 'the resync under way');
    const a = await w.gw.send('door.pulse', { door: 'street', seconds: 5 });
    const b = await w.gw.send('door.pulse', { door: 'street', seconds: 5 });
    expect(await w.gw.reply(a.message.id)).toMatchObject({ status: 'done' });
    expect(await w.gw.reply(b.message.id)).toMatchObject({ status: 'done' });
    await until(() => w.dev.appliedVersion === 1 && w.dev.idle, 'the resync finished');
    expect(w.device.users.size).toBe(5);
    // Both pulses ran before the rest of the adds: a person at the door goes ahead of list work.
    const cmds = w.device.commands.map((c) => c.cmd);
    const firstOpen = cmds.indexOf('opendoor');
    expect(cmds.slice(firstOpen, firstOpen + 2)).toEqual(['opendoor', 'opendoor']);
    expect(cmds.slice(firstOpen + 2)).toContain('adduser');
    // The fake device saw every command arrive only after the previous one was answered.
    expectClean(w);
  });

  it('a presented tag → a signed native access event; a forged command is refused and reported', async () => {
    const w = await world();
    const body = grants(1, [TAG]);
    await apply(w, body);
    expect(w.device.present(TAG.toLowerCase())).toBe('Always');
    expect(w.device.present(OTHER.toLowerCase())).toBe('Denied');
    await until(() => w.gw.events().filter((e) => e.body.kind === 'access').length === 2, 'two access events');
    // The harness verified each with the bundle's controller key (unverifiable ones land in `invalid`).
    expect(w.gw.events().filter((e) => e.body.kind === 'access').map((e) => e.body)).toMatchObject([
      { kind: 'access', door: 'street', credential: { kind: 'tag', uid: TAG }, result: 'granted', reason: 'grant', grantId: body.grants[0]!.grantId },
      { kind: 'access', door: 'street', credential: { kind: 'tag', uid: OTHER }, result: 'denied', reason: 'unknown' },
    ]);
    expect(w.gw.invalid.filter((i) => i.topic.endsWith('/evt'))).toEqual([]);
    // A command signed with a key the bundle does not trust never reaches the device.
    const forged = makeFixture(w.broker.url).gateway;
    await w.gw.send('door.pulse', { door: 'street', seconds: 5 }, { key: forged });
    await w.gw.waitFor((r) => r.find((x) => x.message.type === 'evt' && (x.message).body.kind === 'rejected'), 5000, 'rejected event');
    expect(w.device.commands.filter((c) => c.cmd === 'opendoor')).toEqual([]);
    expectClean(w);
  });

  it('device reboot with its list lost → full resync; heartbeats stop → controller offline', async () => {
    const w = await world();
    await apply(w, grants(1, [TAG, OTHER]));
    const mark = w.device.commands.length;
    w.device.reboot({ wipe: true });
    expect(w.device.users.size).toBe(0);
    await until(() => w.device.users.size === 2, 'users restored after the boot');
    await until(() => w.device.commands.slice(mark).filter((c) => c.cmd === 'getuserlist').length === 2, 'resync proven');
    expect(w.device.commands.slice(mark).map((c) => c.cmd).sort()).toEqual(['adduser', 'adduser', 'getuserlist', 'getuserlist']);
    expect(w.device.users.get(TAG.toLowerCase())?.acctype).toBe(1);

    // A reboot that kept the list: checked, nothing rewritten.
    const mark2 = w.device.commands.length;
    const reconciled = new Promise<void>((resolve) => w.dev.once('reconciled', () => resolve()));
    w.device.reboot({ wipe: false });
    await reconciled;
    expect(w.device.commands.slice(mark2).map((c) => c.cmd)).toEqual(['getuserlist']);

    // Silence: the bridge publishes the retained death for the device's controller.
    const heard = w.gw.received.length;
    w.device.stopHeartbeats();
    const death = await w.gw.waitFor(
      (r) => r.slice(heard).find((x) => x.message.type === 'state' && !(x.message).body.online),
      5000,
      'offline state',
    );
    expect(death.retained).toBe(false); // live delivery; the broker keeps it retained for later subscribers
    expect(w.dev.online).toBe(false);
    // While offline, a pulse is refused at once rather than queued behind a dead device.
    const { message } = await w.gw.send('door.pulse', { door: 'street', seconds: 5 });
    expect(await w.gw.reply(message.id)).toMatchObject({ status: 'rejected', code: 'device-offline' });
    // The next heartbeat is a birth again.
    const births = () => w.gw.received.filter((x) => x.message.type === 'state' && (x.message).body.online).length;
    const before = births();
    w.device.heartbeat();
    await until(() => births() > before, 'birth after the device is heard again');
    expectClean(w);
  });

  it('a grant that ends is deleted from the device without any message from the gateway', async () => {
    const w = await world();
    await w.gw.send('grants.sync', grants(1, [TAG], { notAfter: Date.now() + 2500 }));
    await until(() => w.device.commands.some((c) => c.cmd === 'adduser' && c.uid === TAG.toLowerCase()), 'the tag added');
    await until(() => !w.device.users.has(TAG.toLowerCase()), 'expired tag removed', 10_000);
    await until(() => w.device.commands.at(-1)?.cmd === 'getuserlist' && w.device.commands.some((c) => c.cmd === 'deletuid'), 'removal proven');
    expectClean(w);
  });
});

describe('sp-esp-rfid-bridge (the process)', () => {
  it('runs from a config file: device online, grant applied on the device, offline state on SIGTERM', async () => {
    const broker = await startAedes();
    cleanups.push(() => broker.close());
    const fx = makeFixture(broker.url, { doors: ['street'] });
    const gw = new GatewayHarness(fx, broker.url);
    await gw.start();
    cleanups.push(() => gw.stop());
    const topic = `/rfid/${randomBytes(3).toString('hex')}`;
    const device = new FakeEspRfid({ url: broker.url, topic, ip: IP });
    await device.start();
    cleanups.push(() => device.stop());
    const dir = mkdtempSync(join(tmpdir(), 'sp-esp-bridge-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    writeFileSync(join(dir, 'ctl.json'), JSON.stringify(fx.bundle), { mode: 0o600 });
    writeFileSync(
      join(dir, 'bridge.json'),
      JSON.stringify({ deviceBroker: { url: broker.url }, stateDir: 'state', devices: [{ bundle: 'ctl.json', topic, doorip: IP, door: 'street', heartbeatSeconds: 1 }], timing: { listSettleMs: 300, listFirstMs: 800 } }),
      { mode: 0o600 },
    );
    const p = procs.spawn(BRIDGE_CLI, ['--config', join(dir, 'bridge.json'), '--log-level', 'debug']);
    await p.waitForJson((v) => v.event === 'started' && v.ctrl === fx.bundle.controllerId);
    device.startHeartbeats(200);
    await p.waitForJson((v) => v.event === 'online');
    const { message } = await gw.send('grants.sync', grants(1, [TAG]));
    expect(await gw.reply(message.id, 20_000)).toMatchObject({ status: 'applied', appliedVersion: 1 });
    expect(device.users.get(TAG.toLowerCase())?.acctype).toBe(1);
    // The state file keeps the applied version and the replay window; it holds no PIN or password.
    const state = readFileSync(join(dir, 'state', `${fx.bundle.controllerId}.state.json`), 'utf8');
    expect(JSON.parse(state)).toMatchObject({ appliedVersion: 1, desiredVersion: 1, ctrl: fx.bundle.controllerId });
    expect(p.stdout + p.stderr).not.toContain(fx.bundle.mqtt.password);
    const heard = gw.received.length;
    expect(await p.end()).toEqual({ code: 0, signal: null });
    await gw.waitFor((r) => r.slice(heard).find((x) => x.message.type === 'state' && !(x.message).body.online), 5000, 'offline state');
    expect(device.violations).toEqual([]);
  });
});
