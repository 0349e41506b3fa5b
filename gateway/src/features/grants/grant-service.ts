/**
 * The grant lifecycle (DESIGN §4): create under the building's policy, extend, revoke, expire.
 * Every change bumps the desired version of each controller touched and sends it the new set;
 * delivery is confirmed by the controller bridge when a reply covers that version.
 *
 * Order of writes: the audit entry first (DESIGN §8, issue 4: a change whose entry cannot be
 * stored does not happen), then versions are bumped, then the grant is stored, then its due time,
 * then the syncs. A crash between any two leaves at worst an entry for a change that did not
 * happen, a version with nothing new in it, or a stored grant not yet sent — which the reconcile
 * at start sends (DESIGN §10) — but never a change nobody can see in the trail.
 */
import { randomInt } from 'node:crypto';
import { newId, type AuditActor, type Logger } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Delivery, Door, Grant, Incident, Tag } from '../../domain/types.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { SYSTEM_ACTOR, type AuditInput, type AuditSink } from '../audit/audit-log.js';
import { NO_METRICS, type Metrics } from '../metrics/metrics.js';
import { controllersOf, isLive, isOpen } from './desired-state.js';

export interface Syncer {
  sync(controllerId: string): Promise<void>;
}

export interface GrantServiceOptions {
  store: StorePort;
  syncer: Syncer;
  logger: Logger;
  now?: () => number;
  /** The audit trail (issue 4): grant.created/extended/revoked/expired. Default: no auditing. */
  audit?: AuditSink;
  /** Counts each change made (issue 6: sp_grants_total). Default: nothing. */
  metrics?: Pick<Metrics, 'grantChanged'>;
}

export interface CreateGrantInput {
  incidentId: string;
  buildingId: string;
  doorIds: string[];
  unitIds: string[];
  /** Issue an incident PIN (returned once). */
  pin?: boolean;
  /** Duration in ms (the API takes minutes). */
  durationMs: number;
}

const dueKey = (grantId: string) => `grant:${grantId}`;

export class GrantService {
  readonly #o: GrantServiceOptions;
  readonly #now: () => number;
  readonly #metrics: Pick<Metrics, 'grantChanged'>;

  constructor(o: GrantServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#metrics = o.metrics ?? NO_METRICS;
  }

