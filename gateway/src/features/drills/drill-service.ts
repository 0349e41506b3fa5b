/**
 * Readiness drills (DESIGN §9, issue 8). A drill proves, door by door, that a grant made now would
 * reach the route's controllers and be honoured, without opening anything:
 *
 * 1. `drill.started` is audited, then a test grant is made (Grant.drill) for a random tag uid
 *    nobody carries, on the route doors whose controllers are online (an offline one fails its
 *    doors at once);
 * 2. the grant's delivery is awaited per controller (its applied version covers the grant);
 * 3. each door's controller gets `access.check` for the tag (PROTOCOL §7.5: a decision, no unlock,
 *    no access event) and must answer `granted` under the test grant;
 * 4. the grant is revoked, the revoke's version awaited, and a second `access.check` must answer
 *    `denied`;
 * 5. the result per door is stored and `drill.passed` or `drill.failed` audited; a failure alerts.
 *
 * One drill per building at a time, across instances: the store lease `drill:<building>`. A drill
 * left `running` by a gateway that died is failed by the next start() that can take its lease,
 * and its test grant revoked (it would also expire on the controllers by itself, `grantMs` on).
 * Scheduled drills: every `tickMs` the due schedules are claimed under the same lease, and the
 * schedule's `nextAt` moved on before the drill runs, so each is run once.
 */
import { randomBytes } from 'node:crypto';
import { newId, type AuditActor, type Logger } from '@smart-passage/protocol';
import type { Building, Door, Drill, DrillDoorResult, DrillSchedule, Grant } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { SYSTEM_ACTOR, type AuditSink } from '../audit/audit-log.js';
import { isLive } from '../grants/desired-state.js';
import { routeDoors } from '../readiness/readiness.js';
import { firstDrillAt, nextDrillAt } from './schedule.js';

/** What the drill needs of the controller bridge. */
export interface DrillBridge {
  command(ctrl: string, type: 'access.check', body: { door: string; credential: { kind: 'tag'; uid: string } }): Promise<string>;
  on(event: 'reply', f: (ctrl: string, body: DrillReply) => void): unknown;
  off(event: 'reply', f: (ctrl: string, body: DrillReply) => void): unknown;
}
export interface DrillReply {
  ref: string;
  status: string;
  code?: string;
  decision?: { result: string; reason: string; grantId?: string };
}

/** What the drill needs of the grant service. */
export interface DrillGrants {
  createDrill(input: { drillId: string; buildingId: string; doorIds: string[]; tagUid: string; durationMs: number }): Promise<Grant>;
  revoke(grantId: string, reason: string, actor: AuditActor): Promise<Grant>;
}

export interface DrillServiceOptions {
  store: StorePort;
  grants: DrillGrants;
  bridge: DrillBridge;
  audit: AuditSink;
  logger: Logger;
  /** Our name on drill leases; stable across restarts so a restarted instance reclaims its own. */
  owner: string;
  now?: () => number;
  /** How long the test grant lives if nothing revokes it. Default 5 min. */
  grantMs?: number;
  /** How long to wait for the grant (and then the revoke) to be applied. Default 15 s. */
  deliveryTimeoutMs?: number;
  /** How long to wait for an access.check reply. Default 5 s. */
  replyTimeoutMs?: number;
  /** How often to look at the store while waiting. Default 100 ms. */
  pollMs?: number;
  /** The drill lease's time to live. Default 2 min (a drill takes at most ~2 × delivery + 2 × reply). */
  leaseMs?: number;
  /** How often to look for due scheduled drills. Default 30 s; 0 = never. */
  tickMs?: number;
  /** A drill ended (passed or failed), after it was stored and audited. */
  onFinished?: (drill: Drill, building: Building) => void;
}

