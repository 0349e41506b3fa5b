// Issue 8: the roster plan and its application against both store implementations (the new
// `rosterMembers` collection and its array index on `tagUids` included): what is created, moved,
// blocked and refused, and that a plan with errors writes nothing.
import { afterEach, describe, expect, it } from 'vitest';
import { generateRawKeyPair, privateKeyFromSeed, silentLogger } from '@smart-passage/protocol';
import { AuditLog } from '../../../src/features/audit/audit-log.js';
import type { MemberInput } from '../../../src/features/roster/csv.js';
import { memberId, RosterService } from '../../../src/features/roster/roster-service.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import type { StorePort } from '../../../src/store/port.js';
import { RedisStore } from '../../../src/store/redis-store.js';
import { deletePrefix, uniquePrefix } from '../../store/helpers.js';

const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN = { kind: 'user' as const, id: 'usr-admin' };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(kind: 'embedded' | 'redis') {
  let store: StorePort;
  if (kind === 'embedded') store = new EmbeddedStore({ path: ':memory:' });
  else {
    const prefix = uniquePrefix();
    store = new RedisStore({ url: REDIS_URL, prefix, logger: silentLogger });
    cleanups.push(() => deletePrefix(prefix));
  }
  await store.start();
  cleanups.push(() => store.stop());
  const k = generateRawKeyPair();
  const audit = new AuditLog({ store, key: { kid: 'a', key: privateKeyFromSeed(k.privateKey) }, logger: silentLogger });
  audit.start();
  cleanups.push(() => audit.stop());
  const resynced: string[][] = [];
  const roster = new RosterService({ store, audit, logger: silentLogger, resyncUnits: (u) => Promise.resolve(void resynced.push([...u])) });
  await store.insert('agencies', { id: 'ag-a', name: 'A', kind: 'fire' });
  await store.insert('agencies', { id: 'ag-b', name: 'B', kind: 'ambulance' });
  await store.insert('units', { id: 'unit-a1', agencyId: 'ag-a', callSign: 'A 1' });
  await store.insert('units', { id: 'unit-b1', agencyId: 'ag-b', callSign: 'B 1' });
  await store.insert('tags', { id: 'tag-b', uid: 'BBBB0001', label: 'B', unitId: 'unit-b1', status: 'active' });
  await store.insert('tags', { id: 'tag-a-unit', uid: 'AAAA0000', label: 'unit tag', unitId: 'unit-a1', status: 'active' });
  const tag = async (uid: string) => (await store.list('tags', { where: { field: 'uid', value: uid }, limit: 1 }))[0];
  const blockedAudit = async () => (await store.auditQuery({ types: ['tag.blocked'], limit: 100 })).items;
  return { store, roster, resynced, tag, blockedAudit };
}

const m = (externalId: string, unitCallSign: string | undefined, tagUids: string[], line?: number): MemberInput => ({
  externalId,
  name: `Person ${externalId}`,
  ...(unitCallSign !== undefined ? { unitCallSign } : {}),
  tagUids,
  ...(line !== undefined ? { line } : {}),
});

