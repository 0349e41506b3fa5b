/**
 * The gateway's side of the wire protocol (PROTOCOL §3–§9): births and wills into live state,
 * signed `grants.sync` with retries until applied, replies into delivery, events verified,
 * audited, deduplicated and handed on before they are acknowledged.
 *
 * The audit trail is the durable record of what controllers report (DESIGN §8): an event's entry
 * is stored before anything else is done with it, and the message is acknowledged only after that.
 * When handling a message fails, it is left unacknowledged and the connection is dropped, so the
 * broker hands it back on the resumed session (see #redeliver).
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
  type AuditItem,
  type BodyOf,
  type EvtBody,
  type Logger,
  type Message,
  type SigningKey,
  type TrustedKeys,
} from '@smart-passage/protocol';
import type { ControllerLive, Door, Grant, Tag } from '../../domain/types.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import type { AuditSink } from '../audit/audit-log.js';
import {
  commandDoneInput,
  controllerEventInput,
  eventsMissingInput,
  grantDeliveredInput,
  presenceInputs,
  securityRejectedInput,
  type DoorCommand,
  type EventContext,
} from '../audit/recorder-controller.js';
import { desiredGrantsFor, isLive, openGrants } from '../grants/desired-state.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
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
  /**
   * The audit trail (DESIGN §8; issue 4). Controller events, gaps, dropped messages, confirmed
   * deliveries, finished door commands and presence changes are recorded here, each before the
   * message that reports it is acknowledged. Default: no auditing.
   */
  audit?: AuditSink;
  /**
   * `security.rejected` is rate-limited (DESIGN §5.2): at most one entry per (controller, code)
   * in this window, the repeats counted in a follow-up entry (`data.suppressed`) when it ends.
   * 0 records every dropped message. Default 10 s.
   */
  rejectedEveryMs?: number;
  /**
   * Messages the client received before start() (a persistent session hands its queue over right
   * after CONNACK), held unacknowledged by whoever made the client: handled first, in order.
   */
  held?: () => [packet: IPublishPacket, done: (err?: Error) => void][];
  /** Confirmed deliveries and their latency, dropped messages, new events (issue 6). Default: nothing. */
  metrics?: Pick<Metrics, 'deliveryConfirmed' | 'messageRejected' | 'controllerEvent'>;
}

export interface BridgeEvents {
  /** A controller's live state changed. */
  controller: [live: ControllerLive];
  /** Grants whose delivery to a controller is now confirmed. */
  delivered: [controllerId: string, grantIds: string[]];
  /** A new (or late) verified event, already audited (`entry`, when auditing) and about to be acked. */
  event: [controllerId: string, msg: Message<'evt'>, entry: AuditItem | undefined];
  /** Events a controller skipped (PROTOCOL §7.8): audit `controller.events-missing`. */
  missing: [controllerId: string, boot: string, count: number];
  /** A dropped message (PROTOCOL §9): audit `security.rejected`. */
  rejected: [controllerId: string, code: string, detail: string];
  /** A reply to a command. */
  reply: [controllerId: string, body: BodyOf<'reply'>];
}

/** A door command sent and not yet answered: what its reply finishes (PROTOCOL §7). */
interface SentCommand {
  ctrl: string;
  type: DoorCommand;
  door: string;
  at: number;
}

/** A reply later than this finishes nothing we still track (commands expire after 10 s). */
const COMMAND_MEMORY_MS = 5 * 60_000;
const MAX_TRACKED = 10_000;

