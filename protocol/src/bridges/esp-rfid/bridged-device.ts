/**
 * One esp-rfid device behind the bridge (BRIDGES.md). Towards the gateway it is a native
 * controller: it holds the device's provisioning bundle, verifies every `grants.sync` and command
 * exactly as the reference controller does (openMessage, the replay window, the same reply codes),
 * and signs what it reports with the bundle's controller key. Towards the device it speaks
 * esp-rfid's JSON (esp-rfid-json.ts) on the device's own topics.
 *
 * - The desired grant set becomes the device's user list: one `adduser` (acctype 1, never 99) per
 *   tag of a grant for this device's door, with validsince/validuntil from the grant window. A tag
 *   that leaves the set (revoked, expired, blocked) is removed with `deletuid`, and the removal
 *   counts only once a `getuserlist` no longer shows it. A sync is answered `applied` only then.
 * - One command in flight per device: the next waits for the previous one's answer or timeout.
 * - Presence: the native birth/death follow the device's heartbeats (and boot messages); a device
 *   boot triggers a full resync against a fresh `getuserlist`.
 * - Nothing is ever published retained on the device's link. PINs cannot be carried: esp-rfid's
 *   user list holds tags only, so PIN credentials in a grant are ignored here.
 *
 * Lifecycle: the constructor only stores; `start()` loads state and connects natively; `stop()`
 * publishes the retained offline state and disconnects.
 */
import { EventEmitter } from 'node:events';
import type { MqttClient } from 'mqtt';
import { acceptSeq } from '../../checks.js';
import { buildMessage, newId } from '../../envelope.js';
import { privateKeyFromSeed, trustedKeys, type SigningKey, type TrustedKeys } from '../../keys.js';
import { silentLogger, type Logger } from '../../log.js';
import { connectMqtt, type MqttConnectOptions } from '../../mqtt/connect.js';
import type { AccessDecision, BodyOf, EvtBody, Message, ProvisioningBundle, ReplyBody } from '../../schemas.js';
import { controllerTopic } from '../../topics.js';
import { decideAccess, holdGrant } from '../../controller/decide.js';
import { openInbound } from '../../controller/inbound.js';
import { unrefTimer } from '../../controller/timer.js';
import type { ControllerStateStore, PersistedState } from '../../controller/state-store.js';
import { accessGranted, ACCTYPE_ALWAYS, cmdTopic, parseEspRfidMessage, type EspRfidCommand, type EspRfidMessage, type EspRfidUser } from './esp-rfid-json.js';

export const BRIDGE_FW = 'sp-esp-rfid-bridge/0.1.0';
/** The label prefix of users the bridge puts on a device. */
export const USER_PREFIX = 'sp:';
/** Heartbeat `time` further than this from the bridge's clock: the device clock is not trusted. */
const DEVICE_CLOCK_LIMIT_MS = 60_000;

export interface EspRfidDeviceConfig {
  /** The device's base MQTT topic (TOPIC in its web UI, including any auto-topic suffix). */
  topic: string;
  /** The device's IP address, as it checks `doorip`. */
  doorip: string;
  /** The door ref (from the bundle) this device's relay drives. */
  door: string;
  /** The heartbeat interval set on the device, in seconds (esp-rfid's default is 180). */
  heartbeatSeconds?: number;
  /** How the device writes tag UIDs: esp-rfid readers usually give lower-case hex. */
  uidCase?: 'lower' | 'upper';
  /** Leave users on the device that the bridge did not put there (labels without `sp:`). */
  keepForeignUsers?: boolean;
}

export interface BridgedDeviceOptions {
  bundle: ProvisioningBundle;
  device: EspRfidDeviceConfig;
  /** The MQTT client on the device's broker, shared by all devices of one bridge. */
  deviceClient: MqttClient;
  store: ControllerStateStore;
  now?: () => number;
  logger?: Logger;
  /** How long a device command may go unanswered; default 5 s. */
  commandTimeoutMs?: number;
  /** `getuserlist` has no end marker: the list is complete after this long without a further `userfile`; default 1.5 s. */
  listSettleMs?: number;
  /** …and a device that sends no `userfile` at all within this long holds no users; default 5 s. */
  listFirstMs?: number;
  /** Pause between failed reconcile rounds, doubling to 60 s; default 2 s. */
  retryMs?: number;
  /** After this many failed rounds in a row the pending sync is answered `rejected` `device-unconfirmed` (retries go on); default 3. */
  reportAfterFailures?: number;
  /** A device silent this long is offline; default 2.5 × heartbeatSeconds. */
  heartbeatTimeoutMs?: number;
  mqtt?: Omit<Partial<MqttConnectOptions>, 'url' | 'username' | 'password' | 'will'>;
}