  /** Check policy, audit, store the grant, and send each controller touched its new set. */
  async create(input: CreateGrantInput, actor: { userId: string; name?: string }): Promise<{ grant: Grant; pin?: string }> {
    const { store } = this.#o;
    const now = this.#now();
    const incident = await store.get('incidents', input.incidentId);
    if (!incident) throw AppError.notFound('incident');
    if (incident.status !== 'open') throw new AppError('conflict', 'the incident is closed');
    const building = await store.get('buildings', input.buildingId);
    if (!building) throw AppError.notFound('building');
    const policy = building.policy;
    if (!policy.enabled) throw new AppError('policy-violation', 'emergency access is not enabled for this building');
    if (input.durationMs <= 0 || input.durationMs > policy.maxMinutes * 60_000) {
      throw new AppError('policy-violation', `duration must be at most ${policy.maxMinutes} minutes for this building`);
    }
    const doors = await this.#doorsFor(input.buildingId, input.doorIds, policy.doorIds);
    const units = await this.#checkUnits(input.unitIds, policy.allowedAgencyIds);
    const hasTag = units.some((tags) => tags.some((t) => t.status === 'active'));
    if (!hasTag && !input.pin) throw new AppError('policy-violation', 'the units have no active tag: ask for a PIN');

    const ctrls = controllersOf({ doorIds: input.doorIds }, doors);
    const id = `grt-${newId(now)}`;
    const notAfter = now + input.durationMs;
    // What the grant lets in, never with what: the PIN stays out of the trail (DESIGN §7, §8).
    const credentials = [...(hasTag ? ['tag'] : []), ...(input.pin ? ['pin'] : [])];
    await this.#audit({
      type: 'grant.created',
      actor: { kind: 'user', id: actor.userId, ...(actor.name !== undefined ? { name: actor.name } : {}) },
      buildingId: building.id,
      incidentId: incident.id,
      grantId: id,
      data: { unitIds: [...input.unitIds], doorIds: [...input.doorIds], notBefore: now, notAfter, credentials },
      dedupe: `created:${id}`,
    });
    const deliveries = await this.#bumpAll(ctrls);
    const pin = input.pin ? String(randomInt(0, 1_000_000)).padStart(6, '0') : undefined;
    const grant: Grant = {
      id,
      incidentId: incident.id,
      buildingId: building.id,
      doorIds: [...input.doorIds],
      unitIds: [...input.unitIds],
      ...(pin !== undefined ? { pin } : {}),
      notBefore: now,
      notAfter,
      status: 'pending',
      createdBy: actor.userId,
      createdAt: now,
      deliveries,
    };
    // Together (one group commit on the embedded store): a due key whose grant was not stored is
    // dropped when it comes due (expireDue finds no open grant).
    await Promise.all([store.insert('grants', grant), store.scheduleAt(dueKey(grant.id), grant.notAfter)]);
    if (!incident.buildingIds.includes(building.id)) {
      await store.update('incidents', incident.id, (cur): Incident => ({ ...cur, buildingIds: [...new Set([...cur.buildingIds, building.id])] }));
    }
    this.#metrics.grantChanged('created');
    await this.#syncAll(ctrls);
    return { grant, ...(pin !== undefined ? { pin } : {}) };
  }

  /**
   * A readiness drill's test grant (issue 8, DESIGN §9): `drill.tagUid` on `doorIds`, for
   * `durationMs`, under the drill's id in place of an incident. No policy check (it opens nothing
   * anyone carries) and no `grant.created` entry: the caller audits `drill.started` naming it
   * first. Expires like any grant, so a drill lost with its gateway still ends on the controllers.
   */
  async createDrill(input: { drillId: string; buildingId: string; doorIds: string[]; tagUid: string; durationMs: number }): Promise<Grant> {
    const { store } = this.#o;
    const now = this.#now();
    const doors = await this.#doorMap(input.buildingId);
    const ctrls = controllersOf({ doorIds: input.doorIds }, doors);
    const deliveries = await this.#bumpAll(ctrls);
    const grant: Grant = {
      id: `grt-${newId(now)}`,
      incidentId: input.drillId,
      buildingId: input.buildingId,
      doorIds: [...input.doorIds],
      unitIds: [],
      notBefore: now,
      notAfter: now + input.durationMs,
      status: 'pending',
      createdBy: 'system',
      createdAt: now,
      deliveries,
      drill: { tagUid: input.tagUid },
    };
    await store.insert('grants', grant);
    await store.scheduleAt(dueKey(grant.id), grant.notAfter);
    await this.#syncAll(ctrls);
    return grant;
  }

  /** Move the end later, within the policy's maximum counted from now. */
  async extend(grantId: string, durationMs: number, actor: AuditActor = SYSTEM_ACTOR): Promise<Grant> {
    const { store } = this.#o;
    const now = this.#now();
    const g = await this.#live(grantId);
    const building = await store.get('buildings', g.buildingId);
    const max = (building?.policy.maxMinutes ?? 0) * 60_000;
    const notAfter = g.notAfter + durationMs;
    if (durationMs <= 0 || notAfter - now > max) throw new AppError('policy-violation', `a grant may run at most ${max / 60_000} minutes from now`);
    await this.#audit({ type: 'grant.extended', actor, ...this.#about(g), data: { notAfter, previousNotAfter: g.notAfter } });
    return this.#change(g, (cur, deliveries) => ({ ...cur, notAfter, deliveries }), async (next) => {
      await store.scheduleAt(dueKey(next.id), next.notAfter);
      this.#metrics.grantChanged('extended');
    });
  }

  async revoke(grantId: string, reason = 'revoked', actor: AuditActor = SYSTEM_ACTOR): Promise<Grant> {
    const g = await this.#live(grantId);
    const now = this.#now();
    return this.#end(g, 'revoked', reason, now, actor);
  }

  /** Revoke every live grant of an incident (incident close): one `grant.revoked` entry each. */
  async revokeIncident(incidentId: string, actor: AuditActor = SYSTEM_ACTOR): Promise<Grant[]> {
    const now = this.#now();
    const out: Grant[] = [];
    for (const g of await listAll(this.#o.store, 'grants', { field: 'incidentId', value: incidentId })) {
      if (isLive(g, now)) out.push(await this.#end(g, 'revoked', 'incident closed', now, actor));
    }
    return out;
  }

  /**
   * Expire what is due (DESIGN §4 step 4). Each due key is claimed with a lease, so with several
   * gateway instances each expiry runs once (DESIGN §11). Returns the grants expired.
   *
   * One grant that cannot be expired now (its audit entry or its write failed) does not hold up
   * the others: it stays due, and the next pass tries it again.
   */
  async expireDue(owner: string): Promise<Grant[]> {
    const { store } = this.#o;
    const now = this.#now();
    const out: Grant[] = [];
    for (const { key } of await store.due(now, 100)) {
      if (!(await store.acquireLease(`lease:${key}`, owner, 30_000))) continue;
      try {
        const g = await store.get('grants', key.slice('grant:'.length));
        if (g && isOpen(g) && g.notAfter <= now) out.push(await this.#end(g, 'expired', 'time', now, SYSTEM_ACTOR));
        else await store.unschedule(key);
      } catch (err) {
        this.#o.logger.warn('grant not expired now; the next pass retries', { key, err: String(err) });
      } finally {
        await store.releaseLease(`lease:${key}`, owner);
      }
    }
    return out;
  }

  /**
   * A unit's credentials changed (a tag blocked, added or moved): every controller holding a live
   * grant of that unit gets a new version without the blocked tag (DESIGN §4 flow 5).
   * Returns the controllers re-synced.
   */
  async resyncUnit(unitId: string): Promise<string[]> {
    const now = this.#now();
    const live = (await listAll(this.#o.store, 'grants', { field: 'unitIds', value: unitId })).filter((g) => isLive(g, now));
    // The doors of each building once, read side by side (a lost tag may reach thousands of buildings).
    const buildings = [...new Set(live.map((g) => g.buildingId))];
    const doorMaps = new Map((await Promise.all(buildings.map(async (b) => [b, await this.#doorMap(b)] as const))));
    const ctrls = new Set<string>();
    for (const g of live) for (const c of controllersOf(g, doorMaps.get(g.buildingId) ?? new Map<string, Door>())) ctrls.add(c);
    await this.#bumpAll([...ctrls]);
    await this.#syncAll([...ctrls]);
    return [...ctrls].sort();
  }

  /** At start: every controller behind its desired version gets its set again (DESIGN §10). */
  async reconcile(): Promise<number> {
    const { store } = this.#o;
    let sent = 0;
    let after: string | undefined;
    for (;;) {
      const page = await store.list('controllers', { limit: 500, ...(after !== undefined ? { after } : {}) });
      // A page at a time, its controllers side by side (10,000 one after another took seconds on Redis).
      const behind = await Promise.all(
        page.map(async (c) => {
          const [desired, live] = await Promise.all([store.desiredVersion(c.id), store.get('controllerLive', c.id)]);
          return desired > (live?.appliedVersion ?? 0) ? c.id : undefined;
        }),
      );
      const ids = behind.filter((id): id is string => id !== undefined);
      await this.#syncAll(ids);
      sent += ids.length;
      if (page.length < 500) return sent;
      after = page[page.length - 1]?.id;
    }
  }

  async #end(g: Grant, status: 'expired' | 'revoked', reason: string, now: number, actor: AuditActor): Promise<Grant> {
    // A grant ends once: the key makes a retried expiry or revoke (after a failed write) record nothing new.
    await this.#audit({ type: status === 'expired' ? 'grant.expired' : 'grant.revoked', actor, ...this.#about(g), reason, dedupe: `${status}:${g.id}` });
    const next = await this.#change(
      g,
      (cur, deliveries) => {
        // The PIN is kept only while its grant lives (DESIGN §7).
        const { pin: _pin, ...rest } = cur;
        return { ...rest, status, reason, endedAt: now, deliveries };
      },
      async () => {
        await this.#o.store.unschedule(dueKey(g.id));
        this.#metrics.grantChanged(status);
      },
    );
    this.#o.logger.info(`grant ${status}`, { grant: g.id, reason });
    return next;
  }

  /** Awaited: a change whose entry cannot be stored fails with the store's error. */
  async #audit(input: AuditInput): Promise<void> {
    if (this.#o.audit) await this.#o.audit.record(input);
  }

  #about(g: Grant): Pick<AuditInput, 'buildingId' | 'incidentId' | 'grantId'> {
    return { buildingId: g.buildingId, incidentId: g.incidentId, grantId: g.id };
  }

  /** Bump the versions of the grant's controllers, write the change, then sync them. */
  async #change(g: Grant, mutate: (cur: Grant, deliveries: Delivery[]) => Grant, after: (next: Grant) => Promise<void>): Promise<Grant> {
    const { store } = this.#o;
    const doors = await this.#doorMap(g.buildingId);
    const ctrls = controllersOf(g, doors);
    const deliveries = await this.#bumpAll(ctrls);
    const next = await store.update('grants', g.id, (cur) => mutate(cur, deliveries));
    if (!next) throw AppError.notFound('grant');
    await after(next);
    await this.#syncAll(ctrls);
    return next;
  }

  /**
   * A new desired version for each controller, asked for all at once: the store commits them
   * together (one transaction on the embedded store, pipelined on Redis) rather than one round
   * trip after another (issue 7). Versions are per controller, so their order does not matter.
   */
  async #bumpAll(ctrls: readonly string[]): Promise<Delivery[]> {
    const versions = await Promise.all(ctrls.map((c) => this.#o.store.bumpDesiredVersion(c)));
    return ctrls.map((c, i) => ({ controllerId: c, version: versions[i]!, state: 'pending' as const }));
  }

  async #live(grantId: string): Promise<Grant> {
    const g = await this.#o.store.get('grants', grantId);
    if (!g) throw AppError.notFound('grant');
    if (!isLive(g, this.#now())) throw new AppError('conflict', `the grant is ${isOpen(g) ? 'over' : g.status}`);
    return g;
  }

  async #doorMap(buildingId: string): Promise<Map<string, Door>> {
    const doors = await listAll(this.#o.store, 'doors', { field: 'buildingId', value: buildingId });
    return new Map(doors.map((d) => [d.id, d]));
  }

  async #doorsFor(buildingId: string, doorIds: string[], allowed: string[]): Promise<Map<string, Door>> {
    if (doorIds.length === 0) throw AppError.badRequest('/doorIds', 'pick at least one door');
    const doors = await this.#doorMap(buildingId);
    for (const [i, id] of doorIds.entries()) {
      const d = doors.get(id);
      if (!d) throw AppError.badRequest(`/doorIds/${i}`, 'no such door in this building');
      if (!d.emergency || (allowed.length > 0 && !allowed.includes(id))) throw new AppError('policy-violation', `door ${d.name} is not open to emergency access`);
    }
    return doors;
  }

  async #checkUnits(unitIds: string[], allowedAgencies: string[]): Promise<Tag[][]> {
    if (unitIds.length === 0) throw AppError.badRequest('/unitIds', 'pick at least one unit');
    const out: Tag[][] = [];
    for (const [i, id] of unitIds.entries()) {
      const unit = await this.#o.store.get('units', id);
      if (!unit) throw AppError.badRequest(`/unitIds/${i}`, 'no such unit');
      if (allowedAgencies.length > 0 && !allowedAgencies.includes(unit.agencyId)) throw new AppError('policy-violation', `unit ${unit.callSign} is not allowed in this building`);
      out.push(await listAll(this.#o.store, 'tags', { field: 'unitId', value: id }));
    }
    return out;
  }

  async #syncAll(ctrls: string[]): Promise<void> {
    // A failed send is not the caller's failure: the grant is stored, and the retry or the next
    // birth delivers it (PROTOCOL §5.8).
    await Promise.all(
      ctrls.map((c) => this.#o.syncer.sync(c).catch((err: unknown) => this.#o.logger.warn('sync not sent; it will be retried', { ctrl: c, err: String(err) }))),
    );
  }
}
