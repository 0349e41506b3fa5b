/**
 * The gateway's side of the wire for tests: signs what it sends with the fixture's gateway key,
 * verifies everything the controller sends with the controller's key, and keeps it for assertions.
 */
import type { MqttClient } from 'mqtt';
import {
  buildMessage,
  controllerTopic,
  MAX_PAYLOAD_BYTES,
  openMessage,
  parseControllerTopic,
  trustedKeys,
  TYPES_BY_TOPIC,
  type BodyOf,
  type Message,
  type MessageType,
  type SigningKey,
} from '../../src/index.js';
import { connectMqtt } from '../../src/controller/index.js';
import type { Fixture } from './fixtures.js';

export interface Received {
  topic: string;
  retained: boolean;
  message: Message;
}

export class GatewayHarness {
  readonly received: Received[] = [];
  readonly invalid: { topic: string; code: string }[] = [];
  #client!: MqttClient;
  #seq: number;
  #version: number;
  readonly #fx: Fixture;
  readonly #url: string;
  readonly #waiters = new Set<() => void>();

  constructor(fx: Fixture, url: string, start: { seq?: number; version?: number } = {}) {
    this.#fx = fx;
    this.#url = url;
    this.#seq = start.seq ?? 0;
    this.#version = start.version ?? 0;
  }

  get ctrl(): string {
    return this.#fx.bundle.controllerId;
  }

  async start(): Promise<void> {
    this.#client = connectMqtt({ url: this.#url, clientId: `gw-${this.ctrl}`, reconnectPeriod: 200 });
    const keys = trustedKeys([{ kid: this.#fx.bundle.controllerKid, publicKey: this.#fx.controllerPublicKey }]);
    this.#client.on('message', (topic, payload, packet) => {
      const t = parseControllerTopic(topic);
      if (!t || payload.length === 0) return;
      const opened = openMessage(payload, { types: TYPES_BY_TOPIC[t.leaf], keys, maxBytes: MAX_PAYLOAD_BYTES[t.leaf], ctrl: t.ctrl, now: Date.now() });
      if (opened.ok) this.received.push({ topic, retained: packet.retain, message: opened.message });
      else this.invalid.push({ topic, code: opened.code });
      for (const w of this.#waiters) w();
    });
    await new Promise<void>((resolve) => this.#client.once('connect', () => resolve()));
    await this.#client.subscribeAsync(['reply', 'evt', 'state'].map((l) => `sp/v1/c/${this.ctrl}/${l}`), { qos: 1 });
  }

  /** Sign and publish; returns the message and the exact payload (for replays). */
  async send<K extends MessageType>(type: K, body: BodyOf<K>, o: { seq?: number; exp?: number; ctrl?: string; topic?: 'sync' | 'cmd'; key?: SigningKey } = {}) {
    const seq = o.seq ?? ++this.#seq;
    const now = Date.now();
    const isCmd = type !== 'grants.sync';
    const message = buildMessage({ type, ctrl: o.ctrl ?? this.ctrl, seq, boot: 'gwtest-boot', body, key: o.key ?? this.#fx.gateway, iat: now, ...(o.exp !== undefined ? { exp: o.exp } : isCmd ? { exp: now + 5000 } : {}) });
    const payload = JSON.stringify(message);
    await this.publishRaw(o.topic ?? (isCmd ? 'cmd' : 'sync'), payload);
    return { message, payload };
  }

  nextVersion(): number {
    return ++this.#version;
  }

  async publishRaw(leaf: 'sync' | 'cmd', payload: string | Buffer): Promise<void> {
    await this.#client.publishAsync(controllerTopic(this.ctrl, leaf), payload, { qos: 1 });
  }

  /** Wait until `pick` finds something among received messages (checked on every arrival). */
  async waitFor<T>(pick: (r: Received[]) => T | undefined, ms = 5000, what = 'message'): Promise<T> {
    const found = pick(this.received);
    if (found !== undefined) return found;
    return new Promise<T>((resolve, reject) => {
      // Checked on every arrival, and every 25 ms for conditions that change without one.
      const poll = setInterval(() => check(), 25);
      const timer = setTimeout(() => {
        clearInterval(poll);
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const check = () => {
        const hit = pick(this.received);
        if (hit === undefined) return;
        clearTimeout(timer);
        clearInterval(poll);
        this.#waiters.delete(check);
        resolve(hit);
      };
      this.#waiters.add(check);
    });
  }

  reply(ref: string, ms?: number): Promise<BodyOf<'reply'>> {
    return this.waitFor((r) => r.find((x) => x.message.type === 'reply' && (x.message.body).ref === ref)?.message.body as BodyOf<'reply'> | undefined, ms, `reply to ${ref}`);
  }

  events(): Message<'evt'>[] {
    return this.received.filter((r) => r.message.type === 'evt').map((r) => r.message as Message<'evt'>);
  }

  /** Clear the retained state we leave on a shared broker, then disconnect. */
  async stop(): Promise<void> {
    // Unsubscribe first: a message arriving while the client ends would be acked on a closed stream.
    await this.#client.unsubscribeAsync(['reply', 'evt', 'state'].map((l) => `sp/v1/c/${this.ctrl}/${l}`));
    await this.#client.publishAsync(controllerTopic(this.ctrl, 'state'), '', { qos: 1, retain: true });
    await this.#client.endAsync();
  }
}