/** What the bridge keeps across restarts: the reference controller's state plus the desired version. */
export interface BridgeState extends PersistedState {
  /** Version of `grants`, the last accepted desired set; `appliedVersion` is the one the device was proven to hold. */
  desiredVersion: number;
}

export interface BridgedDeviceEvents {
  connected: [];
  online: [];
  offline: [];
  command: [cmd: EspRfidCommand];
  reconciled: [version: number];
  'reconcile-failed': [detail: string];
  event: [body: EvtBody];
  rejected: [code: string, detail: string];
}

interface InFlight {
  cmd: EspRfidCommand;
  resolve: (users?: EspRfidUser[]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  users: EspRfidUser[];
}

interface Queued {
  cmd: EspRfidCommand;
  resolve: (users?: EspRfidUser[]) => void;
  reject: (err: Error) => void;
}

/** One device user the desired set calls for. */
export interface DesiredUser {
  uid: string;
  user: string;
  validsince: number;
  validuntil: number;
}

export class BridgedDevice extends EventEmitter<BridgedDeviceEvents> {
  readonly id: string;
  readonly #o: BridgedDeviceOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #key: SigningKey;
  readonly #gatewayKeys: TrustedKeys;
  #state!: BridgeState;
  #boot = '';
  #evtSeq = 0;
  #native: MqttClient | undefined;
  #handed = new Set<string>();
  #stopped = true;
  // Device side
  #online = false;
  #clockSynced = false;
  #silenceTimer: NodeJS.Timeout | undefined;
  #queue: Queued[] = [];
  #inFlight: InFlight | undefined;
  #reconciling = false;
  #dirty = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryDelay = 0;
  #failedRounds = 0;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** The id of the newest sync not yet answered `applied`. */
  #syncRef: string | undefined;

  constructor(o: BridgedDeviceOptions) {
    super();
    const key = o.bundle.controllerKey;
    if (!key) throw new TypeError('the bridge needs controllerKey in each device bundle');
    if (o.bundle.doors && !o.bundle.doors.some((d) => d.ref === o.device.door)) throw new RangeError(`door ${o.device.door} is not in the bundle of ${o.bundle.controllerId}`);
    this.#o = o;
    this.id = o.bundle.controllerId;
    this.#log = o.logger ?? silentLogger;
    this.#now = o.now ?? Date.now;
    this.#key = { kid: o.bundle.controllerKid, key: privateKeyFromSeed(key.privateKey) };
    this.#gatewayKeys = trustedKeys(o.bundle.gatewayKeys);
  }

  get online(): boolean {
    return this.#online;
  }
  get appliedVersion(): number {
    return this.#state.appliedVersion;
  }
  get desiredVersion(): number {
    return this.#state.desiredVersion;
  }
  get connected(): boolean {
    return this.#native?.connected ?? false;
  }
  /** Nothing queued, in flight or being reconciled for this device. */
  get idle(): boolean {
    return !this.#reconciling && !this.#inFlight && this.#queue.length === 0;
  }
  get deviceTopic(): string {
    return this.#o.device.topic;
  }

  // ── Lifecycle ────────────────────────────────────────────────────────────────────────────────

