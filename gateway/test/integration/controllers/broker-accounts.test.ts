// The gateway keeping controllers' accounts on Mosquitto 2 (issue 6, DESIGN §5.1, §7;
// SP_MQTT_ACCOUNTS=dynsec): a private Mosquitto with the Dynamic Security plugin, initialised
// with `mosquitto_ctrl dynsec init` and given the gateway's topics with the very commands
// deploy/secrets/README.md gives the operator; an in-process gateway (embedded store) against it;
// controllers as raw mqtt.js clients, so every SUBACK code and dropped publish is seen as is.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controllerTopic, generateRawKeyPair, type Logger, type ProvisioningBundle } from '@smart-passage/protocol';
import { connectMqtt, MemoryStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { controllerRole } from '../../../src/adapters/mosquitto-dynsec.js';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import { Gateway } from '../../../src/gateway.js';
import { endAll, startMain } from '../../support/main-process.js';
import { dynsecCtrl, endServices, startMosquitto, type PrivateServer } from '../../support/services.js';

/** The operator's dynsec admin (`mosquitto_ctrl dynsec init`) and the gateway's own account. */
const OPERATOR = { username: 'admin', password: 'operator-dynsec-pw-1' };
const ADMIN = { username: 'gateway', password: 'gateway-mqtt-pw-1' };
const dir = mkdtempSync(join(tmpdir(), 'sp-dynsec-'));
const lines: string[] = [];
/** Every log line as JSON, to read the start-up warnings and prove no password is logged. */
const logger: Logger = (() => {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(JSON.stringify({ level, msg, ...fields }));
  return { debug: rec('debug'), info: rec('info'), warn: rec('warn'), error: rec('error') };
})();
const clients: MqttClient[] = [];
const secrets: string[] = [];
let mqtt: PrivateServer;
let gw: Gateway;
let token: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean | Promise<boolean>, ms = 8000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function api(path: string, o: { body?: unknown; method?: string } = {}) {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & { error?: { code: string; details?: { reason?: string } } } };
}

