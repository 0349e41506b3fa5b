/**
 * Who may connect to the embedded broker and what each may touch (DESIGN §5.1, §7; PROTOCOL
 * §3.2). Two kinds of client:
 * - a controller: username = its id = its client id, password = the one from its provisioning
 *   bundle (verified against the stored scrypt hash). It may subscribe to `sp/v1/c/<own id>/sync`
 *   and `…/cmd` only, and publish (or set a will) on `…/reply`, `…/evt` and `…/state` only,
 *   never retained on `reply`/`evt` (PROTOCOL §3.3);
 * - the gateway's own service account: anything under `sp/v1/`.
 * Anonymous clients are refused. Every refusal is logged as a security event (never with a
 * secret), counted, and handed to `onRefused` (for the audit trail).
 *
 * Plain functions of plain data: the embedded broker adapter wires them into aedes; a Mosquitto
 * deployment expresses the same rules in its ACL (DESIGN §7).
 *
 * Password checks cost one scrypt each (tens of ms), so after a broker restart a fleet of
 * controllers reconnecting at once would queue seconds of work. Results are therefore cached
 * briefly per (username, password): a success for `okTtlMs`, a failure for at most a few
 * seconds, and only while the stored hash is still the one checked against (a re-registered or
 * removed controller is re-checked at once).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { controllerTopic, TOPIC_ROOT, type Logger } from '@smart-passage/protocol';
import type { StorePort } from '../../store/port.js';
import type { PasswordHasher } from '../auth/passwords.js';

/** The verdicts of a CONNECT (the embedded broker's `ConnectVerdict`). */
export type ConnectResult = 'ok' | 'identifier-rejected' | 'unavailable' | 'bad-credentials' | 'not-authorized';

/** A connection as the broker hands it over: one object per connection. */
export interface AuthClient {
  readonly id: string;
}

export interface PublishRequest {
  topic: string;
  qos: number;
  retain: boolean;
}

export type BrokerIdentity = { kind: 'controller'; id: string } | { kind: 'gateway' };

export type RefusedAction = 'connect' | 'publish' | 'subscribe';

/**
 * What a refusal event carries: ids and topics, never a password (issue 4: the gateway records it
 * as `security.rejected`, on the building's chain when `buildingId` is set, else the system chain).
 */
export interface Refusal {
  action: RefusedAction;
  reason: string;
  /** The MQTT client id the connection gave ('' for a will whose connection is gone). */
  clientId: string;
  /** The username given; for an unknown one it is what the client typed, so record `controllerId` instead where that matters. */
  username?: string;
  /** The registered controller concerned: the one authenticated, or the one a refused CONNECT named. */
  controllerId?: string;
  /** That controller's building. */
  buildingId?: string;
  topic?: string;
  /**
   * Log lines for the same (action, client, reason) are rate-limited (`logEveryMs`): true when this
   * refusal fell inside such a window and was only counted. `suppressed` on the next reported one
   * says how many were.
   */
  repeated: boolean;
  suppressed?: number;
}

export interface BrokerAuthOptions {
  /** Controllers are looked up here on every CONNECT. */
  store: Pick<StorePort, 'get'>;
  hasher: PasswordHasher;
  /** The gateway's own MQTT account. */
  service: { username: string; password: string };
  logger: Logger;
  /**
   * Audit hook for refusals (DESIGN §8 `security.rejected`), called synchronously for every one;
   * the broker cannot wait for it, so it must handle its own promise. To rate-limit the trail as
   * the log is, record only those with `repeated: false` (their `suppressed` counts the rest).
   */
  onRefused?: (r: Refusal) => void;
  now?: () => number;
  /** How long a verified password stays verified; default 60 s. */
  okTtlMs?: number;
  /** How long a failed check is remembered; default 2 s, never more than 5 s. */
  failTtlMs?: number;
  /** Most cache entries kept (oldest dropped first); default 10,000. */
  maxEntries?: number;
  /** One log line per (action, client, reason) per this long; the rest only counted. Default 10 s. */
  logEveryMs?: number;
}

interface CacheEntry {
  ok: boolean;
  /** The stored hash the password was checked against: the entry holds only while it is current. */
  storedHash: string | undefined;
  until: number;
}

/** A refusal before the rate-limit bookkeeping. */
type RefusalInput = Omit<Refusal, 'repeated' | 'suppressed'>;

const MAX_FAIL_TTL_MS = 5_000;
const CONTROLLER_PUBLISH = new Set(['reply', 'evt', 'state']);
const CONTROLLER_SUBSCRIBE = new Set(['sync', 'cmd']);
const ROOT = `${TOPIC_ROOT}/`;

