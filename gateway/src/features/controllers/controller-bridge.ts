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
 * Several instances (DESIGN §11) share the store and the broker, and every one sees every birth,
 * will and reply (state and reply are plain subscriptions on each). Who sends a `grants.sync`:
 * - A change made on this instance (GrantService → sync()) goes out at once, whoever holds the
 *   controller's lease: it is a new version, and a controller takes any sync as the desired state
 *   (PROTOCOL §5). The retries are then the lease holder's. This instance takes the lease `sync:<ctrl>`
 *   if it is free (and so retries itself); if another instance holds it, that holder's next retry
 *   reads the desired set afresh and so carries the change, and the holder, when a reply covers
 *   the version it was retrying, reads the desired version again and keeps on while the
 *   controller is still behind — so a change is never left without someone retrying it. The
 *   holder's backoff (≤ maxRetryMs) delays only a retry of a send that was not applied at once.
 * - A birth showing the controller behind (PROTOCOL §6.3): only the instance that takes the lease
 *   sends, so N instances send once.
 * - Retries (PROTOCOL §5.8): only the holder; each renews the lease for the next backoff plus
 *   `leaseGraceMs`, and a retry that finds the lease taken by another instance stops. Retrying
 *   stops, and the lease is released, when a reply (or the live state) shows the controller at or
 *   above the desired version, when the controller goes offline (its next birth sends), or when
 *   it rejects the set (not retried, §5.8).
 * - A holder that died: its lease runs out, and the reconcile (every `reconcileMs`) of any
 *   instance takes over each online controller still behind its desired version with no lease
 *   held. It looks only at candidates — the controllers this instance saw behind (births, its own
 *   sends) and not since seen applied, plus those with a pending delivery in an open grant — so a
 *   fleet in step costs it one read of the open grants, not a round trip per controller. A change
 *   that ends a grant or blocks a tag, made by an instance that died before any other instance
 *   held the lease, leaves no such trace: the controller's next birth, or the grant service's
 *   reconcile at the next start, sends it.
 *
 * Constructor stores; start() subscribes and starts the reconcile; stop() cancels retries and
 * releases the leases held. The MQTT client is owned by the adapter that made it (with
 * TCP_NODELAY and a persistent session).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { IPublishPacket, MqttClient } from 'mqtt';
