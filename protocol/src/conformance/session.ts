/**
 * The conformance suite's side of the wire: it plays the gateway for one controller. Everything
 * it sends is signed with a gateway key the controller trusts; everything the controller sends is
 * opened with `openMessage` against the controller's registered key (P-5) and kept, in arrival
 * order, for the checks to look at.
 *
 * Every MQTT connection goes through `connectMqtt`, so every socket has TCP_NODELAY (DESIGN §12).
 */
import { createHash, randomBytes, verify, type KeyObject } from 'node:crypto';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { buildMessage, openMessage, signingBytes } from '../envelope.js';
import { publicKeyFromRaw, trustedKeys, type SigningKey, type TrustedKeys } from '../keys.js';
import { silentLogger, type Logger } from '../log.js';
import { connectMqtt } from '../mqtt/connect.js';
import type { ConformanceOptions } from './options.js';
import type { BodyOf, EvtBody, GatewayCommandType, Message, ReplyBody } from '../schemas.js';
import { controllerTopic, MAX_COMMAND_TTL_MS, MAX_PAYLOAD_BYTES, parseControllerTopic, TOPIC_ROOT, TYPES_BY_TOPIC } from '../topics.js';

/** The run could not start (broker unreachable, controller misdescribed): no report is possible. */
export class ConformanceSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConformanceSetupError';
  }
}

/** What a session needs: where the controller is and who it is (as the suite was given), and the gateway key as an object. */
export type SessionOptions = Pick<ConformanceOptions, 'url' | 'username' | 'password' | 'controllerId' | 'controllerKid' | 'controllerPublicKey'> & {
  /** A key the controller trusts, with the kid it knows it by. */
  gatewayKey: SigningKey;
  log?: Logger;
};

/** Topic leaves the controller publishes on, and the ones the gateway publishes on. */
export type InLeaf = 'state' | 'reply' | 'evt';
export type OutLeaf = 'sync' | 'cmd';
/** Anything a controller sends. */
export type ControllerMessage = Message<'state'> | Message<'reply'> | Message<'evt'>;

/** One verified message from the controller. */
export interface Received {
  leaf: InLeaf;
  /** Local receipt time, ms. */
  at: number;
  qos: number;
  /** Delivered as a retained message (only on subscribe, in MQTT 3.1.1). */
  retain: boolean;
  /** An evt whose (boot, seq) came before: a QoS 1 redelivery or a backlog resend (§7.9). */
  duplicate: boolean;
  message: ControllerMessage;
}

/** A message the controller sent that failed `openMessage` (a P-5 violation). */
export interface Invalid {
  leaf: InLeaf;
  code: string;
  detail: string;
  retain: boolean;
}

/** Overrides for building a gateway message; the bad-input checks use them to break one thing at a time. */
export interface SendOptions {
  seq?: number;
  iat?: number;
  /** Omit for the default (commands: iat + 8 s; syncs: none); `null` for no `exp` at all. */
  exp?: number | null;
  ctrl?: string;
  key?: SigningKey;
  /** Topic leaf; by default `sync` for grants.sync and `cmd` for everything else. */
  leaf?: OutLeaf;
}

/** A message we published: what it was, its exact bytes (for replays), and where replies start. */
export interface Sent<K extends GatewayCommandType = GatewayCommandType> {
  message: Message<K>;
  payload: string;
  leaf: OutLeaf;
  /** `received.length` just before it was published: replies to it come after. */
  mark: number;
}

const COMMAND_TTL_MS = Math.min(8_000, MAX_COMMAND_TTL_MS);

/** Narrow a received message by type. */
export const isState = (r: Received): r is Received & { message: Message<'state'> } => r.message.type === 'state';
export const isReply = (r: Received): r is Received & { message: Message<'reply'> } => r.message.type === 'reply';
export const isEvt = (r: Received): r is Received & { message: Message<'evt'> } => r.message.type === 'evt';

/** The body of a received reply or evt, or undefined for anything else (`evtBody` skips duplicates). */
export function replyBody(r: Received): ReplyBody | undefined {
  return isReply(r) ? r.message.body : undefined;
}
export function evtBody(r: Received): EvtBody | undefined {
  return isEvt(r) && !r.duplicate ? r.message.body : undefined;
}

