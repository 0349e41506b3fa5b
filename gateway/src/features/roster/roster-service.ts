/**
 * Roster sync (issue 8): an agency's roster — from a CSV import or a SCIM client — becomes roster
 * members, units and tags. The work is split in two: `plan()` reads the store and decides every
 * change (a dry run shows exactly this), `apply()` plans again under a per-agency lease and, only
 * when no line has an error, carries the plan out (all-or-nothing for bad input).
 *
 * "Blocked everywhere": a member removed from the roster (missing from a `sync` import, deleted
 * or suspended over SCIM), or a tag uid dropped from a member, blocks each such tag: audited
 * `tag.blocked` with reason `roster-removed` before the change, as the admin block does, and then
 * every controller holding a live grant of the tag's unit gets a new desired set without it
 * (desired-state.ts leaves blocked tags out; `resyncUnits` is GrantService.resyncUnit).
 *
 * Rules the plan applies:
 * - a tag uid is global (PROTOCOL TagUid, unique in the store): a uid on another agency's unit or
 *   held by another agency's member is an error; one held by a member of this agency who is not in
 *   the input is an error too (take it off them first), so an import never silently re-issues;
 * - an existing tag of the agency that a member now holds is moved to the member's unit; a tag
 *   that is blocked or lost stays so (a re-imported member does not get a blocked tag back
 *   unasked: unblock it under Tags), and the plan notes it;
 * - tags of the agency that no member holds (issued per unit before roster sync) are left alone.
 *
 * The store has no transactions: a write failing midway (store down) leaves part of the plan
 * done; every step is idempotent, so importing the same file again completes it.
 */
import { createHash } from 'node:crypto';
import { newId, type AuditActor, type Logger } from '@smart-passage/protocol';
import type { Tag, Unit } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { listAll } from '../../store/list-all.js';
import { scanAll } from '../admin/common.js';
import type { StorePort } from '../../store/port.js';
import type { AuditSink } from '../audit/audit-log.js';
import type { LineError, MemberInput } from './csv.js';
import type { RosterMember } from './types.js';

export type RosterMode = 'sync' | 'merge';

export interface PlanRow {
  line?: number;
  externalId: string;
  name: string;
  action: 'create' | 'update' | 'remove' | 'unchanged';
  unitCallSign?: string;
  tagUids: string[];
  /** False: the member is (or stays) suspended. */
  active: boolean;
  /** Tags this change blocks (the member removed or suspended, or the uid taken off them). */
  blockTagUids: string[];
  /** What the admin should know (a tag that stays blocked). */
  notes: string[];
}

export interface RosterPlan {
  agencyId: string;
  mode: RosterMode;
  counts: { create: number; update: number; remove: number; unchanged: number };
  /** Call signs of the units the import creates. */
  unitsToCreate: string[];
  /** Tag uids the import registers. */
  tagsToCreate: string[];
  /** Tag uids the import blocks. */
  tagsToBlock: string[];
  rows: PlanRow[];
  errors: LineError[];
}

export interface RosterDeps {
  store: StorePort;
  audit?: AuditSink;
  /** A unit's tags changed: re-sync the controllers of its live grants (GrantService.resyncUnit). */
  resyncUnits: (unitIds: readonly string[]) => Promise<void>;
  logger: Logger;
  now?: () => number;
  /** How long one import may hold the agency's roster lease (default 120 s). */
  leaseMs?: number;
}

