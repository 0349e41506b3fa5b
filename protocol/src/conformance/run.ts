/**
 * One conformance run: the phases in the order they run, each checking some of P-1…P-25 and
 * recording what it saw in the Findings. Every wait is bounded; nothing here opens a connection
 * (the session, watcher and probes in `session.ts` do).
 */
import { generateKeyPairSync, randomBytes, randomInt, sign } from 'node:crypto';
import type { RejectCode } from '../codes.js';
import { signingBytes } from '../envelope.js';
import { privateKeyFromSeed, type SigningKey } from '../keys.js';
import type { Logger } from '../log.js';
import type { AccessDecision, AccessEvent, Credential, DoorEvent, EvtBody, GrantsSyncBody, Message, ReplyBody, StateOnlineBody, SyncGrant } from '../schemas.js';
import { controllerTopic, MAX_HOLD_MS, MAX_PAYLOAD_BYTES, TOPIC_ROOT } from '../topics.js';
import type { Findings } from './report.js';
import { DEFAULT_TEST_TAG, type ConformanceHooks, type ConformanceOptions } from './options.js';
import { REQUIREMENTS, type RequirementId } from './requirements.js';
import {
  ConformanceSetupError,
  evtBody,
  type GatewaySession,
  isEvt,
  isReply,
  isState,
  type PrefixWatcher,
  readRetained,
  replyBody,
  type OutLeaf,
  type Received,
  type Sent,
} from './session.js';

/**
 * How long, after the access.check that follows a bad message, we wait for a reply the bad one must
 * not get. Short: the controller answers in order; a later reply is still caught at the end.
 */
const SETTLE_MS = 50;
/** How long we watch for an access event or unlock that access.check must not cause (P-20). */
const QUIET_MS = 250;
/** Test grants end on their own this long after the run starts, even if cleanup never runs. */
const GRANT_LIFETIME_MS = 180_000;
const PULSE_SECONDS = 1;
const HOLD_MS = 1_200;
/** Controller clocks and timers are not exact: allow this much early. */
const EARLY_MS = 150;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

function describeReply(r: ReplyBody | undefined): string {
  if (!r) return 'no reply';
  return `${r.status}${r.code ? ` (${r.code})` : ''}${r.appliedVersion !== undefined ? `, appliedVersion ${r.appliedVersion}` : ''}`;
}