export class BrokerAuth {
  readonly #o: BrokerAuthOptions;
  readonly #now: () => number;
  readonly #okTtl: number;
  readonly #failTtl: number;
  readonly #max: number;
  readonly #logEvery: number;
  /** Keys of the cache: an HMAC under a per-process key, so no password digest outlives the process usefully. */
  readonly #cacheKey = randomBytes(32);
  readonly #cache = new Map<string, CacheEntry>();
  /** Checks in progress, so a burst of the same credentials costs one scrypt. */
  readonly #inflight = new Map<string, Promise<CacheEntry>>();
  readonly #identities = new WeakMap<AuthClient, BrokerIdentity>();
  /** The building of each connected controller, for its refusals. */
  readonly #buildings = new WeakMap<AuthClient, string>();
  readonly #service: { username: Buffer; password: Buffer };
  readonly #refused: Record<RefusedAction, number> = { connect: 0, publish: 0, subscribe: 0 };
  readonly #lastLog = new Map<string, { at: number; suppressed: number }>();

  constructor(o: BrokerAuthOptions) {
    if (o.service.username === '' || o.service.password === '') throw new TypeError('the gateway MQTT account needs a username and a password');
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#okTtl = o.okTtlMs ?? 60_000;
    this.#failTtl = Math.min(o.failTtlMs ?? 2_000, MAX_FAIL_TTL_MS);
    this.#max = o.maxEntries ?? 10_000;
    this.#logEvery = o.logEveryMs ?? 10_000;
    this.#service = { username: this.#digest(o.service.username), password: this.#digest(o.service.password) };
  }