const DAY = 86_400_000;
const lease = (buildingId: string) => `drill:${buildingId}`;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class DrillService {
  readonly #o: DrillServiceOptions;
  readonly #now: () => number;
  /** Buildings this instance is drilling now (the lease alone cannot say: we may renew our own). */
  readonly #running = new Set<string>();
  readonly #waiting = new Map<string, (body: DrillReply) => void>();
  readonly #onReply = (_ctrl: string, body: DrillReply): void => {
    const w = this.#waiting.get(body.ref);
    if (w) {
      this.#waiting.delete(body.ref);
      w(body);
    }
  };
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(o: DrillServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** Listen for replies, fail drills a dead gateway left running, then tick the schedule. */
  async start(): Promise<void> {
    this.#o.bridge.on('reply', this.#onReply);
    await this.recover();
    const every = this.#o.tickMs ?? 30_000;
    if (every > 0) {
      this.#timer = setInterval(() => void this.tick(), every);
      this.#timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
    await Promise.allSettled([...this.#inFlight]);
    this.#o.bridge.off('reply', this.#onReply);
  }

  /** Run a drill now (the "run now" button): waits for its end. 409 when one runs for the building. */
  async run(buildingId: string, actor: { userId: string } | undefined): Promise<Drill> {
    const building = await this.#o.store.get('buildings', buildingId);
    if (!building) throw AppError.notFound('building');
    // Nothing to drill (readiness says "no emergency access" already): refused, not a failed drill that alerts.
    if (!building.policy.enabled) throw new AppError('conflict', 'emergency access is disabled for this building: there is nothing to drill');
    if (this.#running.has(buildingId) || !(await this.#o.store.acquireLease(lease(buildingId), this.#o.owner, this.#leaseMs()))) {
      throw new AppError('conflict', 'a drill is already running for this building');
    }
    return this.#track(this.#runLeased(building, actor ? 'manual' : 'schedule', actor?.userId));
  }

  /** Newest first. */
  async history(buildingId: string, limit: number): Promise<Drill[]> {
    const all = await listAll(this.#o.store, 'drills', { field: 'buildingId', value: buildingId });
    return all.sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1)).slice(0, limit);
  }

  /** Set (or change) a building's schedule; the next drill is the next `hour`:00 local after now. */
  async setSchedule(buildingId: string, s: Pick<DrillSchedule, 'enabled' | 'everyDays' | 'hour' | 'timeZone'>): Promise<DrillSchedule> {
    const now = this.#now();
    const nextAt = firstDrillAt(s, now);
    const base: DrillSchedule = { id: buildingId, ...s, nextAt, updatedAt: now };
    const cur = await this.#o.store.get('drillSchedules', buildingId);
    if (!cur) {
      await this.#o.store.put('drillSchedules', base);
      return base;
    }
    const next = await this.#o.store.update('drillSchedules', buildingId, (c) => ({ ...base, ...(c.last ? { last: c.last } : {}) }));
    return next ?? base;
  }

  /** Claim and run every due scheduled drill (each once across instances). Overlapping ticks are skipped. */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = (async () => {
      try {
        const { store } = this.#o;
        const now = this.#now();
        let after: string | undefined;
        for (;;) {
          const page = await store.list('drillSchedules', { limit: 500, ...(after !== undefined ? { after } : {}) });
          for (const s of page) if (s.enabled && s.nextAt <= now) await this.#claim(s.id, now);
          if (page.length < 500) break;
          after = page[page.length - 1]?.id;
        }
      } catch (err) {
        this.#o.logger.warn('drill schedule pass failed; the next tick retries', { err: String(err) });
      }
    })();
    try {
      await this.#ticking;
    } finally {
      this.#ticking = undefined;
    }
  }

  /**
   * Fail drills left `running` by a gateway that is gone (its lease ran out, or it was us before a
   * restart), revoking their test grants. Returns how many.
   */
  async recover(): Promise<number> {
    const { store } = this.#o;
    let n = 0;
    for (const d of await listAll(store, 'drills', { field: 'status', value: 'running' })) {
      if (this.#running.has(d.buildingId)) continue;
      if (!(await store.acquireLease(lease(d.buildingId), this.#o.owner, this.#leaseMs()))) continue;
      try {
        const building = await store.get('buildings', d.buildingId);
        await this.#revokeTestGrants(d.id);
        const doors = d.doors.map((x) => (x.ok ? x : { ...x, ok: false, reason: x.reason ?? 'interrupted' }));
        await this.#finish(d, building, doors, ['interrupted: the gateway running the drill stopped'], d.grantId);
        n += 1;
      } catch (err) {
        this.#o.logger.warn('interrupted drill not closed; the next start retries', { drill: d.id, err: String(err) });
      } finally {
        await store.releaseLease(lease(d.buildingId), this.#o.owner);
      }
    }
    return n;
  }

  async #claim(buildingId: string, now: number): Promise<void> {
    const { store } = this.#o;
    if (this.#running.has(buildingId)) return;
    if (!(await store.acquireLease(lease(buildingId), this.#o.owner, this.#leaseMs()))) return;
    // Under the lease: another instance may have claimed this one and moved nextAt since we listed.
    let claimed = false;
    await store.update('drillSchedules', buildingId, (cur) => {
      claimed = false;
      if (!cur.enabled || cur.nextAt > now) return undefined;
      claimed = true;
      return { ...cur, nextAt: nextDrillAt(cur, cur.nextAt, now) };
    });
    const found = claimed ? await store.get('buildings', buildingId) : undefined;
    // A building with emergency access off keeps its schedule but is not drilled (see run()).
    const building = found?.policy.enabled === true ? found : undefined;
    if (!building) {
      await store.releaseLease(lease(buildingId), this.#o.owner);
      return;
    }
    this.#track(this.#runLeased(building, 'schedule', undefined)).catch((err: unknown) => this.#o.logger.warn('scheduled drill failed to run', { building: buildingId, err: String(err) }));
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p)).catch(() => undefined);
    return p;
  }

  #leaseMs(): number {
    return this.#o.leaseMs ?? 120_000;
  }

  /** The drill itself, with the building's lease held; releases it. */
  async #runLeased(building: Building, trigger: Drill['trigger'], by: string | undefined): Promise<Drill> {
    const { store, logger } = this.#o;
    this.#running.add(building.id);
    const now = this.#now();
    const id = `drl-${newId(now)}`;
    const tagUid = randomBytes(8).toString('hex').toUpperCase();
    const allDoors = await listAll(store, 'doors', { field: 'buildingId', value: building.id });
    const route = building.policy.enabled ? routeDoors(building.policy, allDoors) : [];
    const drill: Drill = { id, buildingId: building.id, status: 'running', trigger, ...(by !== undefined ? { by } : {}), startedAt: now, doors: [], reasons: [] };
    let grant: Grant | undefined;
    try {
      const actor: AuditActor = by !== undefined ? { kind: 'user', id: by } : SYSTEM_ACTOR;
      await this.#o.audit.record({ type: 'drill.started', actor, buildingId: building.id, data: { drillId: id, trigger, doorIds: route.map((d) => d.id) } });
      await store.insert('drills', drill);
      if (!building.policy.enabled) return await this.#finish(drill, building, [], ['emergency access is disabled'], undefined);
      if (route.length === 0) return await this.#finish(drill, building, [], ['no door is on the emergency route'], undefined);

      const results = new Map<string, DrillDoorResult>(route.map((d) => [d.id, { doorId: d.id, doorName: d.name, controllerId: d.controllerId, ok: false }]));
      const fail = (d: Door, reason: string) => {
        const r = results.get(d.id);
        if (r && r.reason === undefined) results.set(d.id, { ...r, ok: false, reason });
      };
      const online: Door[] = [];
      for (const d of route) {
        const live = await store.get('controllerLive', d.controllerId);
        if (live?.online) online.push(d);
        else fail(d, 'controller offline');
      }
      if (online.length > 0) {
        grant = await this.#o.grants.createDrill({ drillId: id, buildingId: building.id, doorIds: online.map((d) => d.id), tagUid, durationMs: this.#o.grantMs ?? 5 * 60_000 });
        const grantId = grant.id;
        await store.update('drills', id, (cur) => ({ ...cur, grantId }));
        const applied = await this.#awaitApplied(grant.deliveries);
        const checked = online.filter((d) => {
          if (applied.has(d.controllerId)) return true;
          fail(d, 'test grant not delivered');
          return false;
        });
        // While it lives: every door must say it would grant the tag, under this grant.
        await Promise.all(
          checked.map(async (d) => {
            const reply = await this.#check(d, tagUid);
            const r = results.get(d.id)!;
            if (reply.decision?.result === 'granted' && reply.decision.grantId === grantId) results.set(d.id, { ...r, granted: true });
            else fail(d, describe(reply, 'would not grant the test tag'));
          }),
        );
        const revoked = await this.#o.grants.revoke(grantId, 'drill over', SYSTEM_ACTOR);
        grant = undefined;
        const gone = await this.#awaitApplied(revoked.deliveries);
        await Promise.all(
          checked.map(async (d) => {
            const r = results.get(d.id)!;
            if (!gone.has(d.controllerId)) return fail(d, 'revoke not delivered');
            const reply = await this.#check(d, tagUid);
            if (reply.decision?.result === 'denied') results.set(d.id, { ...r, deniedAfter: true, ok: r.granted === true && r.reason === undefined });
            else fail(d, describe(reply, 'still grants the test tag after the revoke'));
          }),
        );
      }
      const doors = route.map((d) => results.get(d.id)!);
      const reasons = doors.filter((r) => !r.ok).map((r) => `${r.doorName}: ${r.reason ?? 'failed'}`);
      return await this.#finish(drill, building, doors, reasons, (await store.get('drills', id))?.grantId);
    } catch (err) {
      logger.warn('drill broke off', { drill: id, building: building.id, err: String(err) });
      if (grant) await this.#revokeTestGrants(id);
      const stored = await store.get('drills', id);
      if (!stored) throw err;
      return await this.#finish(stored, building, stored.doors, [`drill broke off: ${err instanceof Error ? err.message : String(err)}`], stored.grantId);
    } finally {
      this.#running.delete(building.id);
      await store.releaseLease(lease(building.id), this.#o.owner).catch(() => undefined);
    }
  }

  /** Revoke what a drill left live (a restart, an error midway). */
  async #revokeTestGrants(drillId: string): Promise<void> {
    for (const g of await listAll(this.#o.store, 'grants', { field: 'incidentId', value: drillId })) {
      if (g.drill && isLive(g, this.#now())) await this.#o.grants.revoke(g.id, 'drill interrupted', SYSTEM_ACTOR);
    }
  }

  /** Store the result, audit it, tell the gateway. A drill passes only with every door ok and no reason against it. */
  async #finish(drill: Drill, building: Building | undefined, doors: DrillDoorResult[], reasons: string[], grantId: string | undefined): Promise<Drill> {
    const { store } = this.#o;
    const now = this.#now();
    const passed = reasons.length === 0 && doors.length > 0 && doors.every((d) => d.ok);
    const status: Drill['status'] = passed ? 'passed' : 'failed';
    await this.#o.audit.record({
      type: passed ? 'drill.passed' : 'drill.failed',
      actor: SYSTEM_ACTOR,
      buildingId: drill.buildingId,
      ...(grantId !== undefined ? { grantId } : {}),
      ...(passed ? {} : { reason: reasons[0]?.slice(0, 200) ?? 'failed' }),
      data: { drillId: drill.id, reasons, doors: doors.map((d) => ({ doorId: d.doorId, ok: d.ok, ...(d.reason !== undefined ? { reason: d.reason } : {}) })) },
    });
    const done = await store.update('drills', drill.id, (cur) => ({ ...cur, status, endedAt: now, doors, reasons, ...(grantId !== undefined ? { grantId } : {}) }));
    const last = { id: drill.id, status, at: now, reasons };
    const s = await store.update('drillSchedules', drill.buildingId, (cur) => ({ ...cur, last }));
    if (!s) {
      const fresh: DrillSchedule = { id: drill.buildingId, enabled: false, everyDays: 7, hour: 3, timeZone: 'UTC', nextAt: now + 7 * DAY, updatedAt: now, last };
      await store.put('drillSchedules', fresh);
    }
    const out = done ?? { ...drill, status, endedAt: now, doors, reasons };
    this.#o.logger.info(`drill ${status}`, { drill: drill.id, building: drill.buildingId, reasons: reasons.length });
    if (building) this.#o.onFinished?.(out, building);
    return out;
  }

  /** Wait until each controller's applied version covers its delivery; the controllers that got there. */
  async #awaitApplied(deliveries: readonly { controllerId: string; version: number }[]): Promise<Set<string>> {
    const { store } = this.#o;
    const done = new Set<string>();
    const until = this.#now() + (this.#o.deliveryTimeoutMs ?? 15_000);
    for (;;) {
      for (const d of deliveries) {
        if (done.has(d.controllerId)) continue;
        const live = await store.get('controllerLive', d.controllerId);
        if (live && live.appliedVersion >= d.version) done.add(d.controllerId);
      }
      if (done.size === deliveries.length || this.#now() >= until) return done;
      await sleep(this.#o.pollMs ?? 100);
    }
  }

  /** access.check the tag at the door (PROTOCOL §7.5); a timeout answers `no reply`. */
  async #check(d: Door, uid: string): Promise<DrillReply> {
    const ref = await this.#o.bridge.command(d.controllerId, 'access.check', { door: d.ref, credential: { kind: 'tag', uid } });
    return new Promise<DrillReply>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(ref);
        resolve({ ref, status: 'timeout' });
      }, this.#o.replyTimeoutMs ?? 5_000);
      this.#waiting.set(ref, (body) => {
        clearTimeout(timer);
        resolve(body);
      });
    });
  }
}

/** A reply that was not the one hoped for, in a few words. */
function describe(reply: DrillReply, wrong: string): string {
  if (reply.status === 'timeout') return 'no reply from the controller';
  if (reply.status === 'rejected') return `controller refused the check (${reply.code ?? 'no code'})`;
  if (!reply.decision) return 'controller answered without a decision';
  return `${wrong} (${reply.decision.result}: ${reply.decision.reason})`;
}