async function register(id: string): Promise<ProvisioningBundle> {
  const r = await api('/api/v1/controllers', { body: { id, buildingId: 'bld-d', vendor: 'ref', doors: [{ ref: 'street' }] } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const bundle = r.body as unknown as ProvisioningBundle;
  secrets.push(bundle.mqtt.password);
  return bundle;
}

/** Connect as `username`; resolves with the client or rejects with the broker's refusal. */
async function connectAs(username: string, password: string): Promise<MqttClient> {
  const c = connectMqtt({ url: mqtt.url, clientId: `${username}-${clients.length}`, username, password, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return c;
}

/** The SUBACK return code of one subscription (0x80 = refused). */
async function subscribeCode(c: MqttClient, topic: string): Promise<number> {
  try {
    const granted = await c.subscribeAsync(topic, { qos: 1 });
    return granted[0]?.qos ?? -1;
  } catch (err) {
    // mqtt.js 5 rejects a SUBACK of 0x80 with the packet attached.
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (packet?.granted?.[0] !== undefined) return packet.granted[0];
    throw err;
  }
}

/** Broker clients and roles as the plugin lists them (mosquitto_ctrl prints one a line). */
const listed = (what: 'listClients' | 'listRoles'): string[] =>
  dynsecCtrl(mqtt, OPERATOR, [what]).split('\n').map((l) => l.trim()).filter(Boolean);
const brokerClients = () => listed('listClients');
const brokerRoles = () => listed('listRoles');

beforeAll(async () => {
  mqtt = await startMosquitto({ anonymous: false, persistence: true, dynsec: { admin: OPERATOR } });
  // The gateway's account, made as deploy/secrets/README.md tells the operator to.
  for (const args of [
    ['createRole', 'sp-gateway'],
    ['addRoleACL', 'sp-gateway', 'publishClientSend', 'sp/v1/#', 'allow'],
    ['addRoleACL', 'sp-gateway', 'publishClientReceive', 'sp/v1/#', 'allow'],
    ['addRoleACL', 'sp-gateway', 'subscribePattern', 'sp/v1/#', 'allow'],
    ['addRoleACL', 'sp-gateway', 'publishClientSend', '$CONTROL/dynamic-security/#', 'allow'],
    ['addRoleACL', 'sp-gateway', 'publishClientReceive', '$CONTROL/dynamic-security/#', 'allow'],
    ['addRoleACL', 'sp-gateway', 'subscribePattern', '$CONTROL/dynamic-security/#', 'allow'],
    ['createClient', ADMIN.username, '-p', ADMIN.password],
    ['addClientRole', ADMIN.username, 'sp-gateway'],
    // Left over from an earlier run: a controller account of ours no controller has any more…
    ['createRole', controllerRole('ctl-stale')],
    ['createClient', 'ctl-stale', '-p', 'stale-pw'],
    ['addClientRole', 'ctl-stale', controllerRole('ctl-stale')],
    // …an orphaned role of ours, and someone else's account, which must stay.
    ['createRole', controllerRole('ctl-orphan')],
    ['createClient', 'someone-else', '-p', 'other-pw'],
  ]) {
    const out = dynsecCtrl(mqtt, OPERATOR, args);
    expect(out, args.join(' ')).not.toMatch(/error/i);
  }
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { url: mqtt.url, username: ADMIN.username, password: ADMIN.password, accounts: 'dynsec', accountsTimeoutMs: 2000 },
    demo: false,
    admin: { username: 'first-admin', password: 'first-admin-pw' },
    env: {},
    logger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
    cleanSession: true,
  });
  // Stored before the gateway starts and never on this broker: a controller registered earlier
  // whose account the broker lost (restored from an older backup, say).
  const seed = new EmbeddedStore({ path: join(dir, 'store.sqlite') });
  await seed.start();
  const now = Date.now();
  await seed.insert('organisations', { id: 'org-d', name: 'Owner', kind: 'owner', createdAt: now });
  await seed.insert('buildings', {
    id: 'bld-d', orgId: 'org-d', name: 'Götgatan 9', address: 'Götgatan 9', location: { lat: 59.31, lng: 18.07 },
    policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: now, updatedAt: now,
  });
  await seed.insert('controllers', { id: 'ctl-lost', buildingId: 'bld-d', vendor: 'ref', publicKey: generateRawKeyPair().publicKey, controllerKid: 'ctl-lost-k1', mqttPasswordHash: 'x', offlineSecret: 'x', createdAt: now });
  await seed.stop();
  await gw.start();
  const login = await api('/api/v1/auth/login', { body: { username: 'first-admin', password: 'first-admin-pw' } });
  expect(login.status).toBe(200);
  token = login.body.accessToken as string;
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await endAll();
  await gw?.stop();
  // Only what this file started, by PID.
  await endServices();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe('controller accounts on Mosquitto 2 through Dynamic Security (SP_MQTT_ACCOUNTS=dynsec)', () => {
  it('at start, deletes the stale account and orphaned role of ours and leaves every other account alone', () => {
    const names = brokerClients();
    expect(names).not.toContain('ctl-stale');
    expect(names).toEqual(expect.arrayContaining([OPERATOR.username, ADMIN.username, 'someone-else']));
    const roles = brokerRoles();
    expect(roles).not.toContain(controllerRole('ctl-stale'));
    expect(roles).not.toContain(controllerRole('ctl-orphan'));
    expect(roles).toContain('sp-gateway');
    expect(lines.some((l) => l.includes('broker accounts of removed controllers deleted') && l.includes('ctl-stale'))).toBe(true);
  });

  it('at start, names registered controllers the broker has no account for', () => {
    const warning = lines.find((l) => l.includes('REGISTERED CONTROLLERS WITHOUT A BROKER ACCOUNT'));
    expect(warning).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ level: 'warn', count: 1, ctrls: 'ctl-lost' });
  });

  it('a registered controller connects with its bundle and uses its own topics, in the protocol direction', async () => {
    const a = await register('ctl-a');
    expect(a.mqtt.username).toBe('ctl-a');
    expect(brokerClients()).toContain('ctl-a');
    const ctl = await connectAs('ctl-a', a.mqtt.password);
    expect(await subscribeCode(ctl, controllerTopic('ctl-a', 'sync'))).toBe(1);
    expect(await subscribeCode(ctl, controllerTopic('ctl-a', 'cmd'))).toBe(1);

    // gateway → controller on its cmd topic.
    const got: string[] = [];
    ctl.on('message', (t) => got.push(t));
    await gw.client.publishAsync(controllerTopic('ctl-a', 'cmd'), 'x', { qos: 1 });
    await until(() => got.includes(controllerTopic('ctl-a', 'cmd')), 5000, 'the command at the controller');

    // controller → gateway on reply, evt, state: a watcher with the gateway's rights sees them.
    const watcher = await connectAs(ADMIN.username, ADMIN.password);
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));
    await watcher.subscribeAsync('sp/v1/c/+/+', { qos: 1 });
    for (const leaf of ['reply', 'evt', 'state'] as const) await ctl.publishAsync(controllerTopic('ctl-a', leaf), 'x', { qos: 1 });
    await until(() => seen.length === 3, 5000, 'reply, evt and state at the watcher');
    expect(seen).toEqual(['reply', 'evt', 'state'].map((l) => `sp/v1/c/ctl-a/${l}`));
    await ctl.publishAsync(controllerTopic('ctl-a', 'state'), '', { qos: 1, retain: true });
  });

  it('the reference controller, started from its bundle, comes online through the gateway (its subscriptions, will and retained birth allowed)', async () => {
    const bundle = await register('ctl-ref');
    const ref = new ReferenceController({ bundle, store: new MemoryStateStore() });
    await ref.start();
    try {
      await until(async () => (await gw.store.get('controllerLive', 'ctl-ref'))?.online === true, 8000, 'ctl-ref online at the gateway');
    } finally {
      await ref.stop();
      // Leave no retained state behind for the other tests' watchers.
      await gw.client.publishAsync(controllerTopic('ctl-ref', 'state'), '', { qos: 1, retain: true });
    }
  });

  it("a controller can neither subscribe to nor publish on another controller's topics, nor write its own gateway → controller topics", async () => {
    const a = await register('ctl-x');
    await register('ctl-y');
    const ctl = await connectAs('ctl-x', a.mqtt.password);
    for (const topic of [controllerTopic('ctl-y', 'sync'), controllerTopic('ctl-y', 'cmd'), controllerTopic('ctl-y', 'evt'), 'sp/v1/c/+/sync', 'sp/v1/#', '#', controllerTopic('ctl-x', 'evt')]) {
      expect(await subscribeCode(ctl, topic), topic).toBe(0x80);
    }
    const watcher = await connectAs(ADMIN.username, ADMIN.password);
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));
    await watcher.subscribeAsync(['sp/v1/c/ctl-x/#', 'sp/v1/c/ctl-y/#', 'sp/v1/gw/#'], { qos: 1 });
    // Denied publishes are acknowledged and dropped (MQTT 3.1.1 has no refusal in PUBACK); the
    // allowed one sent after them arrives, so by then the others would have too.
    for (const topic of [controllerTopic('ctl-y', 'evt'), controllerTopic('ctl-y', 'state'), controllerTopic('ctl-x', 'sync'), controllerTopic('ctl-x', 'cmd'), 'sp/v1/gw/x/state']) {
      await ctl.publishAsync(topic, 'forged', { qos: 1 });
    }
    await ctl.publishAsync(controllerTopic('ctl-x', 'evt'), 'own', { qos: 1 });
    await until(() => seen.includes(controllerTopic('ctl-x', 'evt')), 5000, "the controller's own event");
    await sleep(200);
    expect(seen).toEqual([controllerTopic('ctl-x', 'evt')]);
  });

  it('a wrong password, another controller’s password and an unknown account are refused', async () => {
    const b = await register('ctl-b');
    await expect(connectAs('ctl-b', 'not-its-password')).rejects.toThrow(/not authori[sz]ed/i);
    const c = await register('ctl-c');
    await expect(connectAs('ctl-b', c.mqtt.password)).rejects.toThrow(/not authori[sz]ed/i);
    await expect(connectAs('ctl-nobody', b.mqtt.password)).rejects.toThrow(/not authori[sz]ed/i);
    await connectAs('ctl-b', b.mqtt.password);
  });

  it('after removal the controller is disconnected and cannot reconnect; registering the id again gives it a new password', async () => {
    const first = await register('ctl-r');
    const ctl = await connectAs('ctl-r', first.mqtt.password);
    let closed = false;
    ctl.on('close', () => (closed = true));
    const del = await api('/api/v1/controllers/ctl-r', { method: 'DELETE' });
    expect(del.status, JSON.stringify(del.body)).toBe(204);
    await until(() => closed, 5000, 'the removed controller disconnected');
    expect(brokerClients()).not.toContain('ctl-r');
    expect(brokerRoles()).not.toContain(controllerRole('ctl-r'));
    await expect(connectAs('ctl-r', first.mqtt.password)).rejects.toThrow(/not authori[sz]ed/i);

    const second = await register('ctl-r');
    expect(second.mqtt.password).not.toBe(first.mqtt.password);
    await expect(connectAs('ctl-r', first.mqtt.password)).rejects.toThrow(/not authori[sz]ed/i);
    const again = await connectAs('ctl-r', second.mqtt.password);
    expect(await subscribeCode(again, controllerTopic('ctl-r', 'sync'))).toBe(1);
  });

  it('a leftover account of ours under a new controller id is replaced (old password out); a foreign account of that name is a 409', async () => {
    // An account of ours the store does not know (a removal the broker missed): registering the
    // id replaces it, and the old password stops working.
    dynsecCtrl(mqtt, OPERATOR, ['createRole', controllerRole('ctl-left')]);
    dynsecCtrl(mqtt, OPERATOR, ['createClient', 'ctl-left', '-p', 'left-pw']);
    dynsecCtrl(mqtt, OPERATOR, ['addClientRole', 'ctl-left', controllerRole('ctl-left')]);
    const old = await connectAs('ctl-left', 'left-pw');
    let closed = false;
    old.on('close', () => (closed = true));
    const b = await register('ctl-left');
    await until(() => closed, 5000, 'the old session disconnected');
    await expect(connectAs('ctl-left', 'left-pw')).rejects.toThrow(/not authori[sz]ed/i);
    await connectAs('ctl-left', b.mqtt.password);

    // Not ours: never replaced, and nothing is stored.
    const r = await api('/api/v1/controllers', { body: { id: 'someone-else', buildingId: 'bld-d', vendor: 'ref', doors: [] } });
    expect(r.status, JSON.stringify(r.body)).toBe(409);
    expect(await gw.store.get('controllers', 'someone-else')).toBeUndefined();
    await connectAs('someone-else', 'other-pw');
    // The gateway's own account is reserved as a controller id.
    const own = await api('/api/v1/controllers', { body: { id: ADMIN.username, buildingId: 'bld-d', vendor: 'ref', doors: [] } });
    expect(own.status, JSON.stringify(own.body)).toBe(409);
    expect(brokerClients()).toContain(ADMIN.username);
  });

  it('with the broker down, registration and removal answer 503 broker-accounts-unavailable and change nothing; both work once it is back', async () => {
    await register('ctl-keep');
    await mqtt.kill('SIGKILL');
    try {
      await brokerDown();
    } finally {
      if (!mqtt.running) await mqtt.start();
    }
    await until(() => gw.client.connected, 10_000, 'the gateway back on the broker');
    const down = await register('ctl-down');
    await connectAs('ctl-down', down.mqtt.password);
    expect((await api('/api/v1/controllers/ctl-keep', { method: 'DELETE' })).status).toBe(204);
    expect(brokerClients()).not.toContain('ctl-keep');
  }, 30_000);

  async function brokerDown(): Promise<void> {
    const reg = await api('/api/v1/controllers', { body: { id: 'ctl-down', buildingId: 'bld-d', vendor: 'ref', doors: [] } });
    expect(reg.status, JSON.stringify(reg.body)).toBe(503);
    expect(reg.body.error?.code).toBe('unavailable');
    expect(reg.body.error?.details?.reason).toBe('broker-accounts-unavailable');
    expect(await gw.store.get('controllers', 'ctl-down')).toBeUndefined();
    const del = await api('/api/v1/controllers/ctl-keep', { method: 'DELETE' });
    expect(del.status, JSON.stringify(del.body)).toBe(503);
    expect(del.body.error?.details?.reason).toBe('broker-accounts-unavailable');
    expect(await gw.store.get('controllers', 'ctl-keep')).toBeDefined();
  }

  it('a gateway whose account may not use the Dynamic Security API does not start, and says why', async () => {
    // It may read the answers but not send commands: they are dropped without a word, as on a
    // broker without the plugin.
    for (const args of [
      ['createRole', 'sp-mute'],
      ['addRoleACL', 'sp-mute', 'publishClientSend', 'sp/v1/#', 'allow'],
      ['addRoleACL', 'sp-mute', 'subscribePattern', 'sp/v1/#', 'allow'],
      ['addRoleACL', 'sp-mute', 'subscribePattern', '$CONTROL/dynamic-security/#', 'allow'],
      ['createClient', 'gw-mute', '-p', 'mute-pw'],
      ['addClientRole', 'gw-mute', 'sp-mute'],
    ]) {
      expect(dynsecCtrl(mqtt, OPERATOR, args), args.join(' ')).not.toMatch(/error/i);
    }
    const muteDir = mkdtempSync(join(tmpdir(), 'sp-dynsec-mute-'));
    const mute = new Gateway({
      dataDir: muteDir,
      http: { host: '127.0.0.1', port: 0 },
      mqtt: { url: mqtt.url, username: 'gw-mute', password: 'mute-pw', accounts: 'dynsec', accountsTimeoutMs: 1000 },
      demo: false,
      env: {},
      logger,
      hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
      cleanSession: true,
    });
    try {
      await expect(mute.start()).rejects.toThrow(/no answer from the broker's dynamic security plugin within 1 s/);
    } finally {
      await mute.stop();
      rmSync(muteDir, { recursive: true, force: true });
    }
  }, 20_000);

  it('npm start with SP_MQTT_ACCOUNTS=dynsec starts on the authenticating broker and reconciles there', async () => {
    // Left over: an account of ours without a controller, which the process must delete.
    dynsecCtrl(mqtt, OPERATOR, ['createRole', controllerRole('ctl-stale-2')]);
    dynsecCtrl(mqtt, OPERATOR, ['createClient', 'ctl-stale-2', '-p', 'stale-pw']);
    dynsecCtrl(mqtt, OPERATOR, ['addClientRole', 'ctl-stale-2', controllerRole('ctl-stale-2')]);
    const mainDir = mkdtempSync(join(tmpdir(), 'sp-dynsec-main-'));
    const passwordFile = join(mainDir, 'gateway-mqtt-password');
    writeFileSync(passwordFile, ADMIN.password, { mode: 0o600 });
    const p = startMain(
      { SP_MQTT_URL: mqtt.url, SP_MQTT_USERNAME: ADMIN.username, SP_MQTT_PASSWORD_FILE: passwordFile, SP_MQTT_ACCOUNTS: 'dynsec', SP_DEMO: 'off', SP_PORT: '0', SP_DATA_DIR: join(mainDir, 'data') },
      mainDir,
    );
    try {
      await until(() => {
        if (p.child.exitCode !== null) throw new Error(`main exited with ${p.child.exitCode}:\n${p.out()}\n${p.err()}`);
        return p.out().includes('Ctrl-C stops everything');
      }, 30_000, 'the start banner');
      await until(() => p.err().includes('broker accounts of removed controllers deleted'), 5000, 'the reconcile at start');
      expect(brokerClients()).not.toContain('ctl-stale-2');
      // Its own store is empty: every controller account of ours on this broker was stale to it.
      expect(brokerClients()).toEqual(expect.arrayContaining([OPERATOR.username, ADMIN.username, 'someone-else']));
      expect(p.err()).not.toContain(ADMIN.password);
    } finally {
      await endAll();
      rmSync(mainDir, { recursive: true, force: true });
    }
  }, 45_000);

  it('logs no MQTT password', () => {
    expect(secrets.length).toBeGreaterThan(5);
    const all = lines.join('\n');
    for (const s of [...secrets, ADMIN.password, OPERATOR.password, 'stale-pw', 'left-pw', 'other-pw', 'mute-pw']) expect(all).not.toContain(s);
  });
});