/** Hex SHA-256 of a payload: how the watcher recognises what we sent. */
export function sha256(payload: string | Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}

function randomClientId(role: string): string {
  return `sp-conformance-${role}-${randomBytes(5).toString('hex')}`;
}

interface ConnectOptions {
  url: string;
  username?: string;
  password?: string;
}

/** Connect, or throw ConformanceSetupError after `timeoutMs`. */
async function connectOrThrow(o: ConnectOptions, role: string, timeoutMs: number, log: Logger): Promise<MqttClient> {
  const client = connectMqtt({
    url: o.url,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    clientId: randomClientId(role),
    clean: true,
    reconnectPeriod: 500,
    connectTimeout: timeoutMs,
  });
  let lastError: string | undefined;
  client.on('error', (err) => {
    lastError = err.message;
    log.warn('mqtt error', { role, err: err.message });
  });
  const ok = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ok) {
    client.end(true);
    // The host only: a URL can carry user:password.
    throw new ConformanceSetupError(`could not connect to ${new URL(o.url).host} within ${timeoutMs} ms${lastError ? `: ${lastError}` : ''}`);
  }
  return client;
}

/** The gateway end of the conversation with one controller. */
export class GatewaySession {
  readonly ctrl: string;
  /** Every verified message from the controller, in arrival order. */
  readonly received: Received[] = [];
  readonly invalid: Invalid[] = [];
  /** sha256 of every payload we published: the watcher tells ours from anyone else's. */
  readonly sentHashes = new Set<string>();
  /** Zero-length payloads on the state topic (someone cleared the retained state). */
  emptyStates = 0;
  /** Highest seq of ours the controller answered: it accepted that seq (P-7). */
  lastAcceptedSeq = 0;
  /** Controller clock minus ours, ms; times we send are on the controller's clock. */
  skewMs = 0;

  readonly #o: SessionOptions;
  readonly #log: Logger;
  readonly #keys: TrustedKeys;
  readonly #boot = `conf-${randomBytes(8).toString('hex')}`;
  readonly #waiters = new Set<() => void>();
  readonly #evtKeys = new Set<string>();
  #client: MqttClient | undefined;
  #seq = 0;
  #version = 0;

  constructor(o: SessionOptions) {
    this.#o = o;
    this.ctrl = o.controllerId;
    this.#log = o.log ?? silentLogger;
    this.#keys = trustedKeys([{ kid: o.controllerKid, publicKey: o.controllerPublicKey }]);
  }

  /** Connect and subscribe to the controller's state, reply and evt topics at QoS 1. */
  async start(timeoutMs: number): Promise<void> {
    const client = await connectOrThrow(this.#o, 'gw', timeoutMs, this.#log);
    this.#client = client;
    client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet));
    const granted = await client.subscribeAsync(
      (['state', 'reply', 'evt'] as const).map((leaf) => controllerTopic(this.ctrl, leaf)),
      { qos: 1 },
    );
    // QoS 1 end to end, or the QoS checks of P-2/P-3 would blame the controller for the broker.
    const short = granted.filter((g) => g.qos !== 1);
    if (short.length > 0) throw new ConformanceSetupError(`broker did not grant QoS 1 on ${short.map((g) => `${g.topic} (got ${g.qos})`).join(', ')}`);
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    // Wake every waiter: with no client they resolve at once instead of sitting on their timers.
    for (const w of this.#waiters) w();
    if (client) await client.endAsync(!client.connected);
  }

