/**
 * The gateway's side of the wire protocol (PROTOCOL §3–§9): births and wills into live state,
 * signed `grants.sync` with retries until applied, replies into delivery, events verified,
 * deduplicated and handed on before they are acknowledged.
 *
 * Constructor stores; start() subscribes; stop() cancels retries. The MQTT client is owned by
 * the adapter that made it (with TCP_NODELAY and a persistent session).
 */
import { EventEmitter } from 'node:events';
import type { IPublishPacket, MqttClient } from 'mqtt';
import {
  buildMessage,
  controllerTopic,
  GATEWAY_SUBSCRIPTIONS,
  MAX_COMMAND_TTL_MS,
  MAX_PAYLOAD_BYTES,
  openMessage,
  parseControllerTopic,
  trustedKeys,
  TYPES_BY_TOPIC,
  type BodyOf,
  type Logger,
  type Message,
  type SigningKey,
  type TrustedKeys,
} from '@smart-passage/protocol';
import type { ControllerLive, Door, Tag } from '../../domain/types.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { desiredGrantsFor, isLive, openGrants } from '../grants/desired-state.js';
import { applyState, emptyLive } from './presence.js';

export interface ControllerBridgeOptions {
  client: MqttClient;
  store: StorePort;
  gatewayKey: SigningKey;
  /** This gateway process's boot id (informational on the wire). */
  boot: string;
  logger: Logger;
  now?: () => number;
  /** First sync retry after this long without an answer, doubling up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface BridgeEvents {
  /** A controller's live state changed. */
  controller: [live: ControllerLive];
  /** Grants whose delivery to a controller is now confirmed. */
  delivered: [controllerId: string, grantIds: string[]];
  /** A new (or late) verified event, already handed to `onEvent` and about to be acked. */
  event: [controllerId: string, msg: Message<'evt'>];
  /** Events a controller skipped (PROTOCOL §7.8): audit `controller.events-missing`. */
  missing: [controllerId: string, boot: string, count: number];
  /** A dropped message (PROTOCOL §9): audit `security.rejected`. */
  rejected: [controllerId: string, code: string, detail: string];
  /** A reply to a command. */
  reply: [controllerId: string, body: BodyOf<'reply'>];
}

interface PendingSync {
  ctrl: string;
  version: number;
  timer: NodeJS.Timeout;
  delayMs: number;
}

export class ControllerBridge extends EventEmitter<BridgeEvents> {
  readonly #o: ControllerBridgeOptions;
  readonly #now: () => number;
  readonly #keys = new Map<string, TrustedKeys>();
  /** Outstanding sync per controller (the latest only: syncs are desired state, PROTOCOL §5). */
  readonly #pending = new Map<string, PendingSync>();
  readonly #byRef = new Map<string, string>();
  /** Hook the owner sets to store an event durably; the PUBACK waits for it (DESIGN §8). */
  onEvent: (controllerId: string, msg: Message<'evt'>) => Promise<void> = () => Promise.resolve();
  #stopped = true;