import {
  buildMessage,
  controllerTopic,
  GATEWAY_SUBSCRIPTIONS,
  gatewayShareGroup,
  MAX_COMMAND_TTL_MS,
  MAX_PAYLOAD_BYTES,
  openMessage,
  parseControllerTopic,
  scaledGatewaySubscriptions,
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
import { desiredGrantsFor, isLive, isOpen, openGrants } from '../grants/desired-state.js';
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
   * Who this instance is when it holds a sync lease (`sync:<ctrl>`). Default `boot`, new at every
   * start: then a restarted instance finds the leases of its previous run held until they run
   * out. A name unique among the instances and kept across restarts (its MQTT client id, say)
   * lets it take them straight back.
   */
  leaseOwner?: string;
  /**
   * A sync lease outlives the retry it covers by this much, so a live holder keeps it and a dead
   * one loses it this long after its retry was due. Default 10 s.
   */
  leaseGraceMs?: number;
  /**
   * Every this many ms, take over online controllers left behind their desired version with no
   * sync lease held (a holder that died mid-retry; see the class comment). Default 15 s; 0: never.
   */
  reconcileMs?: number;
  /**
   * How controller events reach this instance (DESIGN §11). Default 'all'.
   * - 'all': every instance subscribes to `sp/v1/c/+/evt` and handles every event; the store's
   *   event dedupe (PROTOCOL §7.8) and the audit's dedupe key make all but the first a duplicate.
   * - 'shared': events through the shared subscription `$share/<group>/sp/v1/c/+/evt` (the group
   *   from `deployment`), so the broker hands each event to one instance; state and reply stay
   *   plain on every instance (each keeps its own sync and command bookkeeping). On a persistent
   *   session the plain event filter a previous 'all' run left is unsubscribed.
   * Why 'all' stays the default — seen on Mosquitto 2.0.11: a persistent session's `$share`
   * subscription is not restored from persistence after a broker restart (plain ones are), so the
   * events published between the broker's restart and this instance's re-subscribe (on reconnect,
   * below) go to no one and are lost; and Mosquitto keeps queueing a dead member's share of the
   * events in its session until it comes back under the same client id (they are late, not lost,
   * and only if it does come back). Events of one controller handled by several instances may
   * also be classified out of order, so a gap is audited as `controller.events-missing` and the
   * event that filled it then taken as late (PROTOCOL §7.8).
   */
  events?: 'all' | 'shared';
  /**
   * The deployment these instances form (its Redis key prefix, SP_REDIS_PREFIX): names the share
   * group (`gatewayShareGroup`). With it set, 'all' also drops, on a persistent session, the share
   * subscription a previous 'shared' run left. Default: the group GATEWAY_SHARE_GROUP.
   */
  deployment?: string;
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
  /**
   * A state or reply whose handling failed is tried again after this long, doubling up to 5 s
   * (see #take). Default 250 ms.
   */
  laneBackoffMs?: number;
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

/** A controller topic, parsed (its id and leaf). */
type ParsedTopic = NonNullable<ReturnType<typeof parseControllerTopic>>;

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
/**
 * States and replies taken and not yet handled, over all controllers: past this, the next waits
 * (see #take). 100, not 1,000: as many gave no faster a fan-out, and kept a storm's messages alive
 * long enough to reach V8's old generation (issue 7: 281 → 202 MB settled with 6,000 controllers).
 */
const MAX_IN_LANES = 100;
/** Sync retries sent per second, at most (see #mayRetryNow). */
const MAX_RETRIES_PER_SECOND = 200;
/** A message of a lane whose handling fails (the store away) is tried again this many times, backing off up to 5 s. */
const LANE_ATTEMPTS = 20;

interface RejectWindow {
  until: number;
  suppressed: number;
  buildingId: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** A sync whose retries this instance owns: it holds the lease `sync:<ctrl>` (see the class comment). */
interface PendingSync {
  version: number;
  timer: NodeJS.Timeout;
  delayMs: number;
}

/** The store lease that claims a controller's birth syncs and retries (DESIGN §11). */
const syncLease = (ctrl: string) => `sync:${ctrl}`;

/** Set `ctrl` → `version` in a map kept to MAX_TRACKED entries (the oldest goes first). */
function remember(m: Map<string, number>, ctrl: string, version: number): void {
  if (!m.has(ctrl) && m.size >= MAX_TRACKED) {
    const oldest = m.keys().next();
    if (oldest.done !== true) m.delete(oldest.value);
  }
  m.set(ctrl, Math.max(version, m.get(ctrl) ?? 0));
}

export class ControllerBridge extends EventEmitter<BridgeEvents> {
  readonly #o: ControllerBridgeOptions;
  readonly #now: () => number;
  /** Our name on the sync leases we hold. */
  readonly #owner: string;
  /** Per registered controller: the keys it signs with and its building (the chain of its entries). */
  readonly #known = new Map<string, { keys: TrustedKeys; buildingId: string }>();
  /**
   * Syncs this instance retries, holding their lease: the latest per controller only (syncs are
   * desired state, PROTOCOL §5).
   */
  readonly #pending = new Map<string, PendingSync>();
  /** Controllers seen behind (a birth, a send of ours) → the version they must reach: reconcile candidates. */
  readonly #behind = new Map<string, number>();
  /** Controllers that rejected a sync → the desired version then: not retried up to it (PROTOCOL §5.8). */
  readonly #rejectedAt = new Map<string, number>();
  #reconcileTimer: NodeJS.Timeout | undefined;
  #reconciling = false;
  /** What start() subscribed to, subscribed again after a reconnect. */
  #filters: string[] = [...GATEWAY_SUBSCRIPTIONS];
  /** Door commands by id, so a `done` reply can be audited as what it finished. */
  readonly #commands = new Map<string, SentCommand>();
  readonly #rejections = new Map<string, RejectWindow>();
  /** A message failed: everything after it is left unacknowledged until the session resumes. */
  #redelivering = false;
  /** States and replies being handled, a promise chain per controller so its messages keep their order (see #take). */
  readonly #lanes = new Map<string, Promise<void>>();
  #inLanes = 0;
  #retryWindow = { start: 0, count: 0 };
  readonly #waitingForRoom: (() => void)[] = [];
  readonly #onConnect = (connack?: { sessionPresent?: boolean }): void => {
    this.#redelivering = false;
    // A broker that restarted may say the session is there yet have lost some of its
    // subscriptions, and mqtt.js re-subscribes only when the session is gone. Subscribing again
    // is idempotent.
    if (!this.#stopped && connack?.sessionPresent === true) {
      this.#o.client.subscribe(this.#filters, { qos: 1 }, (err) => {
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
    this.#owner = o.leaseOwner ?? o.boot;
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
      const t = parseControllerTopic(packet.topic);
      if (t?.leaf === 'reply' || t?.leaf === 'state') {
        this.#take(t, packet).then(
          () => done(),
          (err: unknown) => done(err instanceof Error ? err : new Error(String(err))),
        );
        return;
      }
      this.#handle(t, packet).then(
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
    const shared = scaledGatewaySubscriptions(gatewayShareGroup(this.#o.deployment));
    this.#filters = this.#o.events === 'shared' ? shared : [...GATEWAY_SUBSCRIPTIONS];
    // A persistent session from a run in the other mode keeps its filters: drop the event filter we
    // no longer want, or each event would come twice (plain and shared). Without `deployment`, an
    // 'all' run cannot know which group an earlier 'shared' run used.
    if (client.options.clean === false && (this.#o.events === 'shared' || this.#o.deployment !== undefined)) {
      const stale = [...GATEWAY_SUBSCRIPTIONS, ...shared].filter((f) => !this.#filters.includes(f));
      if (stale.length > 0) await client.unsubscribeAsync([...new Set(stale)]);
    }
    await client.subscribeAsync(this.#filters, { qos: 1 });
    const every = this.#o.reconcileMs ?? 15_000;
    if (every > 0) {
      this.#reconcileTimer = setInterval(() => {
        this.#reconcile().catch((err: unknown) => this.#o.logger.warn('sync reconcile failed; the next one tries again', { err: String(err) }));
      }, every);
      this.#reconcileTimer.unref();
    }
  }

  /** Cancels retries and releases their leases (not awaited): another instance's reconcile takes over. */
  stop(): void {
    this.#stopped = true;
    this.#o.client.off('connect', this.#onConnect);
    clearInterval(this.#reconcileTimer);
    this.#reconcileTimer = undefined;
    for (const [ctrl, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#release(ctrl);
    }
    this.#pending.clear();
    this.#behind.clear();
    this.#rejectedAt.clear();
    this.#commands.clear();
    for (const [key, w] of this.#rejections) {
      clearTimeout(w.timer);
      if (w.suppressed > 0) this.#flushRejections(key, w);
    }
    this.#rejections.clear();
  }

  /**
   * Resolves when every state and reply taken so far is handled (tests, and whoever wants the
   * bridge's view settled): they are acknowledged before they are handled (see #take).
   */
  async idle(): Promise<void> {
    while (this.#lanes.size > 0) await Promise.all([...this.#lanes.values()]);
  }

  /**
   * A state (birth, will) or a reply is acknowledged at once and handled in its controller's lane,
   * beside other controllers' messages — not one at a time in mqtt.js's queue, where each waited
   * for every message before it (issue 7: 10,000 births at start-up, a fan-out's 10,000 replies,
   * the three replies of one grant, each handled after the one before). Unlike an event, neither
   * is a record the gateway must keep before acknowledging it (DESIGN §8): what it says is said
   * again. A state is retained, so a gateway that restarts gets every controller's last one when it
   * subscribes. A reply lost with a crash leaves the controller's desired version above the
   * applied version stored, so the grant service's reconcile at start re-sends the set and the
   * controller answers again; #onReply marks the deliveries before it moves the applied version for
   * that reason, and the periodic #reconcile marks deliveries left pending of a controller in step.
   * A handling that fails (the store away) is tried again, backing off, up to LANE_ATTEMPTS times;
   * a controller's events wait for its lane (#handle), so none overtakes its birth. At most
   * MAX_IN_LANES are taken at once; past that, mqtt.js reads on only when one is done.
   */
  async #take(t: ParsedTopic, packet: IPublishPacket): Promise<void> {
    const { ctrl } = t;
    while (this.#inLanes >= MAX_IN_LANES) await new Promise<void>((room) => this.#waitingForRoom.push(room));
    this.#inLanes += 1;
    const lane: Promise<void> = (this.#lanes.get(ctrl) ?? Promise.resolve())
      .then(() => this.#handleInLane(t, packet))
      .finally(() => {
        this.#inLanes -= 1;
        this.#waitingForRoom.shift()?.();
        if (this.#lanes.get(ctrl) === lane) this.#lanes.delete(ctrl);
      });
    this.#lanes.set(ctrl, lane);
  }

  async #handleInLane(t: ParsedTopic, packet: IPublishPacket): Promise<void> {
    const { ctrl } = t;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#handle(t, packet);
        return;
      } catch (err) {
        if (this.#stopped || attempt >= LANE_ATTEMPTS) {
          this.#o.logger.error('controller message not processed, given up: its next birth, or the sync retry, brings it again', { ctrl, topic: packet.topic, attempts: attempt, err: String(err) });
          return;
        }
        this.#o.logger.warn('controller message not processed; trying again', { ctrl, topic: packet.topic, attempt, err: String(err) });
        await delay(Math.min((this.#o.laneBackoffMs ?? 250) * 2 ** attempt, 5_000));
      }
    }
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
   * A change made here (PROTOCOL §5.8): send the controller its complete desired set at its current
   * desired version now, whoever holds its lease, and take the lease — and the retries until it
   * answers applied or stale — if no other instance holds it (see the class comment).
   */
  async sync(ctrl: string): Promise<void> {
    const { store } = this.#o;
    const version = await store.desiredVersion(ctrl);
    if (version === 0) return;
    const live = await store.get('controllerLive', ctrl);
    await this.#publishSync(ctrl, version, live);
    remember(this.#behind, ctrl, version);
    // Retries only while it is online; its next birth sends otherwise (PROTOCOL §5.8).
    if (live?.online !== true || this.#stopped) return;
    const delayMs = this.#delayFor(ctrl, version);
    if (await store.acquireLease(syncLease(ctrl), this.#owner, delayMs + this.#graceMs())) this.#schedule(ctrl, version, delayMs);
  }

  /**
   * A birth behind, or the reconcile: send and retry only if this instance takes the lease (or
   * holds it already). False when another instance holds it.
   */
  async #claim(ctrl: string, version: number, live: ControllerLive): Promise<boolean> {
    const delayMs = this.#delayFor(ctrl, version);
    if (this.#stopped || !(await this.#o.store.acquireLease(syncLease(ctrl), this.#owner, delayMs + this.#graceMs()))) return false;
    await this.#publishSync(ctrl, version, live);
    this.#schedule(ctrl, version, delayMs);
    return true;
  }

  /** The holder's retry: the current desired set again, while the controller is online and behind. */
  async #retry(ctrl: string): Promise<void> {
    const { store } = this.#o;
    const p = this.#pending.get(ctrl);
    if (!p || this.#stopped) return;
    const live = await store.get('controllerLive', ctrl);
    const version = await store.desiredVersion(ctrl);
    if (this.#pending.get(ctrl) !== p) return; // a reply or a birth moved on meanwhile
    if (live?.online !== true || live.appliedVersion >= version) {
      // Offline: its next birth sends (PROTOCOL §5.8). In step: a reply we did not see said so.
      await this.#finish(ctrl);
      return;
    }
    const delayMs = this.#delayFor(ctrl, version);
    if (!(await store.acquireLease(syncLease(ctrl), this.#owner, delayMs + this.#graceMs()))) {
      // Our lease ran out and another instance took the controller over: its retries now.
      if (this.#pending.get(ctrl) === p) this.#drop(ctrl);
      this.#o.logger.debug('sync retries left to the lease holder', { ctrl });
      return;
    }
    if (this.#pending.get(ctrl) !== p || this.#stopped) {
      if (!this.#pending.has(ctrl)) this.#release(ctrl);
      return;
    }
    await this.#publishSync(ctrl, version, live);
    this.#schedule(ctrl, version, delayMs);
  }

  /** Backoff: doubling while the same version goes unanswered, from `retryMs` for a new one. */
  #delayFor(ctrl: string, version: number): number {
    const p = this.#pending.get(ctrl);
    return p && p.version === version ? Math.min(p.delayMs * 2, this.#o.maxRetryMs ?? 30_000) : (this.#o.retryMs ?? 2_000);
  }

  #graceMs(): number {
    return this.#o.leaseGraceMs ?? 10_000;
  }

  /** Retry in `delayMs` (this instance holds the lease for at least that long). */
  #schedule(ctrl: string, version: number, delayMs: number, waitMs = delayMs * (0.8 + 0.4 * Math.random())): void {
    const prev = this.#pending.get(ctrl);
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => {
      if (this.#stopped) return;
      // Over the retry rate: the same step of the backoff a little later (see #mayRetryNow).
      if (!this.#mayRetryNow()) return this.#schedule(ctrl, version, delayMs, 500 + Math.random() * 1_000);
      this.#retry(ctrl).catch((err: unknown) => this.#o.logger.warn('sync retry failed', { ctrl, err: String(err) }));
    }, waitMs);
    timer.unref();
    this.#pending.set(ctrl, { version, timer, delayMs });
  }

  /**
   * At most MAX_RETRIES_PER_SECOND retries go out a second. A fan-out to 10,000 controllers takes
   * the gateway seconds to read the answers of; without a cap, the first retry (2 s, PROTOCOL §5.8)
   * re-sent the set to every controller whose answer was still waiting to be read — 10,000 more
   * signatures, publishes and answers, slowing the fan-out it retried (issue 7). A retry is for a
   * sync that was lost, which is rare: spreading them out delays nothing that matters.
   */
  #mayRetryNow(): boolean {
    const now = this.#now();
    if (now - this.#retryWindow.start >= 1_000) this.#retryWindow = { start: now, count: 0 };
    if (this.#retryWindow.count >= MAX_RETRIES_PER_SECOND) return false;
    this.#retryWindow.count += 1;
    return true;
  }

  /** Stop retrying, lease kept (someone else holds it now). */
  #drop(ctrl: string): void {
    const p = this.#pending.get(ctrl);
    if (p) clearTimeout(p.timer);
    this.#pending.delete(ctrl);
  }

  /** The exchange is over (PROTOCOL §5.8): stop retrying and let the lease go. */
  async #finish(ctrl: string): Promise<void> {
    this.#drop(ctrl);
    try {
      await this.#o.store.releaseLease(syncLease(ctrl), this.#owner);
    } catch (err) {
      // It runs out by itself; until then a birth behind finds it held, and waits for the reconcile.
      this.#o.logger.warn('sync lease not released', { ctrl, err: String(err) });
    }
  }

  #release(ctrl: string): void {
    this.#o.store.releaseLease(syncLease(ctrl), this.#owner).catch((err: unknown) => this.#o.logger.warn('sync lease not released', { ctrl, err: String(err) }));
  }

  async #publishSync(ctrl: string, version: number, live: ControllerLive | undefined): Promise<void> {
    const { store, gatewayKey, boot } = this.#o;
    const grants = await this.#desired(ctrl);
    const seq = await store.nextSeq(ctrl, live?.lastSeq);
    const msg = buildMessage({ type: 'grants.sync', ctrl, seq, boot, body: { version, grants }, key: gatewayKey, iat: this.#now() });
    this.#publish(controllerTopic(ctrl, 'sync'), JSON.stringify(msg));
    this.#o.logger.debug('sync sent', { ctrl, version, grants: grants.length, seq });
  }

  /**
   * Take over what a dead holder left (see the class comment): online controllers behind their
   * desired version whose lease nobody holds. Candidates only, so its cost follows the controllers
   * behind and the open grants, not the fleet. Returns how many it took over.
   */
  async #reconcile(): Promise<number> {
    if (this.#reconciling || this.#stopped) return 0;
    this.#reconciling = true;
    try {
      const { store } = this.#o;
      const candidates = new Set(this.#behind.keys());
      for (const g of await openGrants(store)) for (const d of g.deliveries) if (d.state === 'pending') candidates.add(d.controllerId);
      let taken = 0;
      for (const ctrl of candidates) {
        if (this.#stopped) break;
        if (this.#pending.has(ctrl)) continue; // ours, being retried
        const live = await store.get('controllerLive', ctrl);
        const desired = await store.desiredVersion(ctrl);
        if (live?.online !== true || live.appliedVersion >= desired) {
          // In step, or offline (its next birth sends): nothing to take over. In step with a
          // delivery still pending (a reply whose handling was lost): mark it now.
          this.#behind.delete(ctrl);
          if (live?.online === true) await this.#confirm(ctrl, live.appliedVersion);
          continue;
        }
        if ((this.#rejectedAt.get(ctrl) ?? 0) >= desired || this.#pending.has(ctrl)) continue;
        if (await this.#claim(ctrl, desired, live)) {
          taken += 1;
          this.#o.logger.info('sync taken over by the reconcile', { ctrl, desired, applied: live.appliedVersion });
        }
      }
      return taken;
    } finally {
      this.#reconciling = false;
    }
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
    const grants = (await this.#openGrantsOf(ctrl)).filter((g) => g.doorIds.some((id) => doors.has(id)));
    const tagsByUnit = new Map<string, Tag[]>();
    for (const unitId of new Set(grants.flatMap((g) => g.unitIds))) {
      tagsByUnit.set(unitId, await listAll(store, 'tags', { field: 'unitId', value: unitId }));
    }
    return desiredGrantsFor(ctrl, { grants, doors, tagsByUnit, now: this.#now() });
  }

  /**
   * The open grants that can touch a controller: those of its building (a grant's doors are all in
   * its building, and so are a controller's). Not every open grant of every building: a sync and a
   * reply cost O(grants of one building), not O(open grants) — with 10,000 controllers and a grant
   * per building, reading them all per reply made a lost-tag fan-out quadratic (issue 7).
   */
  async #openGrantsOf(ctrl: string): Promise<Grant[]> {
    const known = await this.#knownOf(ctrl);
    if (!known) return openGrants(this.#o.store);
    return (await listAll(this.#o.store, 'grants', { field: 'buildingId', value: known.buildingId })).filter(isOpen);
  }

  // ── Messages in ─────────────────────────────────────────────────────────────────────────────

  /** `t`: the packet's topic, parsed once by the caller. */
  async #handle(t: ParsedTopic | undefined, packet: IPublishPacket): Promise<void> {
    if (!t || (t.leaf !== 'state' && t.leaf !== 'reply' && t.leaf !== 'evt')) return;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (payload.length === 0) return; // a cleared retained state
    // An event waits for its controller's birth and replies taken before it (see #take).
    if (t.leaf === 'evt') await this.#lanes.get(t.ctrl);
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
    // A controller's applied version only grows within a boot: a birth of the live boot handled
    // late (another instance saw a reply since) or a retained copy must not take it back.
    const live = change.live.online && cur.boot === change.live.boot && cur.appliedVersion > change.live.appliedVersion ? { ...change.live, appliedVersion: cur.appliedVersion } : change.live;
    // Audited before the live state moves: a redelivered birth or will finds the change again
    // and its entries deduplicated (keyed by the message id).
    if (audit) for (const input of presenceInputs(ctrl, cur, change, msg, buildingId)) await audit.record(input);
    await store.put('controllerLive', live);
    this.emit('controller', live);
    if (!msg.body.online) return;
    // PROTOCOL §6.3: on every birth, bring the controller to the desired version.
    let desired = await store.desiredVersion(ctrl);
    if (msg.body.appliedVersion > desired) {
      // It is ahead of us (a conformance run, a restored store): move above it and re-send.
      desired = await store.bumpDesiredVersion(ctrl, msg.body.appliedVersion);
    }
    if (desired === 0) return;
    this.#rejectedAt.delete(ctrl); // a birth behind gets the set again, rejected before or not
    if (live.appliedVersion < desired) {
      remember(this.#behind, ctrl, desired);
      // Every instance sees the birth; the one that takes the lease sends (DESIGN §11).
      await this.#claim(ctrl, desired, live);
    } else {
      this.#behind.delete(ctrl);
      await this.#confirm(ctrl, live.appliedVersion);
    }
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
    const { store } = this.#o;
    const p = this.#pending.get(ctrl);
    if (body.status === 'rejected') {
      // A sync's rejection (it carries appliedVersion, a command's does not): the same set would be
      // rejected again, so no instance retries it until the desired state changes (PROTOCOL §5.8).
      if (body.appliedVersion !== undefined) {
        remember(this.#rejectedAt, ctrl, p?.version ?? (await store.desiredVersion(ctrl)));
        this.#behind.delete(ctrl);
        if (p && this.#pending.get(ctrl) === p) await this.#finish(ctrl);
      }
      this.#o.logger.error('controller rejected a message', { ctrl, code: body.code, ref: body.ref });
      return;
    }
    // applied/stale of a sync (ours or another instance's) says how far the controller is.
    if (body.appliedVersion === undefined) return;
    const applied = body.appliedVersion;
    if ((this.#behind.get(ctrl) ?? Infinity) <= applied) this.#behind.delete(ctrl);
    // Deliveries first: a crash between the two leaves the controller behind in the store, so the
    // set goes again and its answer marks them (see #take); not marked and in step, it would wait for a birth.
    await this.#confirm(ctrl, applied);
    // Side by side (one group commit on the embedded store): neither needs the other.
    await Promise.all([
      store.update('controllerLive', ctrl, (cur) => (cur.appliedVersion >= applied ? undefined : { ...cur, appliedVersion: applied })),
      p && applied >= p.version ? this.#retriedIn(ctrl, p, applied) : undefined,
    ]);
  }

  /**
   * The version we retried is in. A change made on another instance meanwhile went out from there
   * at once and left the retries to us, the holder: keep on while it is behind.
   */
  async #retriedIn(ctrl: string, p: PendingSync, applied: number): Promise<void> {
    const { store } = this.#o;
    const desired = await store.desiredVersion(ctrl);
    if (this.#pending.get(ctrl) !== p) return;
    if (desired > applied) {
      const delayMs = this.#o.retryMs ?? 2_000;
      this.#schedule(ctrl, desired, delayMs);
      if (!(await store.acquireLease(syncLease(ctrl), this.#owner, delayMs + this.#graceMs()))) this.#drop(ctrl);
    } else {
      await this.#finish(ctrl);
    }
  }

  /** Mark every live grant whose delivery to `ctrl` is covered by `applied` as delivered. */
  async #confirm(ctrl: string, applied: number): Promise<void> {
    const { store, audit } = this.#o;
    const now = this.#now();
    const done: string[] = [];
    const covers = (d: Grant['deliveries'][number]) => d.controllerId === ctrl && d.state === 'pending' && d.version <= applied;
    for (const g of await this.#openGrantsOf(ctrl)) {
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