  async start(): Promise<void> {
    const loaded = this.#o.store.load() as BridgeState | undefined;
    if (loaded && loaded.ctrl !== this.id) throw new Error(`state file belongs to ${loaded.ctrl}, not ${this.id}`);
    this.#state = loaded
      ? { ...loaded, desiredVersion: loaded.desiredVersion ?? loaded.appliedVersion }
      : { format: 1, ctrl: this.id, lastSeq: 0, recentSeqs: [], appliedVersion: 0, desiredVersion: 0, grants: [], backlog: [] };
    this.#boot = newId(this.#now());
    this.#evtSeq = 0;
    this.#stopped = false;
    this.#scheduleExpiry();
    const connected = new Promise<void>((resolve) => this.once('connected', resolve));
    this.#connect();
    await connected;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of [this.#silenceTimer, this.#retryTimer, this.#expiryTimer]) clearTimeout(t);
    this.#failAll(new Error('bridge stopping'));
    const client = this.#native;
    this.#native = undefined;
    if (!client) return;
    if (client.connected) {
      try {
        await client.unsubscribeAsync([controllerTopic(this.id, 'sync'), controllerTopic(this.id, 'cmd')]);
        await client.publishAsync(controllerTopic(this.id, 'state'), JSON.stringify(this.#deathMessage()), { qos: 1, retain: true });
      } catch (err) {
        this.#log.warn('could not publish offline state', { ctrl: this.id, err: (err as Error).message });
      }
    }
    await client.endAsync();
  }

  // ── Native side (towards the gateway) ─────────────────────────────────────────────────────────

  #connect(): void {
    const b = this.#o.bundle;
    const client = connectMqtt({
      ...this.#o.mqtt,
      url: b.mqtt.url,
      username: b.mqtt.username,
      password: b.mqtt.password,
      clientId: this.id,
      clean: true,
      resubscribe: false,
      will: { topic: controllerTopic(this.id, 'state'), payload: Buffer.from(JSON.stringify(this.#deathMessage())), qos: 1, retain: true },
    });
    this.#native = client;
    client.on('connect', () => void this.#onConnect(client));
    client.on('message', (topic, payload) => this.#onNative(topic, payload));
    client.on('error', (err) => this.#log.warn('mqtt error (gateway side)', { ctrl: this.id, err: err.message }));
  }

  async #onConnect(client: MqttClient): Promise<void> {
    try {
      await client.subscribeAsync([controllerTopic(this.id, 'sync'), controllerTopic(this.id, 'cmd')], { qos: 1 });
      await this.#publishPresence();
    } catch (err) {
      this.#log.warn('announce failed', { ctrl: this.id, err: (err as Error).message });
      return;
    }
    this.#pump();
    this.emit('connected');
  }

  /** The device's presence as the native retained state: birth while it is heard, death otherwise. */
  async #publishPresence(): Promise<void> {
    const client = this.#native;
    if (!client?.connected) return;
    const msg = this.#online ? this.#birthMessage() : this.#deathMessage();
    await client.publishAsync(controllerTopic(this.id, 'state'), JSON.stringify(msg), { qos: 1, retain: true });
  }

  #onNative(topic: string, payload: Buffer): void {
    const opened = openInbound(topic, payload, { ctrl: this.id, keys: this.#gatewayKeys, now: this.#now(), lastSeq: this.#state.lastSeq, recentSeqs: this.#state.recentSeqs });
    if (!opened) return;
    if (!opened.ok) {
      if (opened.seq !== undefined && opened.id) {
        this.#acceptSeq(opened.seq);
        this.#save();
        this.#reply({ ref: opened.id, status: 'rejected', code: 'bad-body' });
      }
      this.#log.warn('message rejected', { ctrl: this.id, code: opened.code, detail: opened.detail });
      this.emit('rejected', opened.code, opened.detail);
      this.#emitEvent({ kind: 'rejected', code: opened.code, ...(opened.id ? { ref: opened.id } : {}), at: this.#now() });
      return;
    }
    const msg = opened.message;
    this.#acceptSeq(msg.seq);
    this.#save();
    switch (msg.type) {
      case 'grants.sync':
        this.#onSync(msg.id, msg.body);
        return;
      case 'door.pulse':
      case 'door.hold':
      case 'door.release':
      case 'ctrl.ping':
      case 'access.check':
        this.#onCommand(msg);
        return;
      default:
    }
  }

  #acceptSeq(seq: number): void {
    const w = acceptSeq({ highest: this.#state.lastSeq, recent: this.#state.recentSeqs }, seq);
    this.#state.lastSeq = w.highest;
    this.#state.recentSeqs = [...w.recent];
  }

  #onSync(ref: string, body: BodyOf<'grants.sync'>): void {
    if (body.version <= this.#state.appliedVersion || body.version < this.#state.desiredVersion) {
      this.#reply({ ref, status: 'stale', appliedVersion: this.#state.appliedVersion });
      return;
    }
    const doors = new Set((this.#o.bundle.doors ?? [{ ref: this.#o.device.door }]).map((d) => d.ref));
    for (const g of body.grants) {
      const code = g.notAfter <= g.notBefore ? 'invalid-window' : g.doors.some((d) => !doors.has(d)) ? 'unknown-door' : undefined;
      if (code) {
        this.#reply({ ref, status: 'rejected', code, appliedVersion: this.#state.appliedVersion });
        this.emit('rejected', code, `sync v${body.version}`);
        return;
      }
    }
    if (body.grants.some((g) => g.credentials.some((c) => c.kind === 'pin'))) {
      this.#log.warn('PIN credentials cannot be carried to an esp-rfid device; only tags are', { ctrl: this.id, version: body.version });
    }
    // The same version again (a gateway retry): keep working on it, answer the newest id.
    this.#syncRef = ref;
    if (body.version > this.#state.desiredVersion) {
      this.#state.grants = body.grants.map(holdGrant);
      this.#state.desiredVersion = body.version;
      this.#save();
      this.#scheduleExpiry();
    }
    this.#log.info('grants accepted; reconciling the device', { ctrl: this.id, version: body.version, grants: body.grants.length });
    this.#requestReconcile();
  }

  #onCommand(msg: Message<'door.pulse' | 'door.hold' | 'door.release' | 'ctrl.ping' | 'access.check'>): void {
    const ref = msg.id;
    switch (msg.type) {
      case 'ctrl.ping':
        return this.#reply({ ref, status: 'done' });
      case 'access.check':
        return this.#reply({ ref, status: 'done', decision: this.#decide(msg.body.credential.kind === 'tag' ? msg.body.credential.uid : undefined, msg.body.door) });
      case 'door.hold':
      case 'door.release':
        // esp-rfid has no remote hold: only a timed opendoor.
        return this.#reply({ ref, status: 'rejected', code: 'unsupported' });
      case 'door.pulse': {
        if (msg.body.door !== this.#o.device.door) return this.#reply({ ref, status: 'rejected', code: 'unknown-door' });
        if (!this.#online) return this.#reply({ ref, status: 'rejected', code: 'device-offline' });
        // A person is waiting at the door: the pulse goes ahead of any user-list work.
        this.#send({ cmd: 'opendoor', doorip: this.#o.device.doorip }, true).then(
          () => {
            this.#emitEvent({ kind: 'door', door: this.#o.device.door, state: 'unlocked', cause: 'pulse', at: this.#now() });
            this.#reply({ ref, status: 'done' });
          },
          (err: unknown) => {
            this.#log.warn('opendoor not acknowledged', { ctrl: this.id, err: (err as Error).message });
            this.#reply({ ref, status: 'rejected', code: 'device-timeout' });
          },
        );
        return;
      }
    }
  }

  #decide(uid: string | undefined, door: string): AccessDecision {
    if (uid === undefined) return { result: 'denied', reason: 'unknown' };
    return decideAccess({ grants: this.#state.grants, expired: [], door, credential: { kind: 'tag', uid }, now: this.#now(), clockSynced: true });
  }

  // ── Device side ──────────────────────────────────────────────────────────────────────────────

  /** A message on the device's `TOPIC/send` (the bridge routes it here by topic). */
  handleDeviceMessage(payload: Buffer): void {
    if (this.#stopped) return;
    const m = parseEspRfidMessage(payload);
    switch (m.kind) {
      case 'boot':
        this.#heard(m);
        // The device may have lost or kept users: whatever it holds now must match the desired set.
        this.#log.info('device booted; full resync', { ctrl: this.id });
        if (this.#inFlight) this.#finishInFlight(new Error('device rebooted'));
        this.#requestReconcile();
        return;
      case 'heartbeat':
        this.#heard(m);
        return;
      case 'ack':
        if (this.#inFlight?.cmd.cmd === m.of) this.#finishInFlight();
        return;
      case 'userfile':
        if (this.#inFlight?.cmd.cmd === 'getuserlist') {
          this.#inFlight.users.push(m.user);
          this.#armListSettle();
        }
        return;
      case 'access':
        this.#onAccess(m);
        return;
      default:
    }
  }

  #heard(m: { time: number | undefined }): void {
    if (m.time !== undefined) this.#clockSynced = Math.abs(m.time * 1000 - this.#now()) <= DEVICE_CLOCK_LIMIT_MS;
    clearTimeout(this.#silenceTimer);
    const timeout = this.#o.heartbeatTimeoutMs ?? 2.5 * (this.#o.device.heartbeatSeconds ?? 180) * 1000;
    this.#silenceTimer = unrefTimer(timeout, () => this.#wentSilent());
    if (!this.#online) {
      this.#online = true;
      this.#log.info('device online', { ctrl: this.id });
      void this.#publishPresence().catch(() => undefined);
      this.emit('online');
      this.#requestReconcile();
    }
  }

  #wentSilent(): void {
    if (!this.#online) return;
    this.#online = false;
    this.#log.warn('device silent; reporting it offline', { ctrl: this.id });
    this.#failAll(new Error('device offline'));
    void this.#publishPresence().catch(() => undefined);
    this.emit('offline');
  }

  #onAccess(m: Extract<EspRfidMessage, { kind: 'access' }>): void {
    // The answer to our opendoor: esp-rfid reports it as an access by the user "MQTT" with no tag.
    if (this.#inFlight?.cmd.cmd === 'opendoor' && (m.uid === '' || m.username === 'MQTT')) {
      this.#finishInFlight();
      return;
    }
    const uid = m.uid.toUpperCase();
    if (!/^(?:[0-9A-F]{2}){2,16}$/.test(uid)) {
      this.#log.warn('access event with an unusable uid ignored', { ctrl: this.id });
      return;
    }
    const door = this.#o.device.door;
    const ours = this.#decide(uid, door);
    const granted = accessGranted(m);
    // The device decided, not the bridge: the result is the device's. The reason and grant are the
    // bridge's reading of the desired set; a grant the bridge would not give is reported as such.
    const decision: AccessDecision = granted
      ? ours.result === 'granted'
        ? ours
        : { result: 'granted', reason: ours.reason === 'grant' ? 'unknown' : ours.reason, ...(ours.grantId ? { grantId: ours.grantId } : {}) }
      : ours.result === 'denied'
        ? ours
        : { result: 'denied', reason: 'unknown' };
    this.#emitEvent({ kind: 'access', door, credential: { kind: 'tag', uid }, ...decision, at: this.#now() });
    if (granted && ours.result !== 'granted') {
      // The device opened for a tag the desired set does not hold: make its list match again.
      this.#log.warn('device granted a tag outside the desired set; resyncing', { ctrl: this.id });
      this.#requestReconcile();
    }
  }

  // ── One command in flight ────────────────────────────────────────────────────────────────────

  #send(cmd: EspRfidCommand, urgent = false): Promise<EspRfidUser[] | undefined> {
    if (cmd.cmd === 'adduser' && cmd.acctype !== ACCTYPE_ALWAYS) return Promise.reject(new Error('only acctype 1 is ever sent'));
    return new Promise((resolve, reject) => {
      const q = { cmd, resolve, reject };
      if (urgent) this.#queue.unshift(q);
      else this.#queue.push(q);
      this.#next();
    });
  }

  #next(): void {
    if (this.#inFlight || this.#stopped) return;
    const q = this.#queue.shift();
    if (!q) return;
    const client = this.#o.deviceClient;
    const timeoutMs = this.#o.commandTimeoutMs ?? 5_000;
    const f: InFlight = { ...q, users: [], timer: unrefTimer(timeoutMs, () => this.#finishInFlight(new Error(`${q.cmd.cmd} not answered in ${timeoutMs} ms`))) };
    this.#inFlight = f;
    // An empty list is answered by silence: only a long first wait tells it from a slow device.
    if (q.cmd.cmd === 'getuserlist') this.#armListSettle(this.#o.listFirstMs ?? 5_000);
    this.emit('command', q.cmd);
    this.#log.debug('device command', { ctrl: this.id, cmd: q.cmd.cmd });
    // Never retained: a retained command would be replayed to the device at every reconnect.
    client.publish(cmdTopic(this.#o.device.topic), JSON.stringify(q.cmd), { qos: 1, retain: false }, (err) => {
      if (err && this.#inFlight === f) this.#finishInFlight(err);
    });
  }

  /** `getuserlist` has no end marker: it is complete once no `userfile` came for listSettleMs. */
  #armListSettle(ms: number = this.#o.listSettleMs ?? 1_500): void {
    const f = this.#inFlight;
    if (!f) return;
    clearTimeout(f.timer);
    f.timer = unrefTimer(ms, () => this.#finishInFlight());
  }

  #finishInFlight(err?: Error): void {
    const f = this.#inFlight;
    if (!f) return;
    clearTimeout(f.timer);
    this.#inFlight = undefined;
    if (err) f.reject(err);
    else f.resolve(f.cmd.cmd === 'getuserlist' ? f.users : undefined);
    this.#next();
  }

  #failAll(err: Error): void {
    const queued = this.#queue.splice(0);
    for (const q of queued) q.reject(err);
    this.#finishInFlight(err);
  }

  // ── Reconcile: make the device's list match the desired set, and prove it ────────────────────

  /** The users the desired set calls for on this device's door now, by device uid. */
  desiredUsers(now: number = this.#now()): Map<string, DesiredUser> {
    const out = new Map<string, DesiredUser>();
    const door = this.#o.device.door;
    for (const g of this.#state.grants) {
      if (!g.doors.includes(door) || g.notAfter <= now) continue;
      for (const tag of g.tags) {
        const uid = this.#deviceUid(tag);
        const since = Math.floor(g.notBefore / 1000);
        const until = Math.floor(g.notAfter / 1000);
        const prev = out.get(uid);
        // Several grants for one tag: the device holds one window, the widest of them.
        out.set(uid, prev ? { ...prev, validsince: Math.min(prev.validsince, since), validuntil: Math.max(prev.validuntil, until) } : { uid, user: `${USER_PREFIX}${g.incident}`.slice(0, 32), validsince: since, validuntil: until });
      }
    }
    return out;
  }

  #deviceUid(tag: string): string {
    return (this.#o.device.uidCase ?? 'lower') === 'lower' ? tag.toLowerCase() : tag.toUpperCase();
  }

  #requestReconcile(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (!this.#reconciling) void this.#reconcileLoop();
  }

  async #reconcileLoop(): Promise<void> {
    this.#reconciling = true;
    try {
      while (this.#dirty && !this.#stopped && this.#online) {
        this.#dirty = false;
        const version = this.#state.desiredVersion;
        try {
          await this.#reconcileOnce();
        } catch (err) {
          const detail = (err as Error).message;
          this.#log.warn('device reconcile failed; retrying', { ctrl: this.id, detail });
          this.emit('reconcile-failed', detail);
          this.#failedRounds += 1;
          if (this.#failedRounds === (this.#o.reportAfterFailures ?? 3) && this.#syncRef) {
            // Tell the gateway the set is not proven on the device (the dispatcher sees the delivery
            // fail) rather than stay silent; retries go on, and a later proof answers `applied`.
            this.#reply({ ref: this.#syncRef, status: 'rejected', code: 'device-unconfirmed', appliedVersion: this.#state.appliedVersion });
          }
          // Something new came meanwhile (a boot, a sync): start over at once.
          if (this.#dirty) continue;
          this.#retryDelay = Math.min(this.#retryDelay === 0 ? (this.#o.retryMs ?? 2_000) : this.#retryDelay * 2, 60_000);
          this.#retryTimer = unrefTimer(this.#retryDelay, () => this.#requestReconcile());
          return;
        }
        this.#retryDelay = 0;
        this.#failedRounds = 0;
        if (this.#dirty) continue;
        if (version > this.#state.appliedVersion) {
          this.#state.appliedVersion = version;
          this.#save();
          if (this.#syncRef) this.#reply({ ref: this.#syncRef, status: 'applied', appliedVersion: version });
          this.#syncRef = undefined;
          this.#log.info('device holds the desired set', { ctrl: this.id, version });
        }
        this.emit('reconciled', version);
      }
    } finally {
      this.#reconciling = false;
    }
  }

  /** One round: read the device's list, change what differs, read it again to prove it. */
  async #reconcileOnce(): Promise<void> {
    const doorip = this.#o.device.doorip;
    const before = await this.#listUsers();
    const desired = this.desiredUsers();
    const removable = (u: EspRfidUser) => !desired.has(u.uid) && (!this.#o.device.keepForeignUsers || u.user.startsWith(USER_PREFIX));
    const toDelete = [...before.values()].filter(removable).map((u) => u.uid);
    const toAdd = [...desired.values()].filter((d) => !sameUser(before.get(d.uid), d));
    for (const uid of toDelete) await this.#send({ cmd: 'deletuid', doorip, uid });
    for (const d of toAdd) {
      await this.#send({ cmd: 'adduser', doorip, uid: d.uid, user: d.user, acctype: ACCTYPE_ALWAYS, validsince: String(d.validsince), validuntil: String(d.validuntil) });
    }
    if (toDelete.length === 0 && toAdd.length === 0) return;
    // Proof: a revocation counts only when the device's own list no longer shows the tag.
    const after = await this.#listUsers();
    const stillThere = toDelete.filter((uid) => after.has(uid));
    const missing = [...desired.values()].filter((d) => !sameUser(after.get(d.uid), d)).map((d) => d.uid);
    if (stillThere.length > 0 || missing.length > 0) {
      throw new Error(`device list does not match: ${stillThere.length} not removed, ${missing.length} not added`);
    }
    if (toDelete.length > 0) this.#log.info('removal proven by getuserlist', { ctrl: this.id, removed: toDelete.length });
  }

  async #listUsers(): Promise<Map<string, EspRfidUser>> {
    const users = (await this.#send({ cmd: 'getuserlist', doorip: this.#o.device.doorip })) ?? [];
    return new Map(users.map((u) => [u.uid, u]));
  }

  // ── Expiry: a grant that ends leaves the device, whatever its firmware does with validuntil ──

  #scheduleExpiry(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    if (this.#stopped) return;
    const now = this.#now();
    const ends = this.#state.grants.map((g) => g.notAfter).filter((t) => t > now);
    if (ends.length === 0) return;
    this.#expiryTimer = unrefTimer(Math.min(...ends) - now, () => {
      this.#expiryTimer = undefined;
      this.#log.info('a grant ended; removing its tags from the device', { ctrl: this.id });
      this.#requestReconcile();
      this.#scheduleExpiry();
    });
  }

  // ── Outgoing (native) ───────────────────────────────────────────────────────────────────────

  #emitEvent(body: EvtBody): void {
    const msg = buildMessage({ type: 'evt', ctrl: this.id, seq: ++this.#evtSeq, boot: this.#boot, body, key: this.#key, iat: this.#now() });
    this.#state.backlog.push(JSON.stringify(msg));
    this.#save();
    this.emit('event', body);
    this.#pump();
  }

  /** Hand every unsent backlog event to the client in order; each leaves the backlog on PUBACK. */
  #pump(): void {
    const client = this.#native;
    if (!client?.connected) return;
    for (const payload of this.#state.backlog) {
      if (this.#handed.has(payload)) continue;
      this.#handed.add(payload);
      client.publish(controllerTopic(this.id, 'evt'), payload, { qos: 1 }, (err) => {
        if (err) {
          this.#handed.delete(payload);
          return;
        }
        const i = this.#state.backlog.indexOf(payload);
        if (i >= 0) {
          this.#state.backlog.splice(i, 1);
          this.#save();
        }
      });
    }
  }

  #reply(body: ReplyBody): void {
    const msg = buildMessage({ type: 'reply', ctrl: this.id, seq: this.#evtSeq, boot: this.#boot, body, key: this.#key, iat: this.#now() });
    this.#native?.publish(controllerTopic(this.id, 'reply'), JSON.stringify(msg), { qos: 1 });
  }

  #birthMessage(): Message<'state'> {
    return buildMessage({
      type: 'state',
      ctrl: this.id,
      seq: this.#evtSeq,
      boot: this.#boot,
      body: {
        online: true,
        fw: BRIDGE_FW,
        vendor: 'esp-rfid (bridged)',
        appliedVersion: this.#state.appliedVersion,
        lastSeq: this.#state.lastSeq,
        clock: this.#now(),
        clockSynced: this.#clockSynced,
        doors: [{ ref: this.#o.device.door, locked: true, open: false }],
      },
      key: this.#key,
      iat: this.#now(),
    });
  }

  #deathMessage(): Message<'state'> {
    return buildMessage({ type: 'state', ctrl: this.id, seq: this.#evtSeq, boot: this.#boot, body: { online: false }, key: this.#key, iat: this.#now() });
  }

  #save(): void {
    this.#o.store.save(this.#state);
  }
}

function sameUser(have: EspRfidUser | undefined, want: DesiredUser): boolean {
  return have !== undefined && have.acctype === ACCTYPE_ALWAYS && have.user === want.user && have.validsince === want.validsince && have.validuntil === want.validuntil;
}