  /** Refusals so far, by action (for metrics). */
  stats(): { refused: Record<RefusedAction, number>; cached: number } {
    return { refused: { ...this.#refused }, cached: this.#cache.size };
  }

  /** Who a connection authenticated as (undefined before or after). */
  identityOf(client: AuthClient): BrokerIdentity | undefined {
    return this.#identities.get(client);
  }

  /** Drop every cached check for a controller (after it was removed or re-registered). */
  forget(controllerId: string): void {
    const prefix = `${controllerId}\0`;
    for (const k of this.#cache.keys()) if (k.startsWith(prefix)) this.#cache.delete(k);
  }

  // ── CONNECT ────────────────────────────────────────────────────────────────────────────────

  async authenticate(client: AuthClient, username: string | undefined, password: Buffer | undefined, will?: PublishRequest): Promise<ConnectResult> {
    if (username === undefined || username === '' || password === undefined || password.length === 0) {
      return this.#refuse({ action: 'connect', reason: 'anonymous', clientId: client.id }, 'not-authorized');
    }
    const pw = password.toString('utf8');
    if (this.#isService(username, pw)) {
      this.#identities.set(client, { kind: 'gateway' });
      return 'ok';
    }
    let entry: CacheEntry;
    let buildingId: string | undefined;
    try {
      ({ entry, buildingId } = await this.#check(username, pw));
    } catch (err) {
      // The store is down: say so (CONNACK 3), so the client retries instead of giving up.
      this.#o.logger.warn('mqtt authentication unavailable', { username, err: err instanceof Error ? err.name : 'unknown' });
      return 'unavailable';
    }
    // A registered controller named by the CONNECT: its building's owner sees attempts on it.
    const about = buildingId !== undefined ? { controllerId: username, buildingId } : {};
    if (!entry.ok) return this.#refuse({ action: 'connect', reason: 'bad-credentials', clientId: client.id, username, ...about }, 'bad-credentials');
    // PROTOCOL §2.3: the client id is the controller id. Otherwise one controller could take over
    // another's session (the broker would close the other connection and fire its will).
    if (client.id !== username) return this.#refuse({ action: 'connect', reason: 'client-id-mismatch', clientId: client.id, username, ...about }, 'identifier-rejected');
    const identity: BrokerIdentity = { kind: 'controller', id: username };
    if (will && !this.#mayPublish(identity, will)) {
      return this.#refuse({ action: 'connect', reason: 'will-not-allowed', clientId: client.id, username, ...about, topic: will.topic }, 'not-authorized');
    }
    this.#identities.set(client, identity);
    if (buildingId !== undefined) this.#buildings.set(client, buildingId);
    return 'ok';
  }

  #isService(username: string, password: string): boolean {
    // Both compared, in constant time, whatever the first says.
    const u = timingSafeEqual(this.#digest(username), this.#service.username);
    const p = timingSafeEqual(this.#digest(password), this.#service.password);
    return u && p;
  }

  #digest(s: string): Buffer {
    return createHmac('sha256', this.#cacheKey).update(s, 'utf8').digest();
  }

  async #check(username: string, password: string): Promise<{ entry: CacheEntry; buildingId: string | undefined }> {
    const key = `${username}\0${this.#digest(password).toString('base64url')}`;
    const ctrl = await this.#o.store.get('controllers', username);
    const storedHash = ctrl?.mqttPasswordHash;
    const buildingId = ctrl?.buildingId;
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now && hit.storedHash === storedHash) return { entry: hit, buildingId };
    if (hit) this.#cache.delete(key);
    const running = this.#inflight.get(key);
    if (running) {
      const r = await running;
      if (r.storedHash === storedHash) return { entry: r, buildingId };
    }
    const p = this.#o.hasher.verify(password, storedHash).then((ok): CacheEntry => {
      const entry = { ok, storedHash, until: this.#now() + (ok ? this.#okTtl : this.#failTtl) };
      this.#remember(key, entry);
      return entry;
    });
    this.#inflight.set(key, p);
    try {
      return { entry: await p, buildingId };
    } finally {
      if (this.#inflight.get(key) === p) this.#inflight.delete(key);
    }
  }

  #remember(key: string, entry: CacheEntry): void {
    this.#cache.delete(key);
    this.#cache.set(key, entry);
    // Oldest first: a Map iterates in insertion order.
    while (this.#cache.size > this.#max) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
  }

  // ── PUBLISH and SUBSCRIBE ──────────────────────────────────────────────────────────────────

  /** A PUBLISH, or a will as it fires (`client` null: its connection is gone, so refused). */
  authorizePublish(client: AuthClient | null, packet: PublishRequest): boolean {
    const identity = client ? this.#identities.get(client) : undefined;
    if (identity && this.#mayPublish(identity, packet)) return true;
    const reason = identity ? (packet.retain && identity.kind === 'controller' && this.#ownLeaf(identity.id, packet.topic) ? 'retained' : 'topic') : 'unauthenticated';
    this.#refuse({ action: 'publish', reason, clientId: client?.id ?? '', ...this.#who(client, identity), topic: packet.topic }, undefined);
    return false;
  }

  authorizeSubscribe(client: AuthClient, sub: { topic: string }): boolean {
    const identity = this.#identities.get(client);
    if (identity && this.#maySubscribe(identity, sub.topic)) return true;
    this.#refuse({ action: 'subscribe', reason: identity ? 'topic' : 'unauthenticated', clientId: client.id, ...this.#who(client, identity), topic: sub.topic }, undefined);
    return false;
  }

  #mayPublish(identity: BrokerIdentity, p: PublishRequest): boolean {
    if (identity.kind === 'gateway') return p.topic.startsWith(ROOT);
    const leaf = this.#ownLeaf(identity.id, p.topic);
    if (leaf === undefined || !CONTROLLER_PUBLISH.has(leaf)) return false;
    // PROTOCOL §3.3: reply and evt are never retained.
    return !(p.retain && (leaf === 'reply' || leaf === 'evt'));
  }

  #maySubscribe(identity: BrokerIdentity, filter: string): boolean {
    // A filter that starts with the literal root matches nothing outside it, wildcards or not.
    if (identity.kind === 'gateway') return filter.startsWith(ROOT);
    const leaf = this.#ownLeaf(identity.id, filter);
    return leaf !== undefined && CONTROLLER_SUBSCRIBE.has(leaf);
  }

  /** The leaf of `sp/v1/c/<id>/<leaf>` when the topic is exactly that for this id. */
  #ownLeaf(id: string, topic: string): string | undefined {
    const prefix = controllerTopic(id, 'state').slice(0, -'state'.length);
    if (!topic.startsWith(prefix)) return undefined;
    const leaf = topic.slice(prefix.length);
    return leaf.includes('/') ? undefined : leaf;
  }

  #who(client: AuthClient | null, identity: BrokerIdentity | undefined): { username?: string; controllerId?: string; buildingId?: string } {
    if (identity?.kind !== 'controller') return {};
    const buildingId = client ? this.#buildings.get(client) : undefined;
    return { username: identity.id, controllerId: identity.id, ...(buildingId !== undefined ? { buildingId } : {}) };
  }

  #refuse<T>(input: RefusalInput, answer: T): T {
    this.#refused[input.action] += 1;
    const key = `${input.action}\0${input.username ?? input.clientId}\0${input.reason}`;
    const now = this.#now();
    const last = this.#lastLog.get(key);
    let r: Refusal;
    if (last && now - last.at < this.#logEvery) {
      last.suppressed += 1;
      r = { ...input, repeated: true };
    } else {
      if (this.#lastLog.size > 10_000) this.#lastLog.clear();
      this.#lastLog.set(key, { at: now, suppressed: 0 });
      r = { ...input, repeated: false, ...(last && last.suppressed > 0 ? { suppressed: last.suppressed } : {}) };
      this.#o.logger.warn('security: mqtt refused', { event: 'security.rejected', ...input, ...(r.suppressed !== undefined ? { suppressed: r.suppressed } : {}) });
    }
    try {
      this.#o.onRefused?.(r);
    } catch (err) {
      this.#o.logger.error('onRefused hook failed', { err: err instanceof Error ? err.message : String(err) });
    }
    return answer;
  }
}