/** The member id of (agency, roster id): fixed, so one roster id cannot be created twice. */
export function memberId(agencyId: string, externalId: string): string {
  return `rm-${createHash('sha256').update(`${agencyId}\u0000${externalId}`).digest('base64url').slice(0, 32)}`;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** What plan() knows besides the public plan, so apply() need not read it again. */
interface Resolved {
  plan: RosterPlan;
  units: Map<string, Unit>;
  tags: Map<string, Tag>;
  members: Map<string, RosterMember>;
}

export class RosterService {
  readonly #o: RosterDeps;
  readonly #owner = `roster-${newId()}`;

  constructor(o: RosterDeps) {
    this.#o = o;
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }

  /** Every member of an agency (id order). */
  members(agencyId: string): Promise<RosterMember[]> {
    return listAll(this.#o.store, 'rosterMembers', { field: 'agencyId', value: agencyId });
  }

  /** What importing `input` would change; nothing is written. */
  async plan(agencyId: string, mode: RosterMode, input: readonly MemberInput[], removals: readonly string[] = []): Promise<RosterPlan> {
    return (await this.#resolve(agencyId, mode, input, removals)).plan;
  }

  /**
   * Plan and, when the plan has no error, carry it out. Resolves to the plan (its `errors` non-empty
   * = nothing was changed). `removals`: externalIds to remove besides a sync's missing members.
   */
  async apply(agencyId: string, mode: RosterMode, input: readonly MemberInput[], actor: AuditActor, removals: readonly string[] = []): Promise<RosterPlan> {
    const { store } = this.#o;
    const lease = `lease:roster:${agencyId}`;
    if (!(await store.acquireLease(lease, this.#owner, this.#o.leaseMs ?? 120_000))) throw AppError.conflict("another change to this agency's roster is running; try again");
    try {
      const r = await this.#resolve(agencyId, mode, input, removals);
      if (r.plan.errors.length === 0) await this.#execute(r, actor);
      return r.plan;
    } finally {
      await store.releaseLease(lease, this.#owner);
    }
  }

  async #resolve(agencyId: string, mode: RosterMode, input: readonly MemberInput[], removals: readonly string[]): Promise<Resolved> {
    const { store } = this.#o;
    const errors: LineError[] = [];
    const members = new Map((await this.members(agencyId)).map((m) => [m.externalId, m]));
    const units = new Map((await listAll(store, 'units', { field: 'agencyId', value: agencyId })).map((u) => [u.callSign, u]));
    const unitById = new Map([...units.values()].map((u) => [u.id, u]));
    const tags = new Map<string, Tag>();
    // One read of every tag and every member holding one, instead of two look-ups per uid: an
    // import of thousands stays a few paged reads.
    const tagByUid = new Map((await scanAll(store, 'tags')).map((t) => [t.uid, t]));
    const holdersOf = new Map<string, RosterMember[]>();
    for (const h of await scanAll(store, 'rosterMembers')) for (const uid of h.tagUids) holdersOf.set(uid, [...(holdersOf.get(uid) ?? []), h]);
    const inputIds = new Set(input.map((m) => m.externalId));
    const heldBy = new Map<string, string>(); // uid → externalId, within the input
    const rows: PlanRow[] = [];
    const unitsToCreate = new Set<string>();
    const tagsToCreate: string[] = [];

    for (const m of input) {
      const at = (field: string, message: string): void => void errors.push({ ...(m.line !== undefined ? { line: m.line } : {}), field, message });
      const before = errors.length;
      if (m.tagUids.length > 0 && m.unitCallSign === undefined) at('unitCallSign', 'a member with tags needs a unit: tags open doors through their unit');
      const notes: string[] = [];
      for (const uid of m.tagUids) {
        const other = heldBy.get(uid);
        if (other !== undefined) {
          at('tagUids', `tag ${uid} is also given to ${other}`);
          continue;
        }
        heldBy.set(uid, m.externalId);
        const tag = tagByUid.get(uid);
        if (tag !== undefined) {
          const unit = unitById.get(tag.unitId) ?? (await store.get('units', tag.unitId));
          if (unit?.agencyId !== agencyId) {
            at('tagUids', `tag ${uid} belongs to another agency`);
            continue;
          }
          tags.set(uid, tag);
          if (tag.status !== 'active') notes.push(`tag ${uid} is ${tag.status} and stays so (unblock it under Tags if it was returned)`);
        }
        for (const holder of holdersOf.get(uid) ?? []) {
          if (holder.agencyId !== agencyId) at('tagUids', `tag ${uid} is held by a member of another agency`);
          else if (holder.externalId !== m.externalId && !inputIds.has(holder.externalId)) at('tagUids', `tag ${uid} is held by ${holder.externalId}, who is not in this roster: take it off them first`);
        }
        if (tag === undefined) tagsToCreate.push(uid);
      }
      if (errors.length > before) continue;
      if (m.unitCallSign !== undefined && !units.has(m.unitCallSign)) unitsToCreate.add(m.unitCallSign);
      const cur = members.get(m.externalId);
      const active = m.active ?? true;
      const curCall = cur?.unitId !== undefined ? unitById.get(cur.unitId)?.callSign : undefined;
      const changed = cur === undefined || cur.name !== m.name || curCall !== m.unitCallSign || !sameSet(cur.tagUids, m.tagUids) || cur.active !== active;
      rows.push({
        ...(m.line !== undefined ? { line: m.line } : {}),
        externalId: m.externalId,
        name: m.name,
        action: cur === undefined ? 'create' : changed ? 'update' : 'unchanged',
        ...(m.unitCallSign !== undefined ? { unitCallSign: m.unitCallSign } : {}),
        tagUids: m.tagUids,
        active,
        blockTagUids: [],
        notes,
      });
    }

    // Tags that leave a member and go to nobody in the input are blocked; a suspended member's all.
    for (const row of rows) {
      const cur = members.get(row.externalId);
      const dropped = (cur?.tagUids ?? []).filter((uid) => !heldBy.has(uid));
      row.blockTagUids = !row.active ? [...new Set([...dropped, ...row.tagUids])] : dropped;
    }
    const removed = new Set(removals);
    if (mode === 'sync') for (const id of members.keys()) if (!inputIds.has(id)) removed.add(id);
    for (const id of removed) {
      const cur = members.get(id);
      if (cur === undefined) continue;
      const call = cur.unitId !== undefined ? unitById.get(cur.unitId)?.callSign : undefined;
      rows.push({ externalId: id, name: cur.name, action: 'remove', ...(call !== undefined ? { unitCallSign: call } : {}), tagUids: cur.tagUids, active: false, blockTagUids: cur.tagUids.filter((uid) => !heldBy.has(uid)), notes: [] });
    }
    // Only tags the change actually turns from active to blocked count (and are audited).
    for (const row of rows) {
      for (const uid of row.blockTagUids) {
        const tag = tagByUid.get(uid);
        if (!tags.has(uid) && tag !== undefined) tags.set(uid, tag);
      }
    }
    const tagsToBlock = [...new Set(rows.flatMap((r) => r.blockTagUids))].filter((uid) => tags.get(uid)?.status === 'active' || tagsToCreate.includes(uid)).sort();
    const count = (a: PlanRow['action']): number => rows.filter((r) => r.action === a).length;
    const plan: RosterPlan = {
      agencyId,
      mode,
      counts: { create: count('create'), update: count('update'), remove: count('remove'), unchanged: count('unchanged') },
      unitsToCreate: [...unitsToCreate].sort(),
      tagsToCreate: tagsToCreate.sort(),
      tagsToBlock,
      rows,
      errors,
    };
    return { plan, units, tags, members };
  }

  async #execute(r: Resolved, actor: AuditActor): Promise<void> {
    const { store } = this.#o;
    const { plan } = r;
    const now = this.#now();
    const touched = new Set<string>();
    for (const call of plan.unitsToCreate) {
      const u: Unit = { id: `unit-${newId(now)}`, agencyId: plan.agencyId, callSign: call };
      await store.insert('units', u);
      r.units.set(call, u);
    }
    for (const row of plan.rows) {
      if (row.action === 'remove' || row.action === 'unchanged') continue;
      const unitId = row.unitCallSign !== undefined ? r.units.get(row.unitCallSign)!.id : undefined;
      for (const uid of row.tagUids) {
        const tag = r.tags.get(uid);
        if (tag === undefined) {
          const t: Tag = { id: `tag-${newId(now)}`, uid, label: row.name, unitId: unitId!, status: 'active' };
          await store.insert('tags', t);
          r.tags.set(uid, t);
          touched.add(t.unitId);
        } else if (unitId !== undefined && tag.unitId !== unitId) {
          const moved = await store.update('tags', tag.id, (c) => (c.unitId === unitId ? undefined : { ...c, unitId }));
          touched.add(tag.unitId).add(unitId);
          if (moved) r.tags.set(uid, moved);
        }
      }
      const cur = r.members.get(row.externalId);
      const doc: RosterMember = {
        id: cur?.id ?? memberId(plan.agencyId, row.externalId),
        agencyId: plan.agencyId,
        externalId: row.externalId,
        name: row.name,
        ...(unitId !== undefined ? { unitId } : {}),
        tagUids: row.tagUids,
        active: row.active,
        createdAt: cur?.createdAt ?? now,
        updatedAt: now,
      };
      if (cur === undefined) await store.insert('rosterMembers', doc);
      else await store.put('rosterMembers', doc);
    }
    for (const row of plan.rows) {
      for (const uid of row.blockTagUids) {
        const unitId = await this.#block(uid, row.externalId, actor);
        if (unitId !== undefined) touched.add(unitId);
      }
      if (row.action === 'remove') {
        const cur = r.members.get(row.externalId);
        if (cur !== undefined) await store.delete('rosterMembers', cur.id);
      }
    }
    this.#o.logger.info('roster applied', { agency: plan.agencyId, mode: plan.mode, ...plan.counts, blocked: plan.tagsToBlock.length });
    if (touched.size > 0) await this.#o.resyncUnits([...touched].sort());
  }

  /** Block one tag for the roster: audited first (DESIGN §8), then stored. Returns its unit when it changed. */
  async #block(uid: string, externalId: string, actor: AuditActor): Promise<string | undefined> {
    const { store } = this.#o;
    const tag = (await store.list('tags', { where: { field: 'uid', value: uid }, limit: 1 }))[0];
    if (tag === undefined || tag.status !== 'active') return undefined;
    await this.#o.audit?.record({ type: 'tag.blocked', actor, tagId: tag.id, unitId: tag.unitId, reason: 'roster-removed', data: { label: tag.label, previousStatus: tag.status, externalId: externalId.slice(0, 128) } });
    const after = await store.update('tags', tag.id, (c) => (c.status === 'active' ? { ...c, status: 'blocked' } : undefined));
    return after?.unitId ?? tag.unitId;
  }
}