describe.each(['embedded', 'redis'] as const)('roster plan and apply (%s store)', (kind) => {
  it('creates members, units and tags, then moves a tag between members without blocking it and blocks the dropped ones', async () => {
    const w = await world(kind);
    const plan = await w.roster.plan('ag-a', 'sync', [m('P1', 'A 1', ['AAAA0001', 'AAAA0002']), m('P2', 'A 9', ['AAAA0003'])]);
    expect(plan.errors).toEqual([]);
    expect(plan.counts).toEqual({ create: 2, update: 0, remove: 0, unchanged: 0 });
    expect(plan.unitsToCreate).toEqual(['A 9']);
    expect(plan.tagsToCreate).toEqual(['AAAA0001', 'AAAA0002', 'AAAA0003']);
    expect(await w.roster.members('ag-a')).toEqual([]); // planning writes nothing

    await w.roster.apply('ag-a', 'sync', [m('P1', 'A 1', ['AAAA0001', 'AAAA0002']), m('P2', 'A 9', ['AAAA0003'])], ADMIN);
    const a9 = (await w.store.list('units', { where: { field: 'agencyId', value: 'ag-a' } })).find((u) => u.callSign === 'A 9')!;
    expect((await w.tag('AAAA0003'))?.unitId).toBe(a9.id);
    expect((await w.store.get('rosterMembers', memberId('ag-a', 'P1')))?.tagUids).toEqual(['AAAA0001', 'AAAA0002']);
    expect(w.resynced.at(-1)).toEqual([a9.id, 'unit-a1'].sort());

    // P1 hands AAAA0002 to P2 and drops AAAA0001: the handed tag moves unit, the dropped one is blocked.
    const next = [m('P1', 'A 1', []), m('P2', 'A 9', ['AAAA0003', 'AAAA0002'])];
    const p2 = await w.roster.apply('ag-a', 'sync', next, ADMIN);
    expect(p2.tagsToBlock).toEqual(['AAAA0001']);
    expect((await w.tag('AAAA0001'))?.status).toBe('blocked');
    expect(await w.tag('AAAA0002')).toMatchObject({ status: 'active', unitId: a9.id });
    expect((await w.blockedAudit()).map((e) => [e.reason, e.actor, e.data?.['externalId']])).toEqual([['roster-removed', ADMIN, 'P1']]);
    expect(w.resynced.at(-1)).toEqual([a9.id, 'unit-a1'].sort());
    // The unit's own tag, held by nobody, is never touched.
    expect((await w.tag('AAAA0000'))?.status).toBe('active');
  });

  it('refuses, and writes nothing for: another agency’s uid, a uid held by a member not in the input, tags without a unit, a uid given twice', async () => {
    const w = await world(kind);
    await w.roster.apply('ag-a', 'merge', [m('P1', 'A 1', ['AAAA0001'])], ADMIN);
    const before = { members: await w.roster.members('ag-a'), tags: await w.store.list('tags', {}) };
    const plan = await w.roster.apply(
      'ag-a',
      'merge',
      [m('X1', 'A 1', ['BBBB0001'], 2), m('X2', 'A 1', ['AAAA0001'], 3), m('X3', undefined, ['AAAA0009'], 4), m('X4', 'A 1', ['AAAA0008'], 5), m('X5', 'A 1', ['aaaa0008'.toUpperCase()], 6), m('X6', 'NEW', [], 7)],
      ADMIN,
    );
    expect(plan.errors.map((e) => [e.line, e.message])).toEqual([
      [2, 'tag BBBB0001 belongs to another agency'],
      [3, 'tag AAAA0001 is held by P1, who is not in this roster: take it off them first'],
      [4, 'a member with tags needs a unit: tags open doors through their unit'],
      [6, 'tag AAAA0008 is also given to X4'],
    ]);
    expect({ members: await w.roster.members('ag-a'), tags: await w.store.list('tags', {}) }).toEqual(before);
    expect(await w.store.list('units', { where: { field: 'agencyId', value: 'ag-a' } })).toHaveLength(1);
    // The other agency cannot take the uid either.
    expect((await w.roster.plan('ag-b', 'merge', [m('Q', 'B 1', ['AAAA0001'])])).errors[0]?.message).toMatch(/another agency/);
  });

  it('a sync removes missing members and blocks their tags; a re-added member’s blocked tag stays blocked (noted)', async () => {
    const w = await world(kind);
    await w.roster.apply('ag-a', 'merge', [m('P1', 'A 1', ['AAAA0001']), m('P2', 'A 1', ['AAAA0002'])], ADMIN);
    const merge = await w.roster.plan('ag-a', 'merge', [m('P2', 'A 1', ['AAAA0002'])]);
    expect(merge.counts).toEqual({ create: 0, update: 0, remove: 0, unchanged: 1 });
    const sync = await w.roster.apply('ag-a', 'sync', [m('P2', 'A 1', ['AAAA0002'])], ADMIN);
    expect(sync.counts).toEqual({ create: 0, update: 0, remove: 1, unchanged: 1 });
    expect((await w.roster.members('ag-a')).map((x) => x.externalId)).toEqual(['P2']);
    expect((await w.tag('AAAA0001'))?.status).toBe('blocked');
    const back = await w.roster.apply('ag-a', 'merge', [m('P1', 'A 1', ['AAAA0001'])], ADMIN);
    expect(back.rows[0]?.notes[0]).toMatch(/blocked and stays so/);
    expect((await w.tag('AAAA0001'))?.status).toBe('blocked');
    expect(await w.blockedAudit()).toHaveLength(1);
  });

  it('a suspended member (active false) keeps their record; their tags are blocked', async () => {
    const w = await world(kind);
    await w.roster.apply('ag-a', 'merge', [m('P1', 'A 1', ['AAAA0001'])], ADMIN);
    const plan = await w.roster.apply('ag-a', 'merge', [{ ...m('P1', 'A 1', ['AAAA0001']), active: false }], ADMIN);
    expect(plan.rows[0]).toMatchObject({ action: 'update', active: false, blockTagUids: ['AAAA0001'] });
    expect((await w.store.get('rosterMembers', memberId('ag-a', 'P1')))?.active).toBe(false);
    expect((await w.tag('AAAA0001'))?.status).toBe('blocked');
  });

  it('one change to an agency roster at a time', async () => {
    const w = await world(kind);
    expect(await w.store.acquireLease('lease:roster:ag-a', 'someone-else', 60_000)).toBe(true);
    await expect(w.roster.apply('ag-a', 'merge', [m('P1', 'A 1', [])], ADMIN)).rejects.toMatchObject({ code: 'conflict' });
    expect(await w.roster.members('ag-a')).toEqual([]);
  });
});
