/**
 * The esp-rfid bridge (BRIDGES.md): one MQTT connection to the devices' broker, shared by every
 * device, and one native controller connection per device (from its bundle). Messages on a
 * device's `TOPIC/send` are routed to that device by topic.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { FileStateStore, type ControllerStateStore } from '../../controller/state-store.js';
import { silentLogger, type Logger } from '../../log.js';
import { connectMqtt } from '../../mqtt/connect.js';
import type { ProvisioningBundle } from '../../schemas.js';
import { validateBundle } from '../../validate.js';
import { BridgedDevice, type BridgedDeviceOptions, type EspRfidDeviceConfig } from './bridged-device.js';
import { sendTopic } from './esp-rfid-json.js';

export interface DeviceBrokerConfig {
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
}

export interface EspRfidBridgeOptions {
  deviceBroker: DeviceBrokerConfig;
  devices: { bundle: ProvisioningBundle; device: EspRfidDeviceConfig; store: ControllerStateStore }[];
  logger?: Logger;
  /** Per-device tuning passed on to each BridgedDevice (timeouts, clock). */
  tuning?: Pick<BridgedDeviceOptions, 'commandTimeoutMs' | 'listSettleMs' | 'listFirstMs' | 'retryMs' | 'heartbeatTimeoutMs' | 'now' | 'mqtt'>;
}

export class EspRfidBridge {
  readonly devices: BridgedDevice[] = [];
  readonly #o: EspRfidBridgeOptions;
  readonly #log: Logger;
  #client: MqttClient | undefined;
  readonly #byTopic = new Map<string, BridgedDevice>();

  constructor(o: EspRfidBridgeOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    const topics = new Set<string>();
    for (const d of o.devices) {
      if (topics.has(d.device.topic)) throw new RangeError(`two devices share the topic ${d.device.topic}`);
      topics.add(d.device.topic);
    }
  }

  async start(): Promise<void> {
    const b = this.#o.deviceBroker;
    const client = connectMqtt({
      url: b.url,
      ...(b.username !== undefined ? { username: b.username } : {}),
      ...(b.password !== undefined ? { password: b.password } : {}),
      clientId: b.clientId ?? `sp-esp-rfid-bridge-${process.pid}`,
      clean: true,
      reconnectPeriod: 1000,
    });
    this.#client = client;
    client.on('error', (err) => this.#log.warn('mqtt error (device side)', { err: err.message }));
    client.on('message', (topic, payload) => this.#byTopic.get(topic)?.handleDeviceMessage(payload));
    for (const d of this.#o.devices) {
      const dev = new BridgedDevice({ ...this.#o.tuning, bundle: d.bundle, device: d.device, store: d.store, deviceClient: client, logger: this.#log });
      this.devices.push(dev);
      this.#byTopic.set(sendTopic(d.device.topic), dev);
    }
    // Subscribe on every (re)connection: the session is clean.
    const subscribe = () =>
      client.subscribeAsync([...this.#byTopic.keys()], { qos: 1 }).catch((err: unknown) => this.#log.warn('device subscribe failed', { err: String(err) }));
    client.on('connect', () => void subscribe());
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    await subscribe();
    await Promise.all(this.devices.map((d) => d.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.stop()));
    await this.#client?.endAsync();
    this.#client = undefined;
  }
}

// ── Config file ─────────────────────────────────────────────────────────────────────────────

export interface BridgeConfigFile {
  deviceBroker: DeviceBrokerConfig;
  /** Where each device's state file goes (`<controllerId>.state.json`); relative to the config file. */
  stateDir: string;
  devices: (EspRfidDeviceConfig & { bundle: string })[];
  /** Optional: how long to wait for the devices (ms); defaults as in BridgedDeviceOptions. */
  timing?: { commandTimeoutMs?: number; listSettleMs?: number; listFirstMs?: number };
}

/** Read and check a config file; every problem is listed, none thrown. */
export function loadBridgeConfig(path: string): { ok: true; options: EspRfidBridgeOptions } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ok: false, problems: [`${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`] };
  }
  const c = raw as Partial<BridgeConfigFile>;
  const base = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : join(base, p));
  if (typeof c.deviceBroker?.url !== 'string' || !/^mqtts?:\/\//.test(c.deviceBroker.url)) problems.push('deviceBroker.url must be an mqtt:// or mqtts:// URL');
  if (typeof c.stateDir !== 'string' || c.stateDir === '') problems.push('stateDir is required');
  if (!Array.isArray(c.devices) || c.devices.length === 0) problems.push('devices must list at least one device');
  const devices: EspRfidBridgeOptions['devices'] = [];
  for (const [i, d] of (Array.isArray(c.devices) ? c.devices : []).entries()) {
    const where = `devices[${i}]`;
    if (typeof d.topic !== 'string' || d.topic === '' || /[+#]/.test(d.topic)) problems.push(`${where}.topic must be the device's base topic (no wildcards)`);
    if (typeof d.doorip !== 'string' || d.doorip === '') problems.push(`${where}.doorip is required (the device checks it on every command)`);
    if (typeof d.door !== 'string' || d.door === '') problems.push(`${where}.door is required (the bundle's door ref the device drives)`);
    if (d.uidCase !== undefined && d.uidCase !== 'lower' && d.uidCase !== 'upper') problems.push(`${where}.uidCase must be lower or upper`);
    if (d.heartbeatSeconds !== undefined && (!Number.isInteger(d.heartbeatSeconds) || d.heartbeatSeconds < 1)) problems.push(`${where}.heartbeatSeconds must be a positive integer`);
    if (typeof d.bundle !== 'string') {
      problems.push(`${where}.bundle must be the path of the device's provisioning bundle`);
      continue;
    }
    let bundle: unknown;
    try {
      bundle = JSON.parse(readFileSync(at(d.bundle), 'utf8'));
    } catch (err) {
      problems.push(`${where}.bundle ${d.bundle}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
      continue;
    }
    const v = validateBundle(bundle);
    if (!v.ok) {
      problems.push(`${where}.bundle ${d.bundle}: not a provisioning bundle (${v.detail})`);
      continue;
    }
    const b = bundle as ProvisioningBundle;
    if (!b.controllerKey) problems.push(`${where}.bundle ${d.bundle}: no controllerKey; the bridge signs the device's events with it`);
    if (b.doors && typeof d.door === 'string' && !b.doors.some((x) => x.ref === d.door)) problems.push(`${where}.door ${d.door} is not a door of the bundle`);
    const { bundle: _path, ...device } = d;
    devices.push({ bundle: b, device, store: new FileStateStore(join(at(c.stateDir ?? '.'), `${b.controllerId}.state.json`)) });
  }
  const timing: NonNullable<BridgeConfigFile['timing']> = {};
  for (const k of ['commandTimeoutMs', 'listSettleMs', 'listFirstMs'] as const) {
    const v = c.timing?.[k];
    if (v === undefined) continue;
    if (!Number.isInteger(v) || v < 10 || v > 600_000) problems.push(`timing.${k} must be an integer number of ms in 10–600000`);
    else timing[k] = v;
  }
  if (problems.length > 0 || !c.deviceBroker) return { ok: false, problems };
  return { ok: true, options: { deviceBroker: c.deviceBroker, devices, tuning: timing } };
}
