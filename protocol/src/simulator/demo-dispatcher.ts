/**
 * A stand-in dispatch centre for demos, until the gateway exists: holding the fleet's gateway
 * key, it periodically signs a `grants.sync` to a few online controllers granting some of the
 * responders' tags for a short while, so simulated presentations get granted and the whole loop
 * (sync → applied → local decision → access event) can be watched.
 *
 * It is deliberately small and not a gateway: no store, no retries, no audit. It follows the
 * rules a real sender must, though: syncs are the complete desired set (DESIGN §5.4), `seq` is
 * above the controller's birth `lastSeq` (§5.2, `nextSeq`), `version` above its applied version,
 * a birth that is behind gets the set again (§5.3), and births are checked before they are trusted.
 */
import type { MqttClient } from 'mqtt';
import { nextSeq } from '../checks.js';
import { buildMessage, newId, openMessage } from '../envelope.js';
import { privateKeyFromSeed, rawPublicKey, trustedKeys, type SigningKey, type TrustedKeys } from '../keys.js';
import { silentLogger, type Logger } from '../log.js';
import { connectMqtt } from '../mqtt/connect.js';
import type { ProvisioningBundle, SyncGrant } from '../schemas.js';
import { controllerTopic, MAX_PAYLOAD_BYTES, parseControllerTopic, TOPIC_ROOT } from '../topics.js';
import type { FleetGatewayKey } from './fleet-file.js';

export interface DemoDispatcherOptions {
  url: string;
  gateway: FleetGatewayKey;
  controllers: readonly ProvisioningBundle[];
  /** Tag uids to grant a random share of. */
  tags: readonly string[];
  /** Time between rounds; default 5 s. */
  intervalMs?: number;
  /** How long each grant lasts; default 60 s. */
  grantMs?: number;
  /** Share of online controllers that get a new grant each round; default 0.5 (at least one). */
  share?: number;
  logger?: Logger;
  random?: () => number;
  now?: () => number;
}

interface Known {
  bundle: ProvisioningBundle;
  keys: TrustedKeys;
  doors: string[];
  online: boolean;
  boot: string | undefined;
  /** From its birth: the highest seq it accepted and the version it holds. */
  controllerLastSeq: number | undefined;
  controllerApplied: number;
  /** What we have sent it. */
  seq: number;
  version: number;
  grants: SyncGrant[];
}

/** At most this many live demo grants per controller: enough variety, small syncs. */
const MAX_GRANTS = 3;
const CONNECT_TIMEOUT_MS = 10_000;

export class DemoDispatcher {
  readonly #o: DemoDispatcherOptions;
  readonly #log: Logger;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #key: SigningKey;
  readonly #known = new Map<string, Known>();
  #client: MqttClient | undefined;
  #timer: NodeJS.Timeout | undefined;
  #round = 0;
  #syncsSent = 0;
  #boot = '';

  constructor(o: DemoDispatcherOptions) {
    this.#o = o;
    this.#log = o.logger ?? silentLogger;
    this.#random = o.random ?? Math.random;
    this.#now = o.now ?? Date.now;
    this.#key = { kid: o.gateway.kid, key: privateKeyFromSeed(o.gateway.privateKey) };
  }

  /** Syncs published so far. */
  get syncsSent(): number {
    return this.#syncsSent;
  }