  /** Open a controller payload the way the session does (P-5), e.g. one read from a retained probe. */
  open(leaf: InLeaf, payload: Uint8Array): ReturnType<typeof openMessage> {
    return openMessage(payload, { types: TYPES_BY_TOPIC[leaf], keys: this.#keys, maxBytes: MAX_PAYLOAD_BYTES[leaf], ctrl: this.ctrl, now: this.now() });
  }

  /** The controller's clock, as far as we know it. */
  now(): number {
    return Date.now() + this.skewMs;
  }

  /** Our seq and version counters continue above what the controller has seen (its birth). */
  raiseCounters(seq: number, version: number): void {
    this.#seq = Math.max(this.#seq, seq);
    this.#version = Math.max(this.#version, version);
  }

  nextSeq(): number {
    return ++this.#seq;
  }

  nextVersion(): number {
    return ++this.#version;
  }

  get lastVersion(): number {
    return this.#version;
  }

  mark(): number {
    return this.received.length;
  }

  since(mark: number): Received[] {
    return this.received.slice(mark);
  }

  /** The first reply with `ref` received after `mark`. */
  replyTo(ref: string, mark: number): ReplyBody | undefined {
    for (const r of this.since(mark)) {
      const b = replyBody(r);
      if (b?.ref === ref) return b;
    }
    return undefined;
  }

  /**
   * Resolve with the first non-undefined `pick` over messages received after `since` (already
   * received ones first), or undefined after `timeoutMs`.
   */
  async waitFor<T>(pick: (r: Received) => T | undefined, { since, timeoutMs }: { since: number; timeoutMs: number }): Promise<T | undefined> {
    let next = since;
    const scan = (): T | undefined => {
      for (; next < this.received.length; next++) {
        const hit = pick(this.received[next] as Received);
        if (hit !== undefined) return hit;
      }
      return undefined;
    };
    const now = scan();
    if (now !== undefined || !this.#client) return now;
    return new Promise<T | undefined>((resolve) => {
      const done = (v: T | undefined) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      const check = () => {
        const hit = scan();
        if (hit !== undefined || !this.#client) done(hit);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Sign a message on the controller's clock (not published). */
  build<K extends GatewayCommandType>(type: K, body: BodyOf<K>, o: SendOptions = {}): { message: Message<K>; payload: string; leaf: OutLeaf } {
    const iat = o.iat ?? this.now();
    const leaf = o.leaf ?? (type === 'grants.sync' ? 'sync' : 'cmd');
    const exp = o.exp === null ? undefined : (o.exp ?? (type === 'grants.sync' ? undefined : iat + COMMAND_TTL_MS));
    const message = buildMessage({
      type,
      ctrl: o.ctrl ?? this.ctrl,
      seq: o.seq ?? this.nextSeq(),
      boot: this.#boot,
      body,
      key: o.key ?? this.#o.gatewayKey,
      iat,
      ...(exp !== undefined ? { exp } : {}),
    });
    return { message, payload: JSON.stringify(message), leaf };
  }

  /** Publish any bytes at QoS 1, never retained (§5.1: a retained command fires again at every reboot). */
  async publish(leaf: OutLeaf, payload: string | Buffer): Promise<number> {
    const client = this.#client;
    if (!client) throw new Error('session closed');
    const mark = this.mark();
    this.sentHashes.add(sha256(payload));
    await client.publishAsync(controllerTopic(this.ctrl, leaf), payload, { qos: 1, retain: false });
    return mark;
  }

  async send<K extends GatewayCommandType>(type: K, body: BodyOf<K>, o: SendOptions = {}): Promise<Sent<K>> {
    const built = this.build(type, body, o);
    const mark = await this.publish(built.leaf, built.payload);
    return { ...built, mark };
  }

  /** Send and wait for the reply whose `ref` is the message id. */
  async request<K extends GatewayCommandType>(
    type: K,
    body: BodyOf<K>,
    timeoutMs: number,
    o: SendOptions = {},
  ): Promise<{ sent: Sent<K>; reply: ReplyBody | undefined }> {
    const sent = await this.send(type, body, o);
    const reply = await this.waitFor((r) => (replyBody(r)?.ref === sent.message.id ? replyBody(r) : undefined), { since: sent.mark, timeoutMs });
    if (reply) this.lastAcceptedSeq = Math.max(this.lastAcceptedSeq, sent.message.seq);
    return { sent, reply };
  }

  #onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const t = parseControllerTopic(topic);
    if (!t || t.ctrl !== this.ctrl || (t.leaf !== 'state' && t.leaf !== 'reply' && t.leaf !== 'evt')) return;
    const leaf = t.leaf;
    if (payload.length === 0 && leaf === 'state') {
      this.emptyStates += 1;
      return;
    }
    // P-5: the same checks a gateway applies to everything a controller sends.
    const opened = this.open(leaf, payload);
    if (opened.ok) {
      const message = opened.message as ControllerMessage;
      let duplicate = false;
      if (message.type === 'evt') {
        const key = `${message.boot}/${message.seq}`;
        duplicate = this.#evtKeys.has(key);
        this.#evtKeys.add(key);
      }
      this.received.push({ leaf, at: Date.now(), qos: packet.qos, retain: packet.retain, duplicate, message });
    } else {
      this.invalid.push({ leaf, code: opened.code, detail: opened.detail, retain: packet.retain });
      this.#log.warn('controller message failed verification', { leaf, code: opened.code, detail: opened.detail });
    }
    for (const w of this.#waiters) w();
  }
}

/** A message as a fresh subscriber gets it. */
export interface Delivered {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
}

/**
 * What a fresh subscriber to `topics` receives within `waitMs` after its SUBACK: on MQTT 3.1.1,
 * the messages flagged `retain` are exactly the retained ones (P-3, P-4).
 */
export async function readRetained(o: ConnectOptions & { topics: string[]; waitMs: number; timeoutMs: number; log?: Logger }): Promise<Delivered[]> {
  const client = await connectOrThrow(o, 'probe', o.timeoutMs, o.log ?? silentLogger);
  const got: Delivered[] = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, payload, qos: packet.qos, retain: packet.retain }));
  try {
    await client.subscribeAsync(o.topics, { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, o.waitMs));
  } finally {
    await client.endAsync();
  }
  return got.filter((d) => d.retain);
}

/** Whether `payload` is an envelope signed by `key` under `kid`. */
export function signedBy(payload: Buffer, kid: string, key: KeyObject): boolean {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return false;
  }
  if (typeof value !== 'object' || value === null) return false;
  const env = value as Record<string, unknown>;
  if (env.kid !== kid || typeof env.sig !== 'string') return false;
  try {
    return verify(null, signingBytes(env), key, Buffer.from(env.sig, 'base64url'));
  } catch {
    return false;
  }
}

/**
 * P-1: watches `sp/v1/#` during the run for anything the controller signs outside its own
 * reply/evt/state topics, and for messages to its sync/cmd topics that we did not send (another
 * gateway talking to it would disturb the run).
 */
export class PrefixWatcher {
  /** Where the controller published something it must not have. */
  readonly violations: string[] = [];
  /** Messages to the controller's sync/cmd topics from someone else. */
  foreign = 0;
  /** The broker refused the `sp/v1/#` subscription (an ACL): nothing was watched. */
  refused = false;

  readonly #o: SessionOptions;
  readonly #key: KeyObject;
  readonly #kidBytes: Buffer;
  readonly #sent: ReadonlySet<string>;
  readonly #prefix: string;
  #client: MqttClient | undefined;

  constructor(o: SessionOptions, sentHashes: ReadonlySet<string>) {
    this.#o = o;
    this.#key = publicKeyFromRaw(o.controllerPublicKey);
    this.#kidBytes = Buffer.from(JSON.stringify(o.controllerKid));
    this.#sent = sentHashes;
    this.#prefix = `${TOPIC_ROOT}/c/${o.controllerId}/`;
  }

  async start(timeoutMs: number): Promise<void> {
    const client = await connectOrThrow(this.#o, 'watch', timeoutMs, this.#o.log ?? silentLogger);
    this.#client = client;
    client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet));
    // QoS 0 is enough to look, and keeps the load on a busy shared broker low.
    const granted = await client.subscribeAsync(`${TOPIC_ROOT}/#`, { qos: 0 });
    this.refused = granted.some((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2);
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync(!client.connected);
  }

  #onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    // Retained messages predate the run; P-1 is about what the controller does now.
    if (packet.retain) return;
    if (topic.startsWith(this.#prefix)) {
      const leaf = topic.slice(this.#prefix.length);
      if (leaf === 'reply' || leaf === 'evt' || leaf === 'state') return;
      if (this.#sent.has(sha256(payload))) return;
      if (signedBy(payload, this.#o.controllerKid, this.#key)) this.#violation(topic);
      else if (leaf === 'sync' || leaf === 'cmd') this.foreign += 1;
      return;
    }
    // Cheap pre-filter: every message the controller signs names its kid.
    if (payload.includes(this.#kidBytes) && signedBy(payload, this.#o.controllerKid, this.#key)) this.#violation(topic);
  }

  #violation(topic: string): void {
    if (this.violations.length < 5 && !this.violations.includes(topic)) this.violations.push(topic);
  }
}