  constructor(o: ControllerBridgeOptions) {
    super();
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    const client = this.#o.client;
    // mqtt.js sends the PUBACK of a QoS 1 message only after this callback: an event is
    // acknowledged once stored, so a crash before that means redelivery, not loss.
    client.handleMessage = (packet, done) => {
      this.#handle(packet).then(
        () => done(),
        (err: unknown) => {
          this.#o.logger.error('controller message not processed; left unacknowledged', { topic: (packet).topic, err: String(err) });
          done(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    await client.subscribeAsync(GATEWAY_SUBSCRIPTIONS, { qos: 1 });
  }

  stop(): void {
    this.#stopped = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#byRef.clear();
  }

  /** Forget a controller's cached public key (after it was re-registered or removed). */
  forgetKeys(ctrl: string): void {
    this.#keys.delete(ctrl);
  }

  // ── Desired state out ───────────────────────────────────────────────────────────────────────

  /**
   * Send the controller its complete desired set at its current desired version, and keep
   * re-sending with backoff until it answers applied or stale (PROTOCOL §5.8).
   */
  async sync(ctrl: string): Promise<void> {
    const { store, gatewayKey, boot } = this.#o;
    const version = await store.desiredVersion(ctrl);
    if (version === 0) return;
    const grants = await this.#desired(ctrl);
    const live = await store.get('controllerLive', ctrl);
    const seq = await store.nextSeq(ctrl, live?.lastSeq);
    const msg = buildMessage({ type: 'grants.sync', ctrl, seq, boot, body: { version, grants }, key: gatewayKey, iat: this.#now() });
    const prev = this.#pending.get(ctrl);
    if (prev) clearTimeout(prev.timer);
    const delayMs = prev && prev.version === version ? Math.min(prev.delayMs * 2, this.#o.maxRetryMs ?? 30_000) : (this.#o.retryMs ?? 2_000);
    const timer = setTimeout(() => {
      if (!this.#stopped) this.sync(ctrl).catch((err: unknown) => this.#o.logger.warn('sync retry failed', { ctrl, err: String(err) }));
    }, delayMs);
    timer.unref();
    this.#pending.set(ctrl, { ctrl, version, timer, delayMs });
    this.#byRef.set(msg.id, ctrl);
    this.#publish(controllerTopic(ctrl, 'sync'), JSON.stringify(msg));
    this.#o.logger.debug('sync sent', { ctrl, version, grants: grants.length, seq });
  }

  /** Publish a one-shot command (PROTOCOL §7); never retried, expires in 10 s. Returns its id. */
  async command<K extends 'door.pulse' | 'door.hold' | 'door.release' | 'ctrl.ping' | 'access.check'>(ctrl: string, type: K, body: BodyOf<K>): Promise<string> {
    const live = await this.#o.store.get('controllerLive', ctrl);
    const seq = await this.#o.store.nextSeq(ctrl, live?.lastSeq);
    const iat = this.#now();
    const msg = buildMessage({ type, ctrl, seq, boot: this.#o.boot, body, key: this.#o.gatewayKey, iat, exp: iat + MAX_COMMAND_TTL_MS });
    this.#publish(controllerTopic(ctrl, 'cmd'), JSON.stringify(msg));
    return msg.id;
  }

  /**
   * Publish without waiting for the PUBACK. Never await the broker from inside a message handler:
   * mqtt.js reads no further packet (that PUBACK included) until the handler is done — a deadlock.
   * A lost sync is re-sent by its retry; a lost command is the dispatcher's to repeat.
   */
  #publish(topic: string, payload: string): void {
    this.#o.client.publish(topic, payload, { qos: 1, retain: false }, (err) => {
      if (err) this.#o.logger.warn('publish failed', { topic, err: err.message });
    });
  }

  async #desired(ctrl: string) {
    const { store } = this.#o;
    const myDoors = await store.list('doors', { where: { field: 'controllerId', value: ctrl }, limit: 1000 });
    const doors = new Map<string, Door>();
    for (const d of myDoors) doors.set(d.id, d);
    const grants = (await openGrants(store)).filter((g) => g.doorIds.some((id) => doors.has(id)));
    const tagsByUnit = new Map<string, Tag[]>();
    for (const unitId of new Set(grants.flatMap((g) => g.unitIds))) {
      tagsByUnit.set(unitId, await listAll(store, 'tags', { field: 'unitId', value: unitId }));
    }
    return desiredGrantsFor(ctrl, { grants, doors, tagsByUnit, now: this.#now() });
  }

  // ── Messages in ─────────────────────────────────────────────────────────────────────────────

  async #handle(packet: IPublishPacket): Promise<void> {
    const t = parseControllerTopic(packet.topic);
    if (!t || (t.leaf !== 'state' && t.leaf !== 'reply' && t.leaf !== 'evt')) return;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (payload.length === 0) return; // a cleared retained state
    const keys = await this.#keysOf(t.ctrl);
    if (!keys) {
      this.emit('rejected', t.ctrl, 'unknown-controller', 'no registered controller with this id');
      return;
    }
    const opened = openMessage(payload, { types: TYPES_BY_TOPIC[t.leaf], keys, maxBytes: MAX_PAYLOAD_BYTES[t.leaf], ctrl: t.ctrl, now: this.#now() });
    if (!opened.ok) {
      this.#o.logger.warn('controller message rejected', { ctrl: t.ctrl, leaf: t.leaf, code: opened.code, detail: opened.detail });
      this.emit('rejected', t.ctrl, opened.code, opened.detail);
      return;
    }
    const msg = opened.message;
    if (msg.type === 'state') await this.#onState(t.ctrl, msg, packet.retain);
    else if (msg.type === 'reply') await this.#onReply(t.ctrl, msg.body);
    else if (msg.type === 'evt') await this.#onEvt(t.ctrl, msg);
  }

  async #keysOf(ctrl: string): Promise<TrustedKeys | undefined> {
    const cached = this.#keys.get(ctrl);
    if (cached) return cached;
    const c = await this.#o.store.get('controllers', ctrl);
    if (!c) return undefined;
    const keys = trustedKeys([{ kid: c.controllerKid, publicKey: c.publicKey }]);
    this.#keys.set(ctrl, keys);
    return keys;
  }

  async #onState(ctrl: string, msg: Message<'state'>, retained: boolean): Promise<void> {
    const { store } = this.#o;
    const cur = (await store.get('controllerLive', ctrl)) ?? emptyLive(ctrl);
    const change = applyState(cur, msg, { receivedAt: this.#now(), retained });
    if (change.live === cur) return;
    await store.put('controllerLive', change.live);
    this.emit('controller', change.live);
    if (!msg.body.online) return;
    // PROTOCOL §6.3: on every birth, bring the controller to the desired version.
    let desired = await store.desiredVersion(ctrl);
    if (msg.body.appliedVersion > desired) {
      // It is ahead of us (a conformance run, a restored store): move above it and re-send.
      desired = await store.bumpDesiredVersion(ctrl, msg.body.appliedVersion);
    }
    if (desired === 0) return;
    if (msg.body.appliedVersion < desired) await this.sync(ctrl);
    else await this.#confirm(ctrl, msg.body.appliedVersion);
  }

  async #onReply(ctrl: string, body: BodyOf<'reply'>): Promise<void> {
    this.emit('reply', ctrl, body);
    this.#byRef.delete(body.ref);
    const p = this.#pending.get(ctrl);
    if (body.status === 'rejected') {
      // The same set would be rejected again: stop retrying until the desired state changes.
      if (p && body.appliedVersion !== undefined) {
        clearTimeout(p.timer);
        this.#pending.delete(ctrl);
      }
      this.#o.logger.error('controller rejected a message', { ctrl, code: body.code, ref: body.ref });
      return;
    }
    // applied/stale of a sync (ours or another instance's) says how far the controller is.
    if (body.appliedVersion === undefined) return;
    const applied = body.appliedVersion;
    if (p && applied >= p.version) {
      clearTimeout(p.timer);
      this.#pending.delete(ctrl);
    }
    await this.#o.store.update('controllerLive', ctrl, (cur) => (cur.appliedVersion >= applied ? undefined : { ...cur, appliedVersion: applied }));
    await this.#confirm(ctrl, applied);
  }

  /** Mark every live grant whose delivery to `ctrl` is covered by `applied` as delivered. */
  async #confirm(ctrl: string, applied: number): Promise<void> {
    const { store } = this.#o;
    const now = this.#now();
    const done: string[] = [];
    for (const g of await openGrants(store)) {
      if (!g.deliveries.some((d) => d.controllerId === ctrl && d.state === 'pending' && d.version <= applied)) continue;
      const next = await store.update('grants', g.id, (cur) => {
        if (!isLive(cur, now) && cur.status !== 'pending') return undefined;
        const deliveries = cur.deliveries.map((d) => (d.controllerId === ctrl && d.state === 'pending' && d.version <= applied ? { ...d, state: 'delivered' as const, deliveredAt: now } : d));
        const all = deliveries.every((d) => d.state === 'delivered');
        return { ...cur, deliveries, status: cur.status === 'pending' && all ? 'active' : cur.status };
      });
      if (next) done.push(g.id);
    }
    if (done.length > 0) this.emit('delivered', ctrl, done);
  }

  async #onEvt(ctrl: string, msg: Message<'evt'>): Promise<void> {
    const { store } = this.#o;
    // Stored first (the PUBACK waits for this handler): a crash before it means redelivery.
    await store.insert('controllerEvents', {
      id: `${ctrl}:${msg.boot}:${msg.seq}`,
      controllerId: ctrl,
      boot: msg.boot,
      seq: msg.seq,
      kind: msg.body.kind,
      at: msg.body.at,
      receivedAt: this.#now(),
      body: msg.body,
    }).catch((err: unknown) => {
      // Already stored: a redelivery. Whether it was handed on is what classifyEvent remembers.
      if (!(err instanceof Error && err.name === 'StoreConflictError')) throw err;
    });
    const verdict = await store.classifyEvent(ctrl, msg.boot, msg.seq);
    if (verdict.kind === 'duplicate') return;
    if (verdict.kind === 'new' && verdict.missing > 0) this.emit('missing', ctrl, msg.boot, verdict.missing);
    if (msg.body.kind === 'door') await this.#applyDoor(ctrl, msg.body.door, msg.body.state);
    await this.onEvent(ctrl, msg);
    this.emit('event', ctrl, msg);
  }

  /** Door events keep the live door states current (DESIGN §5.3: the map shows them). */
  async #applyDoor(ctrl: string, ref: string, state: 'open' | 'closed' | 'forced' | 'held' | 'unlocked' | 'locked'): Promise<void> {
    const next = await this.#o.store.update('controllerLive', ctrl, (cur) => {
      const doors = cur.doors.some((d) => d.ref === ref) ? cur.doors : [...cur.doors, { ref, locked: true, open: false }];
      return {
        ...cur,
        doors: doors.map((d) => {
          if (d.ref !== ref) return d;
          if (state === 'locked' || state === 'unlocked') return { ...d, locked: state === 'locked' };
          return { ...d, open: state !== 'closed' };
        }),
      };
    });
    if (next) this.emit('controller', next);
  }
}