  /** Connect, learn every controller's state from its (retained) birth, then run rounds. */
  async start(): Promise<void> {
    for (const b of this.#o.controllers) {
      // Births are signed with the controller's key; we derive its public half from the bundle.
      const pub = b.controllerKey ? rawPublicKey(privateKeyFromSeed(b.controllerKey.privateKey)) : undefined;
      this.#known.set(b.controllerId, {
        bundle: b,
        keys: trustedKeys(pub ? [{ kid: b.controllerKid, publicKey: pub }] : []),
        doors: (b.doors ?? []).map((d) => d.ref),
        online: false,
        boot: undefined,
        controllerLastSeq: undefined,
        controllerApplied: 0,
        seq: 0,
        version: 0,
        grants: [],
      });
    }
    const client = connectMqtt({ url: this.#o.url, clientId: `sp-demo-dispatcher-${newId().slice(-10).toLowerCase()}`, clean: true });
    this.#client = client;
    client.on('message', (topic, payload) => this.#onState(topic, payload));
    client.on('error', (err) => this.#log.warn('demo dispatcher mqtt error', { err: err.message }));
    this.#boot = newId();
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), CONNECT_TIMEOUT_MS);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) {
      await this.stop();
      throw new Error(`demo dispatcher could not connect to ${this.#o.url} within ${CONNECT_TIMEOUT_MS / 1000} s`);
    }
    await client.subscribeAsync(`${TOPIC_ROOT}/c/+/state`, { qos: 1 });
    // Retained births arrive right after the SUBACK; give them a moment before the first round.
    this.#timer = setTimeout(() => this.#tick(), 200);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.endAsync();
  }

  #tick(): void {
    if (!this.#client) return;
    this.round();
    this.#timer = setTimeout(() => this.#tick(), this.#o.intervalMs ?? 5_000);
  }

  /** One round: a new grant for a share of the online controllers. Public so tests can drive it. */
  round(): number {
    if (this.#o.tags.length === 0) return 0;
    this.#round += 1;
    const online = [...this.#known.values()].filter((k) => k.online && k.controllerLastSeq !== undefined && k.doors.length > 0);
    const count = Math.min(online.length, Math.max(1, Math.ceil(online.length * (this.#o.share ?? 0.5))));
    for (const k of this.#shuffle(online).slice(0, count)) {
      const now = this.#now();
      const grant: SyncGrant = {
        grantId: `demo-${newId(now)}`,
        incident: `DEMO-${this.#round}`,
        doors: this.#some(k.doors),
        credentials: this.#some([...this.#o.tags]).map((uid) => ({ kind: 'tag' as const, uid })),
        // A second of slack so a presentation right after the sync is not `not-yet-valid`.
        notBefore: now - 1_000,
        notAfter: now + (this.#o.grantMs ?? 60_000),
      };
      // Desired state, not deltas (§5.4): the new grant plus those still live.
      k.grants = [...k.grants.filter((g) => g.notAfter > now + 1_000), grant].slice(-MAX_GRANTS);
      k.version = Math.max(k.version, k.controllerApplied) + 1;
      this.#send(k);
    }
    return count;
  }

  #send(k: Known): void {
    const client = this.#client;
    if (!client) return;
    k.seq = nextSeq(k.seq, k.controllerLastSeq);
    const msg = buildMessage({
      type: 'grants.sync',
      ctrl: k.bundle.controllerId,
      seq: k.seq,
      boot: this.#boot,
      body: { version: k.version, grants: k.grants },
      key: this.#key,
      iat: this.#now(),
    });
    // Never retained (§5.1): a retained sync would keep credentials in the broker.
    client.publish(controllerTopic(k.bundle.controllerId, 'sync'), JSON.stringify(msg), { qos: 1 }, (err) => {
      if (err) this.#log.warn('demo sync not published', { ctrl: k.bundle.controllerId, err: err.message });
    });
    this.#syncsSent += 1;
    this.#log.debug('demo sync sent', { ctrl: k.bundle.controllerId, version: k.version, grants: k.grants.length });
  }

  #onState(topic: string, payload: Buffer): void {
    const t = parseControllerTopic(topic);
    const k = t && t.leaf === 'state' ? this.#known.get(t.ctrl) : undefined;
    // Other controllers on a shared broker, and cleared retained topics (empty payloads), are not ours.
    if (!t || !k || payload.length === 0) return;
    const opened = openMessage(payload, { types: ['state'], keys: k.keys, maxBytes: MAX_PAYLOAD_BYTES.state, ctrl: t.ctrl, now: this.#now() });
    if (!opened.ok) {
      this.#log.warn('demo dispatcher dropped a state message', { ctrl: t.ctrl, code: opened.code });
      return;
    }
    const msg = opened.message as { boot: string; body: { online: boolean; lastSeq?: number; appliedVersion?: number } };
    if (!msg.body.online) {
      // A late will from an older boot must not mark the live boot offline (§5.3).
      if (k.boot === undefined || k.boot === msg.boot) k.online = false;
      return;
    }
    k.online = true;
    k.boot = msg.boot;
    k.controllerLastSeq = msg.body.lastSeq ?? 0;
    k.controllerApplied = msg.body.appliedVersion ?? 0;
    // §5.3: a controller that is behind what we want it to hold gets the full set again.
    const now = this.#now();
    if (k.version > k.controllerApplied && k.grants.some((g) => g.notAfter > now)) {
      k.version = Math.max(k.version, k.controllerApplied + 1);
      this.#send(k);
    }
  }

  /** A random non-empty subset, in the original order. */
  #some<T>(items: readonly T[]): T[] {
    const picked = items.filter(() => this.#random() < 0.5);
    if (picked.length > 0) return picked;
    const one = items[Math.floor(this.#random() * items.length)] ?? items[0];
    return one === undefined ? [] : [one];
  }

  #shuffle<T>(items: T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [a[i], a[j]] = [a[j] as T, a[i] as T];
    }
    return a;
  }
}
