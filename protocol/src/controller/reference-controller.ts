/**
 * The reference controller: a complete implementation of the controller side of PROTOCOL.md, with
 * simulated doors. Vendors read it beside the spec; the simulator runs fleets of it; the
 * conformance suite is tested against it.
 *
 * Lifecycle: the constructor only stores; `start()` loads persisted state and connects; `stop()`
 * says goodbye (retained offline state) and disconnects; `crash()` drops the connection without a
 * goodbye so the broker publishes the last will.
 */
import { EventEmitter } from 'node:events';
import type { MqttClient } from 'mqtt';
import { acceptSeq } from '../checks.js';
import { openInbound } from './inbound.js';
import { MAX_TIMER_MS, unrefTimer } from './timer.js';
import { buildMessage, newId } from '../envelope.js';
import { privateKeyFromSeed, trustedKeys, type SigningKey, type TrustedKeys } from '../keys.js';
import { silentLogger, type Logger } from '../log.js';
import { checkOfflineCode, offlineCodeWindow, OFFLINE_CODE_SKEW_WINDOWS } from '../offline-code.js';
import { connectMqtt, type MqttConnectOptions } from '../mqtt/connect.js';
import type { AccessDecision, BodyOf, EvtBody, Message, ProvisioningBundle, ReplyBody, StateOnlineBody } from '../schemas.js';
import { controllerTopic, MAX_HOLD_MS } from '../topics.js';
import type { RejectCode, ReplyCode } from '../codes.js';
import { decideAccess, holdGrant, type HeldGrant, type Presented } from './decide.js';
import type { ControllerStateStore, PersistedState } from './state-store.js';

export const REFERENCE_FW = 'sp-reference/0.1.0';

export interface DoorConfig {
  ref: string;
  /** How long a granted credential or a pulse leaves the door unlocked; default 5 s. */
  unlockSeconds?: number;
  /** After this long open, the door reports `held`; default 60 s. */
  heldOpenSeconds?: number;
}

export interface ReferenceControllerOptions {
  bundle: ProvisioningBundle;
  /** Doors this controller drives; defaults to the bundle's doors. */
  doors?: DoorConfig[];
  store: ControllerStateStore;
  /** The controller's clock (ms); defaults to Date.now. */
  now?: () => number;
  /** Whether the clock is trusted (NTP/RTC). A controller without one denies credentials. */
  clockSynced?: boolean;
  vendor?: string;
  /** Extra mqtt.js options (protocolVersion 4 or 5, reconnectPeriod, keepalive …). */
  mqtt?: Omit<Partial<MqttConnectOptions>, 'url' | 'username' | 'password' | 'will'>;
  logger?: Logger;
  /** At most this many `rejected` events a minute; the rest are counted in `suppressed`. */
  rejectReportsPerMinute?: number;
  /** How long an expired grant is remembered so its tag reads `expired` rather than `unknown`. */
  expiredMemoryMs?: number;
}

interface Door {
  ref: string;
  unlockMs: number;
  heldOpenMs: number;
  locked: boolean;
  open: boolean;
  holdUntil: number | undefined;
  relockTimer: NodeJS.Timeout | undefined;
  heldTimer: NodeJS.Timeout | undefined;
}

export interface ControllerEvents {
  connected: [];
  applied: [version: number];
  expired: [grantIds: string[]];
  event: [body: EvtBody];
  acked: [boot: string, seq: number];
  rejected: [code: RejectCode | ReplyCode, detail: string];
  error: [err: Error];
}

const PIN_FAILURES_BEFORE_LOCKOUT = 5;
const PIN_LOCKOUT_MS = 60_000;