interface RejectWindow {
  until: number;
  suppressed: number;
  buildingId: string | undefined;
  timer: NodeJS.Timeout | undefined;
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
  /** Per registered controller: the keys it signs with and its building (the chain of its entries). */
  readonly #known = new Map<string, { keys: TrustedKeys; buildingId: string }>();
  /** Outstanding sync per controller (the latest only: syncs are desired state, PROTOCOL §5). */
  readonly #pending = new Map<string, PendingSync>();
  readonly #byRef = new Map<string, string>();
  /** Door commands by id, so a `done` reply can be audited as what it finished. */
  readonly #commands = new Map<string, SentCommand>();
  readonly #rejections = new Map<string, RejectWindow>();
  /** A message failed: everything after it is left unacknowledged until the session resumes. */
  #redelivering = false;
  readonly #onConnect = (connack?: { sessionPresent?: boolean }): void => {
    this.#redelivering = false;
    // A broker that restarted may say the session is there yet have lost some of its
    // subscriptions, and mqtt.js re-subscribes only when the session is gone. Subscribing again
    // is idempotent.
    if (!this.#stopped && connack?.sessionPresent === true) {
      this.#o.client.subscribe(GATEWAY_SUBSCRIPTIONS, { qos: 1 }, (err) => {
        if (err) this.#o.logger.warn('re-subscribe after reconnect failed', { err: err.message });
      });
    }
  };
  #stopped = true;
  readonly #metrics: Pick<Metrics, 'deliveryConfirmed' | 'messageRejected' | 'controllerEvent'>;

  constructor(o: ControllerBridgeOptions) {
    super();
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#metrics = o.metrics ?? NO_METRICS;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    const client = this.#o.client;
    // mqtt.js sends the PUBACK of a QoS 1 message only after this callback, and none when it gets
    // an error: an event is acknowledged once audited, so a crash before that means redelivery,
    // not loss. mqtt.js does nothing else with the error, though, and a broker re-sends an
    // unacknowledged message only when the session resumes [MQTT-4.4.0-1] — hence #redeliver.
    client.handleMessage = (packet, done) => {
      if (this.#redelivering) {
        // Keep the order: what came after a failed message comes back after it, and is handled then.
        done(new Error('an earlier message is waiting for redelivery'));
        return;
      }
      this.#handle(packet).then(
        () => done(),
        (err: unknown) => {
          this.#o.logger.error('controller message not processed; left unacknowledged for redelivery', { topic: packet.topic, err: String(err) });
          this.#redeliver();
          done(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    client.on('connect', this.#onConnect);
    // Not awaited: the client reads no further packet (SUBACKs included) until these are done.
    for (const [packet, done] of this.#o.held?.() ?? []) client.handleMessage(packet, done);
    await client.subscribeAsync(GATEWAY_SUBSCRIPTIONS, { qos: 1 });
  }

  stop(): void {
    this.#stopped = true;
    this.#o.client.off('connect', this.#onConnect);
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#byRef.clear();
    this.#commands.clear();
    for (const [key, w] of this.#rejections) {
      clearTimeout(w.timer);
      if (w.suppressed > 0) this.#flushRejections(key, w);
    }
    this.#rejections.clear();
  }

  /** Forget a controller's cached public key (after it was re-registered or removed). */
  forgetKeys(ctrl: string): void {
    this.#known.delete(ctrl);
  }

  /**
   * Drop the connection, as a network failure would, so the broker re-sends every message not yet
   * acknowledged — the failed one first — on the resumed persistent session (DESIGN §8, §10).
   * mqtt.js reconnects after its `reconnectPeriod`. Without a persistent session or without
   * reconnects there is nothing to gain: the message is then only left unacknowledged.
   */
  #redeliver(): void {
    const client = this.#o.client;
    if (this.#redelivering || this.#stopped) return;
    if (client.options.clean === true || client.options.reconnectPeriod === 0) {
      this.#o.logger.warn('no persistent session with reconnects: an unacknowledged message will not be redelivered until the next reconnect');
      return;
    }
    this.#redelivering = true;
    client.stream.destroy();
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
    if (type === 'door.pulse' || type === 'door.hold' || type === 'door.release') this.#track(msg.id, { ctrl, type, door: (body as { door: string }).door, at: iat });
    this.#publish(controllerTopic(ctrl, 'cmd'), JSON.stringify(msg));
    return msg.id;
  }

  #track(id: string, c: SentCommand): void {
    // Oldest first (a Map iterates in insertion order): forget what can no longer be answered.
    for (const [k, v] of this.#commands) {
      if (c.at - v.at < COMMAND_MEMORY_MS && this.#commands.size < MAX_TRACKED) break;
      this.#commands.delete(k);
    }
    this.#commands.set(id, c);
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
    const known = await this.#knownOf(t.ctrl);
    if (!known) {
      await this.#rejected(t.ctrl, 'unknown-controller', 'no registered controller with this id', undefined);
      return;
    }
    const opened = openMessage(payload, { types: TYPES_BY_TOPIC[t.leaf], keys: known.keys, maxBytes: MAX_PAYLOAD_BYTES[t.leaf], ctrl: t.ctrl, now: this.#now() });
    if (!opened.ok) {
      this.#o.logger.warn('controller message rejected', { ctrl: t.ctrl, leaf: t.leaf, code: opened.code, detail: opened.detail });
      await this.#rejected(t.ctrl, opened.code, opened.detail, known.buildingId);
      return;
    }
    const msg = opened.message;
    if (msg.type === 'state') await this.#onState(t.ctrl, msg, packet.retain, known.buildingId);
    else if (msg.type === 'reply') await this.#onReply(t.ctrl, msg.body, known.buildingId);
    else if (msg.type === 'evt') await this.#onEvt(t.ctrl, msg, known.buildingId);
  }

  async #knownOf(ctrl: string): Promise<{ keys: TrustedKeys; buildingId: string } | undefined> {
    const cached = this.#known.get(ctrl);
    if (cached) return cached;
    const c = await this.#o.store.get('controllers', ctrl);
    if (!c) return undefined;
    const known = { keys: trustedKeys([{ kid: c.controllerKid, publicKey: c.publicKey }]), buildingId: c.buildingId };
    this.#known.set(ctrl, known);
    return known;
  }

  /** A dropped message (PROTOCOL §9): audited as `security.rejected`, rate-limited, then announced. */
  async #rejected(ctrl: string, code: string, detail: string, buildingId: string | undefined): Promise<void> {
    const audit = this.#o.audit;
    if (audit) {
      const every = this.#o.rejectedEveryMs ?? 10_000;
      const key = `${ctrl}\0${code}`;
      const now = this.#now();
      const w = this.#rejections.get(key);
      if (every > 0 && w && now < w.until) {
        w.suppressed += 1;
        w.timer ??= setTimeout(() => this.#flushRejections(key, w), Math.max(0, w.until - now)).unref();
      } else {
        if (every > 0) {
          if (this.#rejections.size >= MAX_TRACKED) this.#rejections.clear();
          this.#rejections.set(key, { until: now + every, suppressed: 0, buildingId, timer: undefined });
        }
        try {
          await audit.record(securityRejectedInput(ctrl, code, detail, buildingId));
        } catch (err) {
          this.#rejections.delete(key); // the redelivery records it
          throw err;
        }
      }
    }
    this.#metrics.messageRejected(code);
    this.emit('rejected', ctrl, code, detail);
  }

  /** The end of a rate-limit window with repeats in it: one entry counting them. */
  #flushRejections(key: string, w: RejectWindow): void {
    if (this.#rejections.get(key) === w) this.#rejections.delete(key);
    const [ctrl = '', code = ''] = key.split('\0');
    const audit = this.#o.audit;
    if (!audit || w.suppressed === 0) return;
    audit.record(securityRejectedInput(ctrl, code, 'repeated within the rate limit', w.buildingId, w.suppressed)).catch((err: unknown) => {
      this.#o.logger.error('audit of suppressed rejections failed', { ctrl, code, suppressed: w.suppressed, err: String(err) });
    });
  }

  async #onState(ctrl: string, msg: Message<'state'>, retained: boolean, buildingId: string): Promise<void> {
    const { store, audit } = this.#o;
    const cur = (await store.get('controllerLive', ctrl)) ?? emptyLive(ctrl);
    const change = applyState(cur, msg, { receivedAt: this.#now(), retained });
    if (change.live === cur) return;
    // Audited before the live state moves: a redelivered birth or will finds the change again
    // and its entries deduplicated (keyed by the message id).
    if (audit) for (const input of presenceInputs(ctrl, cur, change, msg, buildingId)) await audit.record(input);
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

  async #onReply(ctrl: string, body: BodyOf<'reply'>, buildingId: string): Promise<void> {
    const cmd = this.#commands.get(body.ref);
    if (cmd && cmd.ctrl === ctrl) {
      if (body.status === 'done' && this.#o.audit) {
        const doorId = await this.#doorId(ctrl, cmd.door);
        await this.#o.audit.record(commandDoneInput(ctrl, { id: body.ref, type: cmd.type, door: cmd.door }, { buildingId, doorId }));
      }
      this.#commands.delete(body.ref);
    }
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
    const { store, audit } = this.#o;
    const now = this.#now();
    const done: string[] = [];
    const covers = (d: Grant['deliveries'][number]) => d.controllerId === ctrl && d.state === 'pending' && d.version <= applied;
    for (const g of await openGrants(store)) {
      const covered = g.deliveries.filter(covers);
      if (covered.length === 0) continue;
      if (!isLive(g, now) && g.status !== 'pending') continue;
      // Audited before the delivery is marked: after a crash in between, the redelivered reply
      // (or the next birth) marks it, and the entry, keyed by (grant, controller, version), is not repeated.
      if (audit) for (const d of covered) await audit.record(grantDeliveredInput(ctrl, g, d.version));
      // What this write flipped (the update function may run again on a conflict): counted once,
      // and timed from creation only while the grant still waits on its first set (status pending),
      // so an extension's re-delivery does not read as a slow first one.
      let flipped = { count: 0, first: false, createdAt: 0 };
      const next = await store.update('grants', g.id, (cur) => {
        if (!isLive(cur, now) && cur.status !== 'pending') return undefined;
        flipped = { count: cur.deliveries.filter(covers).length, first: cur.status === 'pending', createdAt: cur.createdAt };
        const deliveries = cur.deliveries.map((d) => (covers(d) ? { ...d, state: 'delivered' as const, deliveredAt: now } : d));
        const all = deliveries.every((d) => d.state === 'delivered');
        return { ...cur, deliveries, status: cur.status === 'pending' && all ? 'active' : cur.status };
      });
      if (next) {
        done.push(g.id);
        for (let i = 0; i < flipped.count; i++) this.#metrics.deliveryConfirmed(flipped.first ? (now - flipped.createdAt) / 1000 : undefined);
      }
    }
    if (done.length > 0) this.emit('delivered', ctrl, done);
  }

  /**
   * DESIGN §8: the audit entry first (idempotent by (ctrl, boot, seq): a redelivery gets the stored
   * entry back), then the seq bookkeeping that tells a gap or a duplicate, then the side effects of
   * a new event. The handler returns — and the PUBACK goes — only after all of it.
   */
  async #onEvt(ctrl: string, msg: Message<'evt'>, buildingId: string): Promise<void> {
    const { store, audit } = this.#o;
    const entry = audit ? await audit.record(controllerEventInput(ctrl, msg, await this.#eventContext(ctrl, msg.body, buildingId))) : undefined;
    const verdict = await store.classifyEvent(ctrl, msg.boot, msg.seq);
    if (verdict.kind === 'duplicate') return;
    if (verdict.kind === 'new' && verdict.missing > 0) {
      // Not fatal to the event: its seq is classified now, so a redelivery would be a duplicate and
      // bring the gap back no more than this; failing here would only lose the door state too.
      if (audit) {
        await audit.record(eventsMissingInput(ctrl, msg.boot, msg.seq, verdict.missing, buildingId)).catch((err: unknown) => {
          this.#o.logger.error('AUDIT ENTRY NOT STORED: controller.events-missing', { ctrl, boot: msg.boot, seq: msg.seq, count: verdict.missing, err: String(err) });
        });
      }
      this.emit('missing', ctrl, msg.boot, verdict.missing);
    }
    if (msg.body.kind === 'door') await this.#applyDoor(ctrl, msg.body.door, msg.body.state);
    this.#metrics.controllerEvent(msg.body.kind);
    this.emit('event', ctrl, msg, entry);
  }

  /** Our ids for what the event names by the controller's refs. */
  async #eventContext(ctrl: string, body: EvtBody, buildingId: string): Promise<EventContext> {
    if (body.kind !== 'access' && body.kind !== 'door') return { buildingId };
    const doorId = await this.#doorId(ctrl, body.door);
    if (body.kind === 'door') return { buildingId, doorId };
    const grant = body.grantId !== undefined ? await this.#o.store.get('grants', body.grantId) : undefined;
    const tag = body.credential.kind === 'tag' ? await this.#tag(body.credential.uid) : undefined;
    return { buildingId, doorId, tagId: tag?.id, unitId: tag?.unitId, incidentId: grant?.incidentId };
  }

  async #doorId(ctrl: string, ref: string): Promise<string | undefined> {
    const doors = await listAll(this.#o.store, 'doors', { field: 'controllerId', value: ctrl });
    return doors.find((d) => d.ref === ref)?.id;
  }

  /** The tag with this uid (uids are unique and indexed), if we know it. */
  async #tag(uid: string): Promise<Tag | undefined> {
    return (await this.#o.store.list('tags', { where: { field: 'uid', value: uid }, limit: 1 }))[0];
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
