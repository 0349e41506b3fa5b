/**
 * A fake esp-rfid device, for tests and for trying the bridge without hardware: speaks the JSON esp-rfid documents (README-MQTT.md) on its own
 * topics — commands in on `TOPIC/cmd` (only those whose `doorip` is its IP), answers and events out
 * on `TOPIC/send`. It keeps a user list, answers `getuserlist` with one `userfile` per user (and no
 * end marker, as documented), acknowledges adduser/deletuid, answers opendoor with an access
 * message, emits access events when a tag is presented, and sends heartbeat and boot.
 *
 * It also polices the bridge: it records a violation for a command that arrives while the previous
 * one is still being processed, a retained command, and any acctype other than 1 (99 is admin).
 */
import type { MqttClient } from 'mqtt';
import { connectMqtt } from '../../mqtt/connect.js';

export interface FakeUser {
  uid: string;
  user: string;
  acctype: number;
  validsince: number;
  validuntil: number;
}

export interface FakeDeviceOptions {
  url: string;
  topic: string;
  ip: string;
  hostname?: string;
  /** How long the device takes over one command before it answers; default 30 ms. */
  processingMs?: number;
  /** Gap between two `userfile` messages of one listing; default 10 ms. */
  listGapMs?: number;
  /** The device's clock (ms). */
  now?: () => number;
}

export class FakeEspRfid {
  readonly users = new Map<string, FakeUser>();
  /** Every command received, in order, as parsed JSON. */
  readonly commands: Record<string, unknown>[] = [];
  readonly violations: string[] = [];
  doorOpenings = 0;
  /** Set to ignore `deletuid` (a device that acknowledges but keeps the user): tests the proof. */
  ignoreDeletes = false;
  #client!: MqttClient;
  #busy = false;
  #stopped = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #started = Date.now();
  readonly #o: FakeDeviceOptions;

  constructor(o: FakeDeviceOptions) {
    this.#o = o;
  }

  get #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  async start(): Promise<void> {
    this.#client = connectMqtt({ url: this.#o.url, clientId: `fake-esp-${this.#o.topic.replace(/\W/g, '')}`, clean: true, reconnectPeriod: 200 });
    this.#client.on('message', (topic, payload, packet) => this.#onCommand(payload, packet.retain));
    await new Promise<void>((resolve) => this.#client.once('connect', () => resolve()));
    await this.#client.subscribeAsync(`${this.#o.topic}/cmd`, { qos: 1 });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.stopHeartbeats();
    await this.#client.endAsync();
  }

  // ── What a device does on its own ────────────────────────────────────────────────────────────

  boot(): void {
    this.#started = this.#now;
    this.#send({ type: 'boot', time: this.#secs(), uptime: 0, ip: this.#o.ip, hostname: this.#hostname });
  }

  heartbeat(): void {
    this.#send({ type: 'heartbeat', time: this.#secs(), uptime: Math.floor((this.#now - this.#started) / 1000), ip: this.#o.ip, hostname: this.#hostname });
  }

  /** Heartbeat every `ms` (esp-rfid's default is 180 s; tests use less). */
  startHeartbeats(ms: number): void {
    this.stopHeartbeats();
    this.heartbeat();
    this.#heartbeat = setInterval(() => this.heartbeat(), ms);
  }

  stopHeartbeats(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  /** A reboot: the user list is lost (`wipe`) or kept, then the boot message. */
  reboot({ wipe }: { wipe: boolean }): void {
    if (wipe) this.users.clear();
    this.#busy = false;
    this.boot();
  }

  /** A tag held to the reader: decided on the device's own list and clock, reported as documented. */
  present(uid: string): 'Always' | 'Expired' | 'Disabled' | 'Denied' {
    const u = this.users.get(uid);
    const now = this.#secs();
    let access: 'Always' | 'Expired' | 'Disabled' | 'Denied';
    if (!u) access = 'Denied';
    else if (u.acctype === 0) access = 'Disabled';
    else if (now < u.validsince || now > u.validuntil) access = 'Expired';
    else access = 'Always';
    if (access === 'Always') this.doorOpenings += 1;
    this.#send({ type: 'access', time: now, isKnown: u ? 'true' : 'false', access, username: u?.user ?? 'Unknown', uid, hostname: this.#hostname });
    return access;
  }

  // ── Commands ────────────────────────────────────────────────────────────────────────────────

  #onCommand(payload: Buffer, retained: boolean): void {
    let cmd: Record<string, unknown>;
    try {
      cmd = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      this.violations.push('a command that is not JSON');
      return;
    }
    this.commands.push(cmd);
    if (retained) this.violations.push(`retained command ${String(cmd.cmd)}`);
    if (cmd.doorip !== this.#o.ip) return; // esp-rfid ignores commands for another IP
    if (this.#busy) this.violations.push(`${String(cmd.cmd)} arrived while the previous command was still in flight`);
    this.#busy = true;
    const done = () => {
      this.#busy = false;
    };
    setTimeout(() => this.#run(cmd, done), this.#o.processingMs ?? 30);
  }

  #run(cmd: Record<string, unknown>, done: () => void): void {
    const ack = (type: string) => {
      this.#send({ type, ip: this.#o.ip, hostname: this.#hostname });
      done();
    };
    switch (cmd.cmd) {
      case 'adduser': {
        if (String(cmd.acctype) !== '1') this.violations.push(`adduser with acctype ${String(cmd.acctype)}`);
        const uid = String(cmd.uid);
        this.users.set(uid, { uid, user: String(cmd.user), acctype: Number(cmd.acctype), validsince: Number(cmd.validsince ?? 0), validuntil: Number(cmd.validuntil ?? 0) });
        return ack('adduser');
      }
      case 'deletuid':
        if (!this.ignoreDeletes) this.users.delete(String(cmd.uid));
        return ack('deletuid');
      case 'opendoor':
        this.doorOpenings += 1;
        this.#send({ type: 'access', time: this.#secs(), isKnown: 'true', access: 'Always', username: 'MQTT', uid: ' ', hostname: this.#hostname });
        return done();
      case 'getuserlist': {
        const list = [...this.users.values()];
        const gap = this.#o.listGapMs ?? 10;
        list.forEach((u, i) => {
          setTimeout(() => {
            this.#send({ command: 'userfile', uid: u.uid, user: u.user, acctype: u.acctype, acctype2: null, acctype3: null, acctype4: null, validsince: u.validsince, validuntil: u.validuntil });
            if (i === list.length - 1) done();
          }, gap * i);
        });
        if (list.length === 0) done();
        return;
      }
      default:
        done();
    }
  }

  #send(msg: Record<string, unknown>): void {
    if (this.#stopped) return;
    this.#client.publish(`${this.#o.topic}/send`, JSON.stringify(msg), { qos: 0 });
  }

  #secs(): number {
    return Math.floor(this.#now / 1000);
  }

  get #hostname(): string {
    return this.#o.hostname ?? 'esp-rfid';
  }
}