export class ReferenceController extends EventEmitter<ControllerEvents> {
  readonly id: string;
  readonly #o: ReferenceControllerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #key: SigningKey;
  readonly #gatewayKeys: TrustedKeys;
  readonly #doors = new Map<string, Door>();
  #state!: PersistedState;
  #boot = '';
  #evtSeq = 0;
  #client: MqttClient | undefined;
  #generation = 0;
  #handed = new Set<string>();
  #expired: { grant: HeldGrant; until: number }[] = [];
  #expiryTimer: NodeJS.Timeout | undefined;
  #pinFailures = new Map<string, number[]>();
  #rejectWindow = { start: 0, count: 0, suppressed: 0 };
  #stopped = true;
  /** PROTOCOL §2.6: online from the birth's PUBACK until the connection ends; offline otherwise. */
  #announced = false;

  constructor(o: ReferenceControllerOptions) {
    super();
    const key = o.bundle.controllerKey;
    if (!key) throw new TypeError('the reference controller needs controllerKey in its bundle');
    this.#o = o;
    this.id = o.bundle.controllerId;
    this.#log = o.logger ?? silentLogger;
    this.#now = o.now ?? Date.now;
    this.#key = { kid: o.bundle.controllerKid, key: privateKeyFromSeed(key.privateKey) };
    this.#gatewayKeys = trustedKeys(o.bundle.gatewayKeys);
    const doors: DoorConfig[] = o.doors ?? o.bundle.doors?.map((d) => ({ ref: d.ref })) ?? [];
    for (const d of doors) {
      this.#doors.set(d.ref, {
        ref: d.ref,
        unlockMs: (d.unlockSeconds ?? 5) * 1000,
        heldOpenMs: (d.heldOpenSeconds ?? 60) * 1000,
        locked: true,
        open: false,
        holdUntil: undefined,
        relockTimer: undefined,
        heldTimer: undefined,
      });
    }
  }

  // ── Lifecycle ────────────────────────────────────────────────────────────────────────────────

  /**
   * Load persisted state, pick a new boot id, connect. Resolves once connected and announced, or
   * at once with `waitForConnection: false`: a controller decides locally with no broker at all.
   */
  async start({ waitForConnection = true }: { waitForConnection?: boolean } = {}): Promise<void> {
    const loaded = this.#o.store.load();
    if (loaded && loaded.ctrl !== this.id) throw new Error(`state file belongs to ${loaded.ctrl}, not ${this.id}`);
    this.#state = loaded ?? { format: 1, ctrl: this.id, lastSeq: 0, recentSeqs: [], appliedVersion: 0, grants: [], backlog: [] };
    this.#boot = newId(this.#now());
    this.#evtSeq = 0;
    this.#stopped = false;
    this.#pruneExpired();
    this.#scheduleExpiry();
    const connected = new Promise<void>((resolve) => this.once('connected', resolve));
    this.#connect();
    if (waitForConnection) await connected;
  }

  /** Graceful stop: publish the retained offline state, then disconnect. Persisted state stays. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clearTimers();
    const client = this.#client;
    this.#client = undefined;
    this.#announced = false;
    if (!client) return;
    if (client.connected) {
      try {
        // Stop taking commands before saying goodbye; an ack written after end() would throw.
        await client.unsubscribeAsync([controllerTopic(this.id, 'sync'), controllerTopic(this.id, 'cmd')]);
        await client.publishAsync(controllerTopic(this.id, 'state'), JSON.stringify(this.#deathMessage()), { qos: 1, retain: true });
      } catch (err) {
        this.#log.warn('could not publish offline state', { err: (err as Error).message });
      }
    }
    await client.endAsync();
  }

  /** Drop the connection without DISCONNECT, as a power cut would: the broker sends the will. */
  crash(): void {
    this.#stopped = true;
    this.#clearTimers();
    this.#dropConnection();
  }

  /** Simulate a network outage: the connection drops (will published) but the controller runs on. */
  goOffline(): void {
    this.#dropConnection();
  }

  #dropConnection(): void {
    this.#announced = false;
    const client = this.#client;
    if (!client) return;
    this.#client = undefined;
    this.#generation += 1;
    // Cut the socket first: no DISCONNECT goes out (so the broker sends the will) and nothing
    // more is written, not even an ack for a message that was already on its way in.
    client.removeAllListeners('message');
    client.stream?.destroy();
    client.end(true);
  }

  /** End a simulated outage: reconnect, announce, and backfill the events made meanwhile. */
  async goOnline(): Promise<void> {
    if (this.#client || this.#stopped) return;
    const connected = new Promise<void>((resolve) => this.once('connected', resolve));
    this.#connect();
    await connected;
  }

  // ── What a test, the simulator or a UI can look at ─────────────────────────────────────────

  get boot(): string {
    return this.#boot;
  }
  get appliedVersion(): number {
    return this.#state.appliedVersion;
  }
  get lastSeq(): number {
    return this.#state.lastSeq;
  }
  get grants(): readonly HeldGrant[] {
    return this.#state.grants;
  }
  get backlogSize(): number {
    return this.#state.backlog.length;
  }
  get connected(): boolean {
    return this.#client?.connected ?? false;
  }
  /** Online in the sense of PROTOCOL §2.6: connected and announced (birth acknowledged). */
  get online(): boolean {
    return this.#announced && this.connected;
  }
  /** The live MQTT client (tests read its socket to check TCP_NODELAY). */
  get mqttClient(): MqttClient | undefined {
    return this.#client;
  }
  doorStates(): { ref: string; locked: boolean; open: boolean }[] {
    return [...this.#doors.values()].map((d) => ({ ref: d.ref, locked: d.locked, open: d.open }));
  }

  // ── Simulated hardware ──────────────────────────────────────────────────────────────────────

  /** A tag held to the reader of `door`. Decides locally, unlocks if granted, reports it. */
  presentTag(door: string, uid: string): AccessDecision {
    const normal = uid.toUpperCase();
    // A reader yields whole bytes of hex; anything else is a broken reader, not a credential.
    if (!/^(?:[0-9A-F]{2}){2,16}$/.test(normal)) throw new RangeError(`tag uid must be 2–16 bytes of hex, got ${JSON.stringify(uid)}`);
    this.#door(door);
    return this.#present(door, { kind: 'tag', uid: normal });
  }

  /** A PIN typed on the keypad of `door`. Five wrong PINs in a minute lock the keypad for a minute. */
  enterPin(door: string, pin: string): AccessDecision {
    this.#door(door);
    const now = this.#now();
    const recent = (this.#pinFailures.get(door) ?? []).filter((t) => now - t < PIN_LOCKOUT_MS);
    if (recent.length >= PIN_FAILURES_BEFORE_LOCKOUT) {
      const decision: AccessDecision = { result: 'denied', reason: 'lockout' };
      this.#emitEvent({ kind: 'access', door, credential: { kind: 'pin' }, ...decision, at: now });
      return decision;
    }
    const decision = this.#present(door, { kind: 'pin', pin });
    if (decision.result === 'denied') this.#pinFailures.set(door, [...recent, now]);
    else this.#pinFailures.delete(door);
    return decision;
  }

  /**
   * An offline emergency code typed on the keypad of `door` (PROTOCOL §2.6: `*` then 8 digits;
   * pass the digits). Accepted only while offline, once per (door, window); wrong codes count
   * towards the keypad lockout like wrong PINs. The event never carries the digits.
   */
  presentCode(door: string, digits: string): AccessDecision {
    this.#door(door);
    const now = this.#now();
    const recent = (this.#pinFailures.get(door) ?? []).filter((t) => now - t < PIN_LOCKOUT_MS);
    const report = (decision: AccessDecision, window?: number): AccessDecision => {
      this.#emitEvent({ kind: 'access', door, credential: { kind: 'offline-code', ...(window !== undefined ? { window } : {}) }, ...decision, at: now });
      return decision;
    };
    if (recent.length >= PIN_FAILURES_BEFORE_LOCKOUT) return report({ result: 'denied', reason: 'lockout' });
    const deny = (reason: AccessDecision['reason'], window?: number): AccessDecision => {
      this.#pinFailures.set(door, [...recent, now]);
      return report({ result: 'denied', reason }, window);
    };
    if (!(this.#o.clockSynced ?? true)) return deny('clock-unsafe');
    // While the gateway can reach the controller, it opens doors itself and audits them live.
    if (this.online) return deny('controller-online');
    const secret = this.#o.bundle.offlineSecret;
    if (secret === undefined) return deny('unknown');
    const m = checkOfflineCode({ secret, ctrl: this.id, door, digits, now });
    if (m.match === 'none') return deny('unknown');
    if (m.match === 'expired') return deny('expired', m.window);
    const oldest = offlineCodeWindow(now) - OFFLINE_CODE_SKEW_WINDOWS;
    const spent = (this.#state.spentCodes ?? []).filter((c) => c.window >= oldest);
    if (spent.some((c) => c.door === door && c.window === m.window)) {
      this.#state.spentCodes = spent;
      return deny('spent', m.window);
    }
    // Spent and reported in one write (the event's #save), before the lock moves.
    this.#state.spentCodes = [...spent, { door, window: m.window }];
    this.#pinFailures.delete(door);
    const decision = report({ result: 'granted', reason: 'offline-code' }, m.window);
    this.#unlock(this.#door(door), this.#door(door).unlockMs, 'credential');
    return decision;
  }

  /** Someone pushes the door open. Opening a locked door is `forced`. */
  openDoor(ref: string): void {
    const d = this.#door(ref);
    if (d.open) return;
    d.open = true;
    this.#emitEvent({ kind: 'door', door: ref, state: d.locked ? 'forced' : 'open', at: this.#now() });
    d.heldTimer = unrefTimer(d.heldOpenMs, () => {
      d.heldTimer = undefined;
      if (d.open) this.#emitEvent({ kind: 'door', door: ref, state: 'held', at: this.#now() });
    });
  }

  closeDoor(ref: string): void {
    const d = this.#door(ref);
    if (!d.open) return;
    d.open = false;
    clearTimeout(d.heldTimer);
    d.heldTimer = undefined;
    this.#emitEvent({ kind: 'door', door: ref, state: 'closed', at: this.#now() });
  }

  /** The enclosure's tamper switch. */
  tamper(): void {
    this.#emitEvent({ kind: 'tamper', at: this.#now() });
  }

  #present(door: string, credential: Presented): AccessDecision {
    const now = this.#now();
    const decision = this.#decide(door, credential, now);
    const seen = credential.kind === 'tag' ? { kind: 'tag' as const, uid: credential.uid } : { kind: 'pin' as const };
    this.#emitEvent({ kind: 'access', door, credential: seen, ...decision, at: now });
    // The decision is reported before the lock moves, so the trail reads cause → effect.
    if (decision.result === 'granted') this.#unlock(this.#door(door), this.#door(door).unlockMs, 'credential');
    return decision;
  }

  #decide(door: string, credential: Presented, now: number): AccessDecision {
    return decideAccess({
      grants: this.#state.grants,
      expired: this.#expired.map((e) => e.grant),
      door,
      credential,
      now,
      clockSynced: this.#o.clockSynced ?? true,
    });
  }

  // ── MQTT ────────────────────────────────────────────────────────────────────────────────────

  #connect(): void {
    const { mqtt: url, controllerId } = { mqtt: this.#o.bundle.mqtt, controllerId: this.id };
    const generation = ++this.#generation;
    this.#handed = new Set();
    const client = connectMqtt({
      ...this.#o.mqtt,
      url: url.url,
      username: url.username,
      password: url.password,
      // The controller id itself: a restart takes over the old session at once, so the old
      // connection's will fires before the new birth instead of overwriting it later.
      clientId: controllerId,
      clean: true,
      resubscribe: false,
      will: { topic: controllerTopic(this.id, 'state'), payload: Buffer.from(JSON.stringify(this.#deathMessage())), qos: 1, retain: true },
    });
    this.#client = client;
    client.on('connect', () => {
      void this.#onConnect(client, generation);
    });
    client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    client.on('close', () => {
      if (generation === this.#generation) this.#announced = false;
    });
    // One warning per outage, not one per reconnect attempt (a fleet of 1,000 would flood the log).
    let quiet = false;
    client.on('connect', () => {
      quiet = false;
    });
    client.on('error', (err) => {
      const fields = { ctrl: this.id, err: err.message };
      if (quiet) this.#log.debug('mqtt error', fields);
      else this.#log.warn('mqtt error', fields);
      quiet = true;
    });
  }

  async #onConnect(client: MqttClient, generation: number): Promise<void> {
    try {
      // Subscribe before the birth: the gateway answers a birth with a sync, which must not be missed.
      await client.subscribeAsync([controllerTopic(this.id, 'sync'), controllerTopic(this.id, 'cmd')], { qos: 1 });
      await client.publishAsync(controllerTopic(this.id, 'state'), JSON.stringify(this.#birthMessage()), { qos: 1, retain: true });
    } catch (err) {
      this.#log.warn('announce failed', { err: (err as Error).message });
      return;
    }
    if (generation !== this.#generation) return;
    this.#announced = true;
    this.#log.info('online', { ctrl: this.id, boot: this.#boot, appliedVersion: this.#state.appliedVersion, backlog: this.#state.backlog.length });
    this.#pump();
    this.emit('connected');
  }

  /** Hand every unsent backlog event to the client, in order; each leaves the backlog on PUBACK. */
  #pump(): void {
    const client = this.#client;
    if (!client?.connected) return;
    const generation = this.#generation;
    for (const payload of this.#state.backlog) {
      if (this.#handed.has(payload)) continue;
      this.#handed.add(payload);
      client.publish(controllerTopic(this.id, 'evt'), payload, { qos: 1 }, (err) => {
        if (generation !== this.#generation) return;
        if (err) {
          this.#handed.delete(payload);
          return;
        }
        const i = this.#state.backlog.indexOf(payload);
        if (i >= 0) {
          this.#state.backlog.splice(i, 1);
          this.#save();
          const { boot, seq } = JSON.parse(payload) as { boot: string; seq: number };
          this.emit('acked', boot, seq);
        }
      });
    }
  }

  #onMessage(topic: string, payload: Buffer): void {
    const opened = openInbound(topic, payload, { ctrl: this.id, keys: this.#gatewayKeys, now: this.#now(), lastSeq: this.#state.lastSeq, recentSeqs: this.#state.recentSeqs });
    if (!opened) return;
    if (!opened.ok) {
      if (opened.seq !== undefined && opened.id) {
        // Authentic and fresh, but the body is wrong: consume its seq and say so.
        this.#acceptSeq(opened.seq);
        this.#save();
        this.#reply({ ref: opened.id, status: 'rejected', code: 'bad-body' });
      }
      this.#reportRejected(opened.code, opened.detail, opened.id);
      return;
    }
    const msg = opened.message;
    this.#acceptSeq(msg.seq);
    switch (msg.type) {
      case 'grants.sync':
        this.#applySync(msg.id, msg.body);
        return;
      case 'door.pulse':
      case 'door.hold':
      case 'door.release':
      case 'ctrl.ping':
      case 'access.check':
        this.#save();
        this.#command(msg);
        return;
      default:
        this.#save();
    }
  }

  /** Record an accepted gateway seq; persisted with whatever the message changes (P-7). */
  #acceptSeq(seq: number): void {
    const w = acceptSeq({ highest: this.#state.lastSeq, recent: this.#state.recentSeqs }, seq);
    this.#state.lastSeq = w.highest;
    this.#state.recentSeqs = [...w.recent];
  }

  /** PROTOCOL §5: apply the complete set atomically, or not at all. */
  #applySync(ref: string, body: BodyOf<'grants.sync'>): void {
    if (body.version <= this.#state.appliedVersion) {
      this.#save();
      this.#reply({ ref, status: 'stale', appliedVersion: this.#state.appliedVersion });
      return;
    }
    const problem = this.#checkGrants(body);
    if (problem) {
      this.#save();
      this.#reply({ ref, status: 'rejected', code: problem, appliedVersion: this.#state.appliedVersion });
      this.emit('rejected', problem, `sync v${body.version}`);
      return;
    }
    const now = this.#now();
    const next = body.grants.map(holdGrant);
    const kept = new Set(next.map((g) => g.grantId));
    for (const old of this.#state.grants) {
      // A grant that leaves the set after its end expired; one that leaves early was revoked.
      if (!kept.has(old.grantId) && old.notAfter <= now) this.#remember(old, now);
    }
    this.#state.grants = next;
    this.#state.appliedVersion = body.version;
    this.#save();
    this.#scheduleExpiry();
    this.#reply({ ref, status: 'applied', appliedVersion: body.version });
    this.#log.info('grants applied', { ctrl: this.id, version: body.version, grants: next.length });
    this.emit('applied', body.version);
  }

  #checkGrants(body: BodyOf<'grants.sync'>): ReplyCode | undefined {
    for (const g of body.grants) {
      if (g.notAfter <= g.notBefore) return 'invalid-window';
      if (g.doors.some((d) => !this.#doors.has(d))) return 'unknown-door';
    }
    return undefined;
  }

  #command(msg: Message<'door.pulse' | 'door.hold' | 'door.release' | 'ctrl.ping' | 'access.check'>): void {
    const ref = msg.id;
    switch (msg.type) {
      case 'ctrl.ping':
        this.#reply({ ref, status: 'done' });
        return;
      case 'access.check': {
        const b = msg.body;
        this.#reply({ ref, status: 'done', decision: this.#decide(b.door, b.credential, this.#now()) });
        return;
      }
      case 'door.pulse': {
        const b = msg.body;
        const d = this.#doors.get(b.door);
        if (!d) return this.#reply({ ref, status: 'rejected', code: 'unknown-door' });
        this.#unlock(d, b.seconds * 1000, 'pulse');
        return this.#reply({ ref, status: 'done' });
      }
      case 'door.hold': {
        const b = msg.body;
        const d = this.#doors.get(b.door);
        if (!d) return this.#reply({ ref, status: 'rejected', code: 'unknown-door' });
        // A hold is bounded like a grant: never an open-ended unlocked door.
        const now = this.#now();
        if (b.until <= now || b.until > now + MAX_HOLD_MS) return this.#reply({ ref, status: 'rejected', code: 'invalid-window' });
        d.holdUntil = b.until;
        this.#unlock(d, b.until - this.#now(), 'hold');
        return this.#reply({ ref, status: 'done' });
      }
      case 'door.release': {
        const b = msg.body;
        const d = this.#doors.get(b.door);
        if (!d) return this.#reply({ ref, status: 'rejected', code: 'unknown-door' });
        if (d.holdUntil !== undefined) {
          d.holdUntil = undefined;
          this.#lock(d, 'release');
        }
        return this.#reply({ ref, status: 'done' });
      }
    }
  }

  // ── Doors ───────────────────────────────────────────────────────────────────────────────────

  #door(ref: string): Door {
    const d = this.#doors.get(ref);
    if (!d) throw new RangeError(`no door ${ref} on ${this.id}`);
    return d;
  }

  #unlock(d: Door, ms: number, cause: 'credential' | 'pulse' | 'hold'): void {
    const wasLocked = d.locked;
    d.locked = false;
    if (wasLocked || cause === 'hold') this.#emitEvent({ kind: 'door', door: d.ref, state: 'unlocked', cause, at: this.#now() });
    // A held door stays unlocked until its hold ends, whatever pulses come meanwhile.
    const until = Math.max(this.#now() + Math.max(ms, 0), d.holdUntil ?? 0);
    clearTimeout(d.relockTimer);
    d.relockTimer = unrefTimer(until - this.#now(), () => {
      d.relockTimer = undefined;
      d.holdUntil = undefined;
      this.#lock(d, 'timeout');
    });
  }

  #lock(d: Door, cause: 'release' | 'timeout'): void {
    clearTimeout(d.relockTimer);
    d.relockTimer = undefined;
    if (d.locked) return;
    d.locked = true;
    this.#emitEvent({ kind: 'door', door: d.ref, state: 'locked', cause, at: this.#now() });
  }

  // ── Local expiry: no message from anyone needed (PROTOCOL §5.5) ──────────────────────────────

  #scheduleExpiry(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    if (this.#stopped || this.#state.grants.length === 0) return;
    const next = Math.min(...this.#state.grants.map((g) => g.notAfter));
    this.#expiryTimer = unrefTimer(Math.min(Math.max(next - this.#now(), 0), MAX_TIMER_MS), () => {
      this.#expiryTimer = undefined;
      this.#pruneExpired();
      this.#scheduleExpiry();
    });
  }

  #pruneExpired(): void {
    const now = this.#now();
    const gone = this.#state.grants.filter((g) => g.notAfter <= now);
    if (gone.length > 0) {
      this.#state.grants = this.#state.grants.filter((g) => g.notAfter > now);
      for (const g of gone) this.#remember(g, now);
      this.#save();
      this.#log.info('grants expired locally', { ctrl: this.id, count: gone.length });
      this.emit(
        'expired',
        gone.map((g) => g.grantId),
      );
    }
    this.#expired = this.#expired.filter((e) => e.until > now);
  }

  #remember(g: HeldGrant, now: number): void {
    this.#expired.push({ grant: g, until: now + (this.#o.expiredMemoryMs ?? 3_600_000) });
  }

  // ── Outgoing ────────────────────────────────────────────────────────────────────────────────

  #emitEvent(body: EvtBody): void {
    const msg = buildMessage({ type: 'evt', ctrl: this.id, seq: ++this.#evtSeq, boot: this.#boot, body, key: this.#key, iat: this.#now() });
    this.#state.backlog.push(JSON.stringify(msg));
    this.#save();
    this.emit('event', body);
    this.#pump();
  }

  #reply(body: ReplyBody): void {
    const msg = buildMessage({ type: 'reply', ctrl: this.id, seq: this.#evtSeq, boot: this.#boot, body, key: this.#key, iat: this.#now() });
    this.#client?.publish(controllerTopic(this.id, 'reply'), JSON.stringify(msg), { qos: 1 });
  }

  /** PROTOCOL §9: report a dropped message as a `rejected` event, at most N a minute. */
  #reportRejected(code: RejectCode, detail: string, ref: string | undefined): void {
    this.#log.warn('message rejected', { ctrl: this.id, code, detail, ref });
    this.emit('rejected', code, detail);
    const now = this.#now();
    const w = this.#rejectWindow;
    if (now - w.start >= 60_000) {
      w.start = now;
      w.count = 0;
    }
    if (w.count >= (this.#o.rejectReportsPerMinute ?? 30)) {
      w.suppressed += 1;
      return;
    }
    w.count += 1;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    this.#emitEvent({ kind: 'rejected', code, ...(ref ? { ref } : {}), ...(suppressed > 0 ? { suppressed } : {}), at: now });
  }

  #birthMessage(): Message<'state'> {
    const body: StateOnlineBody = {
      online: true,
      fw: REFERENCE_FW,
      vendor: this.#o.vendor ?? 'smart-passage',
      appliedVersion: this.#state.appliedVersion,
      lastSeq: this.#state.lastSeq,
      clock: this.#now(),
      clockSynced: this.#o.clockSynced ?? true,
      doors: this.doorStates(),
    };
    return buildMessage({ type: 'state', ctrl: this.id, seq: this.#evtSeq, boot: this.#boot, body, key: this.#key, iat: this.#now() });
  }

  /** Signed when the connection opens, published by the broker when it drops (PROTOCOL §6.1). */
  #deathMessage(): Message<'state'> {
    return buildMessage({ type: 'state', ctrl: this.id, seq: this.#evtSeq, boot: this.#boot, body: { online: false }, key: this.#key, iat: this.#now() });
  }

  #save(): void {
    this.#o.store.save(this.#state);
  }

  #clearTimers(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    for (const d of this.#doors.values()) {
      clearTimeout(d.relockTimer);
      clearTimeout(d.heldTimer);
    }
  }
}