function describeDecision(d: AccessDecision | undefined): string {
  return d ? `${d.result}/${d.reason}` : 'no decision';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type DoorEvt = { body: DoorEvent; r: Received };
type RejectedEvt = Extract<EvtBody, { kind: 'rejected' }>;

interface BadInput {
  req: RequirementId;
  label: string;
  /** The reason code PROTOCOL §9 gives for it (P-11). */
  code: RejectCode;
  leaf: OutLeaf;
  payload: string | Buffer;
  /** Its envelope id, when it has one a controller can read. */
  id?: string;
}

/** One run: the phases in order, and what they learn about the controller on the way. */
export class Run {
  readonly #s: GatewaySession;
  readonly #w: PrefixWatcher;
  readonly #f: Findings;
  readonly #notes: string[];
  readonly #o: ConformanceOptions;
  readonly #hooks: ConformanceHooks;
  readonly #log: Logger;
  readonly #timeout: number;
  readonly #restartTimeout: number;
  readonly #runId = randomBytes(4).toString('hex');
  readonly #door: string;
  readonly #tag: string;
  readonly #pin = String(randomInt(10_000_000, 100_000_000));

  /** The boot the controller is on now, and every boot we saw start during the run (P-21). */
  #boot = '';
  readonly #bornDuringRun = new Set<string>();
  #online = false;
  /** Our view of its applied grant version. */
  #applied = 0;
  /** The test tag is known granted at the door: "state unchanged" can be checked. */
  #baseline = false;
  #base: SyncGrant[] = [];
  #firstSync: Sent<'grants.sync'> | undefined;
  #lastSync: Sent<'grants.sync'> | undefined;
  #lastCheck: Sent<'access.check'> | undefined;
  /** An authentic sync the controller answered `rejected`: replaying it can change nothing (P-7 after a restart). */
  #unappliable: Sent<'grants.sync'> | undefined;
  #syncServed = false;
  #cmdServed = false;
  /** What each dropped message should have been reported as, and what was (P-11). */
  readonly #dropped: { label: string; expected: RejectCode; got: string | undefined; req: RequirementId; id?: string; mark: number; answered: boolean }[] = [];
  #clockSynced = true;

  constructor(s: GatewaySession, w: PrefixWatcher, f: Findings, notes: string[], o: ConformanceOptions, log: Logger, timeoutMs: number) {
    this.#s = s;
    this.#w = w;
    this.#f = f;
    this.#notes = notes;
    this.#o = o;
    this.#hooks = o.hooks ?? {};
    this.#log = log;
    this.#timeout = timeoutMs;
    this.#restartTimeout = o.restartTimeoutMs ?? 30_000;
    this.#door = o.door;
    this.#tag = (o.tag ?? DEFAULT_TEST_TAG).toUpperCase();
  }

  async run(): Promise<void> {
    if (!(await this.#initialBirth())) return;
    try {
      await this.#phase(['P-19'], 'ping', () => this.#ping());
      if (!this.#clockSynced) {
        await this.#phase(['P-12', 'P-24'], 'clock-unsafe', () => this.#clockless());
      } else {
        this.#f.pass('P-24', 'its birth reports clockSynced:true');
        this.#f.manual('P-24', 'start the controller with no trusted clock (no NTP/RTC): its birth must say clockSynced:false and a granted tag must be denied with reason clock-unsafe');
        await this.#phase(['P-12', 'P-15', 'P-20'], 'apply and decide', () => this.#applyAndDecide());
        await this.#phase(['P-13', 'P-14'], 'stale and rejected syncs', () => this.#staleAndRejected());
        await this.#phase(['P-6', 'P-7', 'P-8', 'P-9', 'P-10'], 'bad input', () => this.#badInputs());
        await this.#phase(['P-16'], 'local expiry', () => this.#localExpiry());
        await this.#phase(['P-17'], 'pulse', () => this.#pulse());
        await this.#phase(['P-18'], 'hold', () => this.#hold());
        await this.#phase(['P-15'], 'present tag', () => this.#presentGranted());
        await this.#phase(['P-22', 'P-2'], 'outage', () => this.#outage());
        await this.#phase(['P-7', 'P-12', 'P-21', 'P-22'], 'restart', () => this.#restart());
        await this.#phase(['P-3'], 'crash', () => this.#crash());
      }
    } finally {
      await this.#phase([], 'cleanup', () => this.#cleanup());
      await this.#phase(['P-4', 'P-2'], 'retained probe', () => this.#retainedProbe());
      this.#evaluate();
    }
  }

  /** A phase that throws (a hook failed, the broker went away) fails its requirements, not the run. */
  async #phase(ids: RequirementId[], name: string, fn: () => Promise<void>): Promise<void> {
    const started = Date.now();
    try {
      await fn();
      this.#log.debug('conformance phase done', { phase: name, ms: Date.now() - started });
    } catch (err) {
      this.#log.error('conformance phase failed', { phase: name, err: errorText(err) });
      for (const id of ids) this.#f.fail(id, `${name} phase aborted: ${errorText(err)}`);
      if (ids.length === 0) this.#notes.push(`The ${name} step failed: ${errorText(err)}`);
    }
  }

  // ── Helpers ─────────────────────────────────────────────────────────────────────────────────

  #grant(label: string, doors: string[], credentials: Credential[], notBefore: number, notAfter: number): SyncGrant {
    return { grantId: `conf-${this.#runId}-${label}`, incident: `sp-conformance-${this.#runId}`, doors, credentials, notBefore, notAfter };
  }

  /** A random tag UID no real grant holds. */
  #unknownTag(): string {
    return `F0${randomBytes(6).toString('hex').toUpperCase()}`;
  }

  #onlineBirth(since: number, timeoutMs: number, pred: (m: Message<'state'>) => boolean = () => true) {
    return this.#s.waitFor((r) => (isState(r) && r.message.body.online && pred(r.message) ? r : undefined), { since, timeoutMs });
  }

  #doorEvent(since: number, state: DoorEvent['state'], timeoutMs: number): Promise<DoorEvt | undefined> {
    return this.#s.waitFor(
      (r) => {
        const b = evtBody(r);
        return b?.kind === 'door' && b.door === this.#door && b.state === state ? { body: b, r } : undefined;
      },
      { since, timeoutMs },
    );
  }

  #rejectedFor(since: number, id: string | undefined, code: RejectCode): RejectedEvt | undefined {
    let byCode: RejectedEvt | undefined;
    for (const r of this.#s.since(since)) {
      const b = evtBody(r);
      if (b?.kind !== 'rejected') continue;
      if (id !== undefined && b.ref === id) return b;
      if (b.ref === undefined && b.code === code) byCode ??= b;
    }
    return byCode;
  }

  async #sync(grants: SyncGrant[], version = this.#s.nextVersion()) {
    const result = await this.#s.request('grants.sync', { version, grants }, this.#timeout);
    if (result.reply) this.#syncServed = true;
    if (result.reply?.status === 'applied' && result.reply.appliedVersion === version) {
      this.#applied = version;
      this.#lastSync = result.sent;
      this.#firstSync ??= result.sent;
    }
    return result;
  }

  /** access.check: the decision the controller would make now (P-20), or undefined. */
  async #check(credential: Credential, door = this.#door): Promise<AccessDecision | undefined> {
    const { sent, reply } = await this.#s.request('access.check', { door, credential }, this.#timeout);
    this.#lastCheck = sent;
    if (reply) this.#cmdServed = true;
    if (!reply) this.#f.fail('P-20', `no reply to an access.check within ${this.#timeout} ms`);
    else if (reply.status !== 'done' || !reply.decision) this.#f.fail('P-20', `access.check answered ${describeReply(reply)} without a decision`);
    return reply?.decision;
  }

  #tagCheck(uid = this.#tag, door = this.#door): Promise<AccessDecision | undefined> {
    return this.#check({ kind: 'tag', uid }, door);
  }

  async #presentTag(uid: string): Promise<void> {
    const present = this.#hooks.presentTag;
    if (!present) throw new Error('presentTag hook missing');
    await present(this.#door, uid);
  }

  /** After a birth: a ping sent the moment it arrives must be answered (P-2: subscribed first). */
  async #pingOnBirth(what: string): Promise<void> {
    const { reply } = await this.#s.request('ctrl.ping', {}, this.#timeout);
    this.#f.expect('P-2', reply?.status === 'done', `answers a ping sent the moment its birth arrives (${what})`, describeReply(reply));
  }

  #adoptBirth(r: Received & { message: Message<'state'> }): StateOnlineBody | undefined {
    const b = r.message.body;
    if (!b.online) return undefined;
    this.#boot = r.message.boot;
    this.#online = true;
    this.#f.expect('P-2', r.qos === 1, 'birth published at QoS 1', `delivered at QoS ${r.qos} on a QoS 1 subscription`);
    this.#s.raiseCounters(b.lastSeq, b.appliedVersion);
    return b;
  }

  // ── Phases ──────────────────────────────────────────────────────────────────────────────────

  /** P-2: the retained birth tells us its boot, lastSeq and appliedVersion. */
  async #initialBirth(): Promise<boolean> {
    const r = await this.#onlineBirth(0, this.#timeout);
    if (!r) {
      this.#f.fail('P-2', `no signed online birth on ${controllerTopic(this.#s.ctrl, 'state')} within ${this.#timeout} ms (is the controller connected?)`);
      const invalid = this.#s.invalid.find((i) => i.leaf === 'state');
      if (invalid) this.#f.fail('P-5', `its state message failed verification: ${invalid.code} (${invalid.detail})`);
      for (const { id } of REQUIREMENTS) if (id !== 'P-2') this.#f.manual(id, 'not run: the controller never came online');
      this.#notes.push('The controller never came online, so no other check ran.');
      return false;
    }
    const b = this.#adoptBirth(r);
    if (!b) return false;
    this.#applied = b.appliedVersion;
    this.#clockSynced = b.clockSynced;
    this.#f.pass('P-2', 'signed birth with fw, vendor, appliedVersion, lastSeq, clock, clockSynced and doors');
    if (r.retain) {
      this.#f.pass('P-2', 'birth retained');
    } else {
      // A live birth carries the controller's clock at that moment: a fair first skew estimate.
      this.#s.skewMs = b.clock - r.at;
    }
    const refs = b.doors.map((d) => d.ref);
    for (const door of [this.#o.door, ...(this.#o.otherDoor ? [this.#o.otherDoor] : [])]) {
      if (!refs.includes(door)) throw new ConformanceSetupError(`door '${door}' is not among the controller's doors [${refs.join(', ')}]`);
    }
    this.#log.info('controller online', { ctrl: this.#s.ctrl, boot: this.#boot, lastSeq: b.lastSeq, appliedVersion: b.appliedVersion });
    return true;
  }

  /** P-19, and the controller's clock offset from its reply's iat. */
  async #ping(): Promise<void> {
    let sentAt = Date.now();
    let { sent, reply } = await this.#s.request('ctrl.ping', {}, this.#timeout);
    if (!reply && this.#rejectedFor(sent.mark, sent.message.id, 'replay')?.code === 'replay') {
      // A retained birth can be old: a gateway may have sent it messages since. Jump past them.
      this.#notes.push('The first ping was rejected as a replay: the retained birth was older than the controller\'s seq. The run continued 10,000 seqs higher.');
      this.#s.raiseCounters(sent.message.seq + 10_000, 0);
      // The skew below is measured on the ping that was answered, not the one that timed out.
      sentAt = Date.now();
      ({ sent, reply } = await this.#s.request('ctrl.ping', {}, this.#timeout));
    }
    if (reply) this.#cmdServed = true;
    this.#f.expect('P-19', reply?.status === 'done', 'ctrl.ping answered done', describeReply(reply));
    const got = this.#s.since(sent.mark).find((r) => replyBody(r)?.ref === sent.message.id);
    if (got) {
      const skew = Math.round(got.message.iat - (sentAt + got.at) / 2);
      this.#s.skewMs = skew;
      if (Math.abs(skew) > 1_000) this.#notes.push(`The controller's clock is ${skew} ms off ours; the run sent times on its clock.`);
    }
  }

  /**
   * The run's first sync (P-12). A retained birth can be older than the controller's grant set: on
   * `stale` it goes above what the controller says it holds, as a gateway would (§6.3).
   */
  async #firstApply(grants: SyncGrant[]): Promise<void> {
    let version = this.#s.nextVersion();
    let { reply } = await this.#sync(grants, version);
    if (reply?.status === 'stale' && reply.appliedVersion !== undefined && reply.appliedVersion >= version) {
      this.#notes.push(`The controller's applied version (${reply.appliedVersion}) was above its birth's; the run continued above it.`);
      this.#s.raiseCounters(0, reply.appliedVersion);
      version = this.#s.nextVersion();
      ({ reply } = await this.#sync(grants, version));
    }
    this.#f.expect('P-12', reply?.status === 'applied' && reply.appliedVersion === version, `sync v${version} (${grants.length} grant(s)) applied`, describeReply(reply));
  }

  /** P-24 on a controller that says its clock is not trusted; the clock-dependent checks cannot run. */
  async #clockless(): Promise<void> {
    this.#f.pass('P-24', 'its birth reports clockSynced:false');
    const now = this.#s.now();
    await this.#firstApply([this.#grant('main', [this.#door], [{ kind: 'tag', uid: this.#tag }], now - 60_000, now + GRANT_LIFETIME_MS)]);
    const d = await this.#tagCheck();
    this.#f.expect('P-24', d?.result === 'denied' && d.reason === 'clock-unsafe', 'denies a granted tag with reason clock-unsafe', describeDecision(d));
    const skipped: RequirementId[] = ['P-3', 'P-6', 'P-7', 'P-8', 'P-9', 'P-10', 'P-11', 'P-13', 'P-14', 'P-15', 'P-16', 'P-17', 'P-18', 'P-20', 'P-21', 'P-22'];
    for (const id of skipped) this.#f.manual(id, 'not run: the controller reports clockSynced:false; run the suite again once its clock is trusted');
    this.#notes.push('The controller has no trusted clock (clockSynced:false): only P-24 and the clock-independent checks ran.');
  }

  /** P-12, P-15, P-20: apply a grant set, then ask how it decides. */
  async #applyAndDecide(): Promise<void> {
    const now = this.#s.now();
    const main = this.#grant('main', [this.#door], [{ kind: 'tag', uid: this.#tag }, { kind: 'pin', pin: this.#pin }], now - 60_000, now + GRANT_LIFETIME_MS);
    const earlyTag = this.#unknownTag();
    const early = this.#grant('early', [this.#door], [{ kind: 'tag', uid: earlyTag }], now + GRANT_LIFETIME_MS / 2, now + GRANT_LIFETIME_MS);
    this.#base = [main, early];
    await this.#firstApply(this.#base);

    const mark = this.#s.mark();
    const d1 = await this.#tagCheck();
    this.#baseline = d1?.result === 'granted';
    this.#f.expect('P-15', d1?.result === 'granted' && d1.reason === 'grant' && d1.grantId === main.grantId, 'granted tag at its door → granted/grant with its grantId', describeDecision(d1));
    this.#f.expect('P-12', this.#baseline, 'the applied set is in effect at once', describeDecision(d1));
    const d2 = await this.#check({ kind: 'pin', pin: this.#pin });
    this.#f.expect('P-15', d2?.result === 'granted', 'granted PIN → granted', describeDecision(d2));
    const wrongPin = String((Number(this.#pin) + 1) % 100_000_000).padStart(8, '0');
    const d3 = await this.#check({ kind: 'pin', pin: wrongPin });
    this.#f.expect('P-15', d3?.result === 'denied', 'wrong PIN → denied', describeDecision(d3));
    const d4 = await this.#tagCheck(this.#unknownTag());
    this.#f.expect('P-15', d4?.result === 'denied' && d4.reason === 'unknown', 'unknown tag → denied/unknown', describeDecision(d4));
    const d5 = await this.#tagCheck(earlyTag);
    this.#f.expect('P-15', d5?.result === 'denied' && d5.reason === 'not-yet-valid', 'tag of a future grant → denied/not-yet-valid', describeDecision(d5));
    if (this.#o.otherDoor) {
      const d6 = await this.#tagCheck(this.#tag, this.#o.otherDoor);
      this.#f.expect('P-15', d6?.result === 'denied' && d6.reason === 'wrong-door', 'granted tag at a door its grant does not name → denied/wrong-door', describeDecision(d6));
    } else {
      this.#f.manual('P-15', 'give a second door (otherDoor / --other-door) to check a tag is refused at a door its grant does not name');
    }
    // P-20: none of those checks may have moved a lock or made an access event.
    await sleep(QUIET_MS);
    const noisy = this.#s.since(mark).flatMap((r) => {
      const b = evtBody(r);
      return b && (b.kind === 'access' || (b.kind === 'door' && b.state === 'unlocked')) ? [b.kind === 'access' ? 'an access event' : `door ${b.door} unlocked`] : [];
    });
    const checks = this.#o.otherDoor ? 6 : 5;
    this.#f.expect('P-20', noisy.length === 0, `${checks} access.checks answered done with a decision, no access event, no unlock`, noisy.join(', '));
  }

  /** P-14 (unappliable syncs are rejected, atomically) then P-13 (stale syncs change nothing). */
  async #staleAndRejected(): Promise<void> {
    const now = this.#s.now();
    const atomicTag = this.#unknownTag();
    const atomic = this.#grant('atomic', [this.#door], [{ kind: 'tag', uid: atomicTag }], now - 60_000, now + GRANT_LIFETIME_MS);
    const badDoor = this.#grant('bad-door', ['sp-conf-no-such-door'], [{ kind: 'tag', uid: atomicTag }], now - 60_000, now + GRANT_LIFETIME_MS);
    const rejected = async (what: string, body: GrantsSyncBody) => {
      const { sent, reply } = await this.#s.request('grants.sync', body, this.#timeout);
      this.#unappliable ??= sent;
      if (reply) this.#syncServed = true;
      this.#f.expect('P-14', reply?.status === 'rejected' && !!reply.code, `${what} → rejected with a code`, describeReply(reply));
      if (reply?.appliedVersion !== undefined && reply.status === 'rejected') {
        this.#f.expect('P-14', reply.appliedVersion === this.#applied, 'rejected reply carries the unchanged appliedVersion', `says ${reply.appliedVersion}, expected ${this.#applied}`);
      }
    };
    await rejected('sync naming an unknown door', { version: this.#s.nextVersion(), grants: [...this.#base, atomic, badDoor] });
    const da = await this.#tagCheck(atomicTag);
    const atomicOk = da !== undefined && da.result === 'denied';
    this.#f.expect('P-14', atomicOk, 'nothing of the rejected set applied', `a valid grant beside the bad one took effect (${describeDecision(da)})`);
    this.#f.expect('P-12', atomicOk, 'all or nothing: a valid grant in a rejected set did not take effect', describeDecision(da));
    const window = this.#grant('window', [this.#door], [{ kind: 'tag', uid: atomicTag }], now + 1_000, now);
    await rejected('sync with notAfter ≤ notBefore', { version: this.#s.nextVersion(), grants: [...this.#base, window] });
    // An authentic sync whose body breaks the schema (a grant with no credentials).
    const badBody = { version: this.#s.nextVersion(), grants: [{ ...atomic, credentials: [] }] } as unknown as GrantsSyncBody;
    await rejected('sync with a body that breaks the schema', badBody);
    const d = await this.#tagCheck();
    this.#f.expect('P-14', d?.result === 'granted', 'grant set unchanged after the rejections', describeDecision(d));

    if (this.#applied < 1) {
      this.#f.fail('P-13', 'not run: no sync was ever applied');
      return;
    }
    const stale = async (version: number) => {
      const { reply } = await this.#s.request('grants.sync', { version, grants: [] }, this.#timeout);
      this.#f.expect(
        'P-13',
        reply?.status === 'stale' && reply.appliedVersion === this.#applied,
        `sync v${version} (applied v${this.#applied}) → stale with appliedVersion ${this.#applied}`,
        describeReply(reply),
      );
    };
    await stale(this.#applied);
    if (this.#applied > 1) await stale(1);
    const after = await this.#tagCheck();
    this.#f.expect('P-13', after?.result === 'granted', 'grant set unchanged by the stale (empty) syncs', describeDecision(after));
  }

  /** P-6…P-11: each bad message is dropped, changes nothing, and (SHOULD) is reported. */
  async #badInputs(): Promise<void> {
    const s = this.#s;
    if (!this.#baseline || (await this.#tagCheck())?.result !== 'granted') await this.#restoreBaseline();
    const now = s.now();
    const probe = this.#grant('probe', [this.#door], [{ kind: 'tag', uid: this.#unknownTag() }], now - 60_000, now + GRANT_LIFETIME_MS);
    // Acting on any of these would revoke the test grant: the following access.check shows it.
    const mutation = (): GrantsSyncBody => ({ version: s.nextVersion(), grants: [probe] });
    const stranger = (kid: string): SigningKey => ({ kid, key: generateKeyPairSync('ed25519').privateKey });
    const sync = (o: Parameters<GatewaySession['build']>[2] = {}) => s.build('grants.sync', mutation(), o);
    const ping = (o: Parameters<GatewaySession['build']>[2] = {}) => s.build('ctrl.ping', {}, o);
    const input = (req: RequirementId, label: string, code: RejectCode, b: { payload: string | Buffer; leaf: OutLeaf; message?: { id: string } }): BadInput => ({
      req,
      label,
      code,
      leaf: b.leaf,
      payload: b.payload,
      ...(b.message ? { id: b.message.id } : {}),
    });

    // P-6
    const tampered = sync();
    const tamperedBody = { ...tampered.message.body, grants: [{ ...probe, notAfter: probe.notAfter + 1 }] };
    await this.#dropped1(input('P-6', 'sync altered after signing', 'bad-signature', { ...tampered, payload: JSON.stringify({ ...tampered.message, body: tamperedBody }) }));
    await this.#dropped1(input('P-6', 'sync signed by another key under a trusted kid', 'bad-signature', sync({ key: stranger(this.#o.gatewayKey.kid) })));
    await this.#dropped1(input('P-6', 'sync under an unknown kid', 'unknown-kid', sync({ key: stranger('sp-conformance-untrusted') })));
    // P-7: exact copies of accepted messages, a new one reusing an accepted seq, then the window edges.
    const lastCheck = this.#lastCheck;
    if (lastCheck) await this.#dropped1(input('P-7', 'exact replay of the last access.check', 'replay', lastCheck));
    const firstSync = this.#firstSync;
    if (firstSync) await this.#dropped1(input('P-7', 'exact replay of the first applied sync', 'replay', firstSync));
    await this.#dropped1(input('P-7', 'new ping reusing the last accepted seq', 'replay', ping({ seq: s.lastAcceptedSeq })));
    await this.#replayWindow();
    // P-8
    const other = this.#s.ctrl === 'sp-conformance-other' ? 'sp-conformance-else' : 'sp-conformance-other';
    await this.#dropped1(input('P-8', `sync addressed to ${other}`, 'wrong-audience', sync({ ctrl: other })));
    // P-9
    await this.#dropped1(input('P-9', 'sync whose exp has passed', 'expired', sync({ iat: now - 20_000, exp: now - 10_000 })));
    await this.#dropped1(input('P-9', 'command with no exp', 'exp-required', ping({ exp: null })));
    await this.#dropped1(input('P-9', 'command with exp > iat + 10 s', 'exp-required', ping({ iat: now, exp: now + 20_000 })));
    await this.#dropped1(input('P-9', 'command whose exp has passed', 'expired', ping({ iat: now - 15_000, exp: now - 6_000 })));
    // P-10
    await this.#dropped1(input('P-10', 'truncated JSON', 'malformed', { leaf: 'sync', payload: `{"v":1,"type":"grants.sync","ctrl":"${s.ctrl}"` }));
    await this.#dropped1(input('P-10', 'bytes that are not UTF-8', 'malformed', { leaf: 'cmd', payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }));
    const badEnv = ping();
    await this.#dropped1(input('P-10', 'envelope breaking its schema (seq -1)', 'malformed', { ...badEnv, payload: JSON.stringify({ ...badEnv.message, seq: -1 }) }));
    // Signed and valid, padded with JSON whitespace past the topic's limit: only the size is wrong.
    const bigPing = ping();
    await this.#dropped1(input('P-10', `command over ${MAX_PAYLOAD_BYTES.cmd} bytes`, 'too-large', { ...bigPing, payload: bigPing.payload.padEnd(MAX_PAYLOAD_BYTES.cmd + 1) }));
    const bigSync = sync();
    await this.#dropped1(input('P-10', `sync over ${MAX_PAYLOAD_BYTES.sync} bytes`, 'too-large', { ...bigSync, payload: bigSync.payload.padEnd(MAX_PAYLOAD_BYTES.sync + 1) }));
    const v2 = sync();
    const { sig: _sig, ...unsigned } = v2.message;
    const v2Env: Record<string, unknown> = { ...unsigned, v: 2 };
    v2Env.sig = sign(null, signingBytes(v2Env), this.#sessionKey()).toString('base64url');
    await this.#dropped1(input('P-10', 'sync with v:2', 'unsupported-version', { ...v2, payload: JSON.stringify(v2Env) }));
    await this.#dropped1(input('P-10', 'ctrl.ping on the sync topic', 'unknown-type', ping({ leaf: 'sync' })));
    // With a live exp, so only its type is wrong for the cmd topic.
    await this.#dropped1(input('P-10', 'grants.sync on the cmd topic', 'unknown-type', sync({ leaf: 'cmd', exp: s.now() + 8_000 })));
    const { reply } = await s.request('ctrl.ping', {}, this.#timeout);
    this.#f.expect('P-10', reply?.status === 'done', `still answers a ping after ${this.#dropped.length} bad messages`, describeReply(reply));
  }

  /**
   * §4.4: the anti-replay window is the 64 seqs up to the highest accepted. Jump 100 ahead, then a
   * never-used seq 64 below must be dropped, and one 63 below (overtaken, inside the window) taken.
   */
  async #replayWindow(): Promise<void> {
    const s = this.#s;
    const high = s.nextSeq() + 100;
    s.raiseCounters(high, 0);
    const { reply } = await s.request('ctrl.ping', {}, this.#timeout, { seq: high });
    if (reply?.status !== 'done') {
      this.#f.fail('P-7', `a ping 100 seqs ahead was not answered (${describeReply(reply)}), so the window edges were not checked`);
      return;
    }
    // Measured from the highest accepted at each moment: the follow-up checks move it up too.
    const old = s.build('ctrl.ping', {}, { seq: s.lastAcceptedSeq - 64 });
    await this.#dropped1({ req: 'P-7', label: 'new ping with a never-used seq 64 below the highest accepted', code: 'replay', leaf: old.leaf, payload: old.payload, id: old.message.id });
    const inside = await s.request('ctrl.ping', {}, this.#timeout, { seq: s.lastAcceptedSeq - 63 });
    this.#f.expect('P-7', inside.reply?.status === 'done', 'takes a never-used seq 63 below the highest (overtaken, inside the window)', describeReply(inside.reply));
  }

  #sessionKey() {
    return privateKeyFromSeed(this.#o.gatewayKey.seed);
  }

  /** Send one bad message; it must get no applied/done/stale reply and leave the grant set as it was. */
  async #dropped1(b: BadInput): Promise<void> {
    await this.#judgeDropped(b, await this.#s.publish(b.leaf, b.payload));
  }

  /** Judge a bad message published at `mark`. */
  async #judgeDropped(b: BadInput, mark: number): Promise<void> {
    // The check after it reaches the controller after it (one session, in order) and shows the state.
    const d = await this.#tagCheck();
    const answer = b.id === undefined ? undefined : await this.#s.waitFor((r) => {
      const rb = replyBody(r);
      return rb !== undefined && rb.ref === b.id ? rb : undefined;
    }, { since: mark, timeoutMs: SETTLE_MS });
    if (b.id === undefined) await sleep(SETTLE_MS);
    if (answer) this.#f.fail(b.req, this.#answeredText(b.label, answer));
    else if (!d) this.#f.fail('P-10', `stopped answering after: ${b.label}`);
    else if (this.#baseline && d.result !== 'granted') this.#f.fail(b.req, `${b.label}: the grant set changed (test tag now ${describeDecision(d)})`);
    else this.#f.pass(b.req, `dropped: ${b.label}`);
    this.#dropped.push({ label: b.label, expected: b.code, got: undefined, req: b.req, mark, answered: answer !== undefined, ...(b.id ? { id: b.id } : {}) });
    // Put the test grant back, so the next message is judged on its own.
    if (this.#baseline && d?.result !== 'granted') await this.#restoreBaseline();
  }

  /** §9.2: a dropped message is not acted on and gets no reply — not even `rejected`. */
  #answeredText(label: string, r: ReplyBody): string {
    return r.status === 'rejected'
      ? `${label}: answered ${describeReply(r)}, but a dropped message gets no reply (PROTOCOL §9.2)`
      : `${label}: acted on (replied ${describeReply(r)})`;
  }

  /** Sync the base grant set again under a new version; state checks go on only if it took. */
  async #restoreBaseline(): Promise<void> {
    const { reply } = await this.#sync(this.#base);
    const d = reply?.status === 'applied' ? await this.#tagCheck() : undefined;
    this.#baseline = d?.result === 'granted';
    if (!this.#baseline) this.#notes.push(`Could not restore the test grant (${describeReply(reply)}); later bad-input checks looked at replies only.`);
  }

  /** P-16: a grant ends at its notAfter with no message from anyone. */
  async #localExpiry(): Promise<void> {
    const now = this.#s.now();
    const uid = this.#unknownTag();
    const short = this.#grant('short', [this.#door], [{ kind: 'tag', uid }], now - 1_000, now + 1_500);
    const version = this.#s.nextVersion();
    const { reply } = await this.#sync([...this.#base, short], version);
    if (!this.#f.expect('P-12', reply?.status === 'applied', `a later sync v${version} applied`, describeReply(reply))) {
      this.#f.fail('P-16', `not run: the short grant's sync was not applied (${describeReply(reply)})`);
      return;
    }
    const before = await this.#tagCheck(uid);
    this.#f.expect('P-16', before?.result === 'granted', 'short grant honoured before its notAfter', describeDecision(before));
    // Send nothing until it has passed: a controller that only expires grants on traffic fails here.
    await sleep(short.notAfter - this.#s.now() + 400);
    const after = await this.#tagCheck(uid);
    this.#f.expect('P-16', after?.result === 'denied' && after.reason === 'expired', 'denied/expired just after its notAfter, with no message in between', describeDecision(after));
  }

  /** P-17: door.pulse unlocks for `seconds`, then relocks, reporting both. */
  async #pulse(): Promise<void> {
    this.#notes.push(`Door ${this.#door} was unlocked during the run: a ${PULSE_SECONDS} s pulse, a ${HOLD_MS / 1000} s hold and a hold released at once${this.#hooks.presentTag ? ', and the test tag presented at its reader' : ''}.`);
    const mark = this.#s.mark();
    const { reply } = await this.#s.request('door.pulse', { door: this.#door, seconds: PULSE_SECONDS }, this.#timeout);
    this.#f.expect('P-17', reply?.status === 'done', 'door.pulse answered done', describeReply(reply));
    const unlocked = await this.#doorEvent(mark, 'unlocked', this.#timeout);
    if (!this.#f.expect('P-17', unlocked !== undefined, 'door unlocked event', `none within ${this.#timeout} ms`) || !unlocked) return;
    this.#f.expect('P-17', unlocked.body.cause === 'pulse', 'unlocked with cause pulse', `cause ${unlocked.body.cause ?? 'missing'}`);
    const locked = await this.#doorEvent(mark, 'locked', PULSE_SECONDS * 1000 + this.#timeout);
    if (!this.#f.expect('P-17', locked !== undefined, 'door locked event', `none within ${PULSE_SECONDS} s + ${this.#timeout} ms`) || !locked) return;
    const held = locked.body.at - unlocked.body.at;
    this.#f.expect('P-17', held >= PULSE_SECONDS * 1000 - EARLY_MS, `relocked after the pulse's ${PULSE_SECONDS} s`, `relocked after ${held} ms`);
    // §7.2: the relock reports cause timeout.
    this.#f.expect('P-17', locked.body.cause === 'timeout', 'relocked with cause timeout', `cause ${locked.body.cause ?? 'missing'}`);
  }

  /** P-18: door.hold keeps it unlocked until `until`; door.release relocks at once. */
  async #hold(): Promise<void> {
    // §7.3: a hold is bounded like a grant; one already over, or over 4 h ahead, is refused.
    for (const [what, until] of [
      ['already past', this.#s.now() - 1_000],
      ['more than 4 h ahead', this.#s.now() + MAX_HOLD_MS + 60_000],
    ] as const) {
      const mark = this.#s.mark();
      const { reply } = await this.#s.request('door.hold', { door: this.#door, until }, this.#timeout);
      this.#f.expect('P-18', reply?.status === 'rejected' && reply.code === 'invalid-window', `hold until ${what} → rejected (invalid-window)`, describeReply(reply));
      const opened = await this.#doorEvent(mark, 'unlocked', SETTLE_MS);
      if (opened) this.#f.fail('P-18', `hold until ${what}: the door unlocked`);
    }

    let mark = this.#s.mark();
    const until = this.#s.now() + HOLD_MS;
    let { reply } = await this.#s.request('door.hold', { door: this.#door, until }, this.#timeout);
    this.#f.expect('P-18', reply?.status === 'done', 'door.hold answered done', describeReply(reply));
    let unlocked = await this.#doorEvent(mark, 'unlocked', this.#timeout);
    if (this.#f.expect('P-18', unlocked !== undefined, 'door unlocked on hold', `no unlocked event within ${this.#timeout} ms`) && unlocked) {
      this.#f.expect('P-18', unlocked.body.cause === 'hold', 'unlocked with cause hold', `cause ${unlocked.body.cause ?? 'missing'}`);
    }
    const locked = await this.#doorEvent(mark, 'locked', until - this.#s.now() + this.#timeout);
    if (this.#f.expect('P-18', locked !== undefined, 'relocked when the hold ended', `no locked event by until + ${this.#timeout} ms`) && locked) {
      this.#f.expect('P-18', locked.body.at >= until - EARLY_MS, 'stayed unlocked until `until`', `relocked ${until - locked.body.at} ms early`);
      this.#f.expect('P-18', locked.body.cause === 'timeout', 'relocked at `until` with cause timeout', `cause ${locked.body.cause ?? 'missing'}`);
    }

    mark = this.#s.mark();
    ({ reply } = await this.#s.request('door.hold', { door: this.#door, until: this.#s.now() + 10_000 }, this.#timeout));
    unlocked = await this.#doorEvent(mark, 'unlocked', this.#timeout);
    if (reply?.status !== 'done' || !unlocked) {
      this.#f.fail('P-18', `second hold not in effect (${describeReply(reply)}${unlocked ? '' : ', no unlocked event'})`);
      return;
    }
    const released = Date.now();
    ({ reply } = await this.#s.request('door.release', { door: this.#door }, this.#timeout));
    this.#f.expect('P-18', reply?.status === 'done', 'door.release answered done', describeReply(reply));
    const relocked = await this.#doorEvent(mark, 'locked', this.#timeout);
    const after = relocked ? relocked.r.at - released : undefined;
    this.#f.expect('P-18', after !== undefined && after < 1_000, 'door.release relocked at once', after === undefined ? `no locked event within ${this.#timeout} ms` : `locked event ${after} ms later`);
    if (relocked) this.#f.expect('P-18', relocked.body.cause === 'release', 'relocked with cause release', `cause ${relocked.body.cause ?? 'missing'}`);
  }

  /** P-15 at a real reader: the granted tag opens the door, and the decision is reported. */
  async #presentGranted(): Promise<void> {
    if (!this.#hooks.presentTag) {
      this.#f.manual('P-15', 'present the test tag at the door: it must unlock and report access granted; an unknown tag must not');
      return;
    }
    const mark = this.#s.mark();
    await this.#presentTag(this.#tag);
    const access = await this.#s.waitFor((r) => {
      const b = evtBody(r);
      return b?.kind === 'access' && b.credential.kind === 'tag' && b.credential.uid === this.#tag ? b : undefined;
    }, { since: mark, timeoutMs: this.#timeout });
    const mainId = this.#base[0]?.grantId;
    this.#f.expect(
      'P-15',
      access?.kind === 'access' && access.result === 'granted' && access.grantId === mainId,
      'presented granted tag → access event granted with its grantId',
      access?.kind === 'access' ? `${access.result}/${access.reason}` : 'no access event',
    );
    const unlocked = await this.#doorEvent(mark, 'unlocked', this.#timeout);
    this.#f.expect('P-15', unlocked !== undefined, 'presented granted tag unlocked the door', 'no unlocked event');
  }

  /** P-22 (and P-2 on reconnect): events made while offline arrive, in order, once back. */
  async #outage(): Promise<void> {
    const { goOffline, goOnline, presentTag } = this.#hooks;
    if (!goOffline || !goOnline || !presentTag) {
      this.#f.manual('P-22', 'disconnect the controller, present tags, reconnect: the access events must arrive in order');
      if (!this.#hooks.restart) this.#f.manual('P-2', 'reconnect the controller: it must publish a fresh retained birth after re-subscribing');
      return;
    }
    const mark = this.#s.mark();
    await goOffline();
    const uids = [this.#unknownTag(), this.#unknownTag(), this.#unknownTag()];
    for (const uid of uids) await this.#presentTag(uid);
    await goOnline();
    const birth = await this.#onlineBirth(mark, this.#restartTimeout);
    if (!this.#f.expect('P-2', birth !== undefined, 'birth again after a reconnect', `none within ${this.#restartTimeout} ms`) || !birth) return;
    this.#adoptBirth(birth);
    await this.#pingOnBirth('after a reconnect');
    const seen = await this.#accessFor(mark, uids);
    const order = seen.map((e) => e.uid);
    this.#f.expect(
      'P-22',
      order.join() === uids.join(),
      `${uids.length} access events made while offline arrived in order after reconnecting`,
      `got ${seen.length} of ${uids.length}${seen.length === uids.length ? ' out of order' : ''}`,
    );
    // The same presentations, seen as P-15 evidence: a tag no grant holds opens nothing.
    const wrong = seen.filter((e) => e.result !== 'denied' || e.reason !== 'unknown');
    const unlocked = this.#s.since(mark).some((r) => {
      const b = evtBody(r);
      return b?.kind === 'door' && b.state === 'unlocked' && b.cause === 'credential';
    });
    this.#f.expect('P-15', wrong.length === 0 && !unlocked, 'unknown tags at the reader → denied/unknown, door not unlocked', unlocked ? 'the door unlocked' : wrong.map((e) => `${e.result}/${e.reason}`).join(', '));
  }

  /** Access events for `uids` since `mark`, first of each in arrival order, waiting until all came or time ran out. */
  async #accessFor(mark: number, uids: string[], boot?: string): Promise<(AccessEvent & { uid: string })[]> {
    const want = new Set(uids);
    const seen: (AccessEvent & { uid: string })[] = [];
    await this.#s.waitFor((r) => {
      const b = evtBody(r);
      if (b?.kind === 'access' && b.credential.kind === 'tag' && want.has(b.credential.uid) && (boot === undefined || r.message.boot === boot)) {
        const uid = b.credential.uid;
        if (!seen.some((e) => e.uid === uid)) seen.push({ ...b, uid });
      }
      return seen.length === uids.length ? true : undefined;
    }, { since: mark, timeoutMs: this.#timeout });
    return seen;
  }

  /** P-7, P-12, P-21, P-22 across a restart. */
  async #restart(): Promise<void> {
    const { restart, goOffline, goOnline, presentTag } = this.#hooks;
    if (!restart) {
      this.#f.manual('P-7', 'restart the controller and resend an old sync: it must be dropped');
      this.#f.manual('P-12', 'restart the controller: the applied grant set must still be in force');
      this.#f.manual('P-21', 'restart the controller: its birth must carry a new boot id and its events restart at seq 1');
      this.#f.manual('P-22', 'cut the controller off, present a tag, restart it: the event must still arrive');
      return;
    }
    const oldBoot = this.#boot;
    const accepted = this.#s.lastAcceptedSeq;
    const withBacklog = goOffline !== undefined && presentTag !== undefined;
    const mark = this.#s.mark();
    const uids = [this.#unknownTag(), this.#unknownTag()];
    if (withBacklog) {
      await goOffline();
      for (const uid of uids) await this.#presentTag(uid);
    } else {
      this.#f.manual('P-22', 'cut the controller off, present a tag, restart it: the event must still arrive');
    }
    await restart();
    if (withBacklog && goOnline) await goOnline();
    const birth = await this.#onlineBirth(mark, this.#restartTimeout, (m) => m.boot !== oldBoot);
    if (!birth) {
      this.#f.fail('P-21', `no birth with a new boot id within ${this.#restartTimeout} ms of the restart`);
      this.#online = false;
      return;
    }
    // Replay an old sync before anything else raises its seq, or a controller that lost its
    // lastSeq would pass by luck (P-7). The one it answered `rejected` cannot restore the grant
    // set if taken, so the persistence check below stays fair. The ping of P-2 follows at once.
    const old = this.#unappliable ?? this.#lastSync;
    const replay: BadInput | undefined = old && {
      req: 'P-7',
      label: `exact replay of an old sync (v${old.message.body.version}) after a restart`,
      code: 'replay',
      leaf: 'sync',
      payload: old.payload,
      id: old.message.id,
    };
    const replayMark = replay ? await this.#s.publish(replay.leaf, replay.payload) : undefined;
    const b = this.#adoptBirth(birth);
    this.#bornDuringRun.add(this.#boot);
    this.#f.pass('P-21', 'new boot id after a restart');
    await this.#pingOnBirth('after a restart');
    if (replay && replayMark !== undefined) await this.#judgeDropped(replay, replayMark);
    if (!b) return;
    this.#f.expect('P-7', b.lastSeq >= accepted, 'highest accepted seq persisted across the restart', `birth says lastSeq ${b.lastSeq}, it had accepted ${accepted}`);
    this.#f.expect('P-12', b.appliedVersion === this.#applied, 'applied version persisted across the restart', `birth says ${b.appliedVersion}, expected ${this.#applied}`);
    const d = await this.#tagCheck();
    this.#f.expect('P-12', d?.result === 'granted', 'grant set persisted across the restart', describeDecision(d));
    if (withBacklog) {
      const seen = (await this.#accessFor(mark, uids, oldBoot)).map((e) => e.uid);
      this.#f.expect(
        'P-22',
        seen.join() === uids.join(),
        'events made while offline survived a restart and arrived in order',
        `got ${seen.length} of ${uids.length} from the old boot${seen.length === uids.length ? ' out of order' : ''}`,
      );
    }
    // One event in the new boot, so P-21 can see it starts at seq 1.
    if (presentTag) await this.#presentTag(this.#unknownTag());
  }

  /** P-3: after a power cut the broker publishes the controller's signed, retained will. */
  async #crash(): Promise<void> {
    const { crash, restart } = this.#hooks;
    if (!crash) {
      this.#f.manual('P-3', "cut the controller's power: the retained state must become its signed {online:false} will with the same boot");
      return;
    }
    const boot = this.#boot;
    const mark = this.#s.mark();
    await crash();
    this.#online = false;
    const will = await this.#s.waitFor(
      (r) => (isState(r) && !r.message.body.online && r.message.boot === boot ? r : undefined),
      { since: mark, timeoutMs: Math.max(this.#timeout, 5_000) },
    );
    const invalid = this.#s.invalid.filter((i) => i.leaf === 'state');
    if (!will) {
      this.#f.fail('P-3', `no signed {online:false} state of boot ${boot} after the crash${invalid.length > 0 ? ` (a state message failed verification: ${invalid.map((i) => i.code).join(', ')})` : ''}`);
    } else {
      this.#f.pass('P-3', 'signed {online:false} will of the same boot published on the crash (a will is fixed at CONNECT)');
      this.#f.expect('P-3', will.qos === 1, 'will at QoS 1', `delivered at QoS ${will.qos}`);
      const retained = await readRetained({ ...this.#connectOptions(), topics: [controllerTopic(this.#s.ctrl, 'state')], waitMs: 200, timeoutMs: this.#timeout });
      const held = retained.find((d) => {
        const opened = this.#s.open('state', d.payload);
        return opened.ok && opened.message.id === will.message.id;
      });
      // A controller that reboots by itself may have replaced the will with a new birth already.
      const back = this.#s.since(mark).some((r) => isState(r) && r.message.body.online);
      if (held) this.#f.pass('P-3', 'will retained');
      else if (back) this.#f.manual('P-3', 'it was back online before the retained state could be read: check its will is published with retain');
      else this.#f.fail('P-3', 'will retained — got: a fresh subscriber did not get it as the retained state');
    }
    if (restart) await restart();
    const birth = await this.#onlineBirth(mark, this.#restartTimeout);
    if (!birth) {
      this.#notes.push('The controller did not come back after the crash test, so the final cleanup sync was not sent.');
      return;
    }
    this.#adoptBirth(birth);
    if (birth.message.boot !== boot) this.#bornDuringRun.add(this.#boot);
    await this.#pingOnBirth('after a crash');
  }

  #connectOptions() {
    return {
      url: this.#o.url,
      ...(this.#o.username !== undefined ? { username: this.#o.username } : {}),
      ...(this.#o.password !== undefined ? { password: this.#o.password } : {}),
      log: this.#log,
    };
  }

  /** Leave no test grant live: the last word is an empty grant set. */
  async #cleanup(): Promise<void> {
    if (!this.#online) return;
    const version = this.#s.nextVersion();
    const { reply } = await this.#s.request('grants.sync', { version, grants: [] }, this.#timeout);
    if (reply?.status === 'applied') {
      this.#notes.push(
        `Cleanup: the controller now holds an empty grant set at version ${version}, and has accepted gateway seq up to ${this.#s.lastAcceptedSeq}. ` +
          'A gateway must send above both (it learns them from the next birth).',
      );
    } else {
      this.#notes.push(`Cleanup sync v${version} was not applied (${describeReply(reply)}): test grants may stay until they expire (at most ${GRANT_LIFETIME_MS / 60_000} min).`);
    }
  }

  /** P-4 (nothing retained where it must not be) and P-2 (the birth is the retained state). */
  async #retainedProbe(): Promise<void> {
    const leaves = ['sync', 'cmd', 'reply', 'evt', 'state'] as const;
    const retained = await readRetained({ ...this.#connectOptions(), topics: leaves.map((l) => controllerTopic(this.#s.ctrl, l)), waitMs: 300, timeoutMs: this.#timeout });
    const wrong = retained.filter((d) => !d.topic.endsWith('/state')).map((d) => d.topic.slice(`${TOPIC_ROOT}/c/${this.#s.ctrl}/`.length));
    const earlier = this.#s.received.filter((r) => r.retain && (isReply(r) || isEvt(r))).map((r) => r.leaf);
    const all = [...new Set([...wrong, ...earlier])];
    this.#f.expect('P-4', all.length === 0, 'a fresh subscriber gets no retained message on sync, cmd, reply or evt', `retained on ${all.join(', ')}`);
    if (!this.#online) return;
    const state = retained.find((d) => d.topic.endsWith('/state'));
    const opened = state ? this.#s.open('state', state.payload) : undefined;
    const ok = opened?.ok === true && opened.message.type === 'state' && opened.message.body.online && opened.message.boot === this.#boot;
    this.#f.expect('P-2', ok, 'its latest birth is the retained state at the end', opened && !opened.ok ? opened.code : 'the retained state is not its current online birth');
  }

  // ── Evaluation of what the whole run saw ─────────────────────────────────────────────────────

  #evaluate(): void {
    const s = this.#s;
    // P-5: every message from the controller passed openMessage.
    if (s.invalid.length > 0) {
      const kinds = [...new Set(s.invalid.map((i) => `${i.leaf}: ${i.code}${i.retain ? ' (retained)' : ''}`))];
      this.#f.fail('P-5', `${s.invalid.length} message(s) failed verification — ${kinds.slice(0, 4).join('; ')} (first: ${s.invalid[0]?.detail ?? ''})`);
    }
    // §4.4: an evt may sit in a backlog for days, so it must not expire.
    const expiring = s.received.filter((r) => isEvt(r) && r.message.exp !== undefined).length;
    if (expiring > 0) this.#f.fail('P-5', `${expiring} evt(s) carry exp, which PROTOCOL §4.4 forbids`);
    if (s.invalid.length === 0 && s.received.length > 0) {
      const n = (t: string) => s.received.filter((r) => r.message.type === t).length;
      this.#f.pass('P-5', `all ${s.received.length} messages verified (${n('state')} state, ${n('reply')} reply, ${n('evt')} evt)`);
    }

    // P-1
    this.#f.expect('P-1', this.#syncServed, 'serves its sync topic', 'never answered a sync');
    this.#f.expect('P-1', this.#cmdServed, 'serves its cmd topic', 'never answered a command');
    if (this.#w.refused) this.#f.manual('P-1', 'the broker refused a sp/v1/# subscription, so publishes elsewhere were not watched: check its ACL confines the controller');
    else this.#f.expect('P-1', this.#w.violations.length === 0, 'nothing it signed appeared anywhere else under sp/v1/', `published on ${this.#w.violations.join(', ')}`);
    if (this.#w.foreign > 0) this.#notes.push(`${this.#w.foreign} message(s) from another publisher reached the controller's sync/cmd topics during the run: results may be disturbed.`);

    // A late reply to a message that had to be dropped counts as much as a prompt one.
    for (const d of this.#dropped) {
      if (d.id === undefined || d.answered) continue;
      const late = s.since(d.mark).map(replyBody).find((b) => b !== undefined && b.ref === d.id);
      if (late) this.#f.fail(d.req, this.#answeredText(`${d.label} (late)`, late));
    }

    // P-11 (SHOULD)
    this.#matchRejections();
    if (this.#dropped.length > 0) {
      const missing = this.#dropped.filter((d) => d.got === undefined);
      const wrong = this.#dropped.filter((d) => d.got !== undefined && d.got !== d.expected);
      if (missing.length === 0 && wrong.length === 0) {
        this.#f.pass('P-11', `all ${this.#dropped.length} dropped messages reported as rejected evts with the right code`);
      } else {
        if (missing.length > 0) this.#f.fail('P-11', `no rejected evt for ${missing.length} of ${this.#dropped.length} (first: ${missing[0]?.label ?? ''})`);
        for (const w of wrong.slice(0, 3)) this.#f.fail('P-11', `${w.label}: code ${w.got ?? ''}, expected ${w.expected}`);
      }
    }
    this.#f.pass('P-4', 'the suite itself never retains sync or cmd');
    this.#f.manual('P-23', "TCP_NODELAY is invisible over MQTT: check the controller sets it on its socket (setsockopt, or `ss -ti` shows no Nagle delay)");
    // A code is accepted only while the controller is offline, so no gateway can watch it happen.
    this.#f.manual('P-25', 'cut the controller off the broker, enter *<code> (PROTOCOL §2.6) at its keypad: granted once, a second entry denied spent; reconnect: the access events arrive with credential offline-code and no digits');
    this.#evaluateSeq();
  }

  /**
   * Pair each dropped message with its `rejected` evt (P-11): by `ref` when the evt names one,
   * else by code; each evt counts once. Done at the end, so a report that arrived late still counts.
   */
  #matchRejections(): void {
    const used = new Set<Received>();
    for (const d of this.#dropped) {
      for (const r of this.#s.since(d.mark)) {
        const b = evtBody(r);
        if (b?.kind !== 'rejected' || used.has(r)) continue;
        if ((d.id !== undefined && b.ref === d.id) || (b.ref === undefined && b.code === d.expected)) {
          used.add(r);
          d.got = b.code;
          break;
        }
      }
    }
  }

  /** P-21: within each boot, event seqs run on by one, from 1 for boots that started during the run. */
  #evaluateSeq(): void {
    const byBoot = new Map<string, { seq: number; id: string }[]>();
    for (const r of this.#s.received) {
      if (!isEvt(r)) continue;
      const list = byBoot.get(r.message.boot) ?? [];
      byBoot.set(r.message.boot, list);
      const same = list.find((e) => e.seq === r.message.seq);
      if (same) {
        // A QoS 1 redelivery or a backlog resend is the same message again; anything else reuses a seq.
        if (same.id !== r.message.id) this.#f.fail('P-21', `boot ${r.message.boot}: seq ${r.message.seq} used by two different events`);
        continue;
      }
      list.push({ seq: r.message.seq, id: r.message.id });
    }
    let events = 0;
    for (const [boot, list] of byBoot) {
      events += list.length;
      const first = list[0];
      if (!first) continue;
      if (this.#bornDuringRun.has(boot)) {
        this.#f.expect('P-21', first.seq === 1, 'events of a boot started during the run begin at seq 1', `boot ${boot} began at seq ${first.seq}`);
      }
      for (let i = 1; i < list.length; i++) {
        const prev = list[i - 1] as { seq: number };
        const cur = list[i] as { seq: number };
        if (cur.seq !== prev.seq + 1) {
          this.#f.fail('P-21', `boot ${boot}: seq ${cur.seq} came after ${prev.seq}`);
          break;
        }
      }
    }
    if (events > 1 && !this.#f.failed('P-21')) this.#f.pass('P-21', `${events} events in ${byBoot.size} boot(s), seq contiguous in arrival order`);
  }
}
