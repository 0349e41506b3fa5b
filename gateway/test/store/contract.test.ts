// The StorePort contract (STYLE: one suite, every implementation): the embedded SQLite store and
// the Redis store must behave the same, including atomicity across two instances (two gateways
// on one store, DESIGN §11). Each test gets a fresh backing store (a temp file or a Redis key
// prefix of its own) and removes it afterwards; the shared Redis is never flushed.
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Door, Grant, Tag, User } from '../../src/domain/types.js';
import {
  EmbeddedStore,
  RedisStore,
  StoreConflictError,
  StoreUnavailableError,
  createStore,
  type RefreshTokenRecord,
  type StorePort,
} from '../../src/store/index.js';
import { REDIS_URL, RedisProxy, keysUnder, makeEmbedded, makeRedis, memoryLogger, sleep, type Harness } from './helpers.js';

const user = (id: string, username: string, extra: Partial<User> = {}): User => ({
  id,
  username,
  displayName: username,
  role: 'dispatcher',
  passwordHash: 'scrypt$test',
  disabled: false,
  createdAt: 1,
  ...extra,
});
const tag = (id: string, uid: string, unitId = 'unit-1'): Tag => ({ id, uid, label: id, unitId, status: 'active' });
const door = (id: string, extra: Partial<Door> = {}): Door => ({
  id,
  buildingId: 'b-1',
  name: id,
  kind: 'entrance',
  routeOrder: 0,
  controllerId: 'ctl-1',
  ref: id,
  pulseSeconds: 5,
  emergency: true,
  ...extra,
});
const grant = (id: string, unitIds: string[], extra: Partial<Grant> = {}): Grant => ({
  id,
  incidentId: 'inc-1',
  buildingId: 'b-1',
  doorIds: ['d-1'],
  unitIds,
  notBefore: 0,
  notAfter: 1,
  status: 'active',
  createdBy: 'u-1',
  createdAt: 0,
  deliveries: [],
  ...extra,
});
const ids = (docs: { id: string }[]): string[] => docs.map((d) => d.id);
const pad = (n: number): string => String(n).padStart(4, '0');

describe.each([
  ['embedded', makeEmbedded],
  ['redis', () => makeRedis()],
] as const)('StorePort contract: %s', (_name, make: () => Promise<Harness>) => {
  let h: Harness;
  let store: StorePort;

  beforeEach(async () => {
    h = await make();
    store = await h.open();
  });
  afterEach(async () => {
    await h.close();
  });

  it('answers ping', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
  });

  describe('documents', () => {
    it('inserts and gets a copy; a missing id is undefined', async () => {
      const u = user('u-1', 'alice', { orgId: 'org-1' });
      await store.insert('users', u);
      expect(await store.get('users', 'u-1')).toEqual(u);
      expect(await store.get('users', 'nope')).toBeUndefined();
      expect(await store.get('tags', 'u-1')).toBeUndefined(); // collections are separate
    });

    it('refuses a duplicate id', async () => {
      await store.insert('users', user('u-1', 'alice'));
      await expect(store.insert('users', user('u-1', 'bob'))).rejects.toMatchObject({ name: 'StoreConflictError', field: 'id', collection: 'users' });
      expect((await store.get('users', 'u-1'))?.username).toBe('alice');
    });

    it('refuses a taken username and a taken tag uid, on insert and on put', async () => {
      await store.insert('users', user('u-1', 'alice'));
      await store.insert('users', user('u-2', 'bob'));
      await expect(store.insert('users', user('u-3', 'alice'))).rejects.toBeInstanceOf(StoreConflictError);
      await expect(store.insert('users', user('u-3', 'alice'))).rejects.toMatchObject({ field: 'username' });
      expect(await store.get('users', 'u-3')).toBeUndefined();
      // put that would move u-2 onto alice's username
      await expect(store.put('users', user('u-2', 'alice'))).rejects.toMatchObject({ field: 'username' });
      expect((await store.get('users', 'u-2'))?.username).toBe('bob');
      // a new document by put is checked too
      await expect(store.put('users', user('u-4', 'bob'))).rejects.toMatchObject({ field: 'username' });

      await store.insert('tags', tag('t-1', 'AABB01'));
      await expect(store.insert('tags', tag('t-2', 'AABB01'))).rejects.toMatchObject({ name: 'StoreConflictError', collection: 'tags', field: 'uid' });
      await store.insert('tags', tag('t-2', 'AABB02'));
      await expect(store.put('tags', tag('t-2', 'AABB01'))).rejects.toMatchObject({ field: 'uid' });
    });

    it('lets a document keep its own unique value, and frees a value it gives up or takes away', async () => {
      await store.insert('users', user('u-1', 'alice'));
      await store.put('users', user('u-1', 'alice', { displayName: 'Alice A.' })); // same holder: fine
      await store.put('users', user('u-1', 'alice2'));
      await store.insert('users', user('u-2', 'alice')); // freed by the rename
      await expect(store.insert('users', user('u-3', 'alice2'))).rejects.toBeInstanceOf(StoreConflictError);
      expect(await store.delete('users', 'u-1')).toBe(true);
      await store.insert('users', user('u-3', 'alice2')); // freed by the delete
      await store.update('users', 'u-3', (u) => ({ ...u, username: 'carol' }));
      await store.insert('users', user('u-4', 'alice2')); // freed by the update
    });

    it('put creates, then replaces and moves index entries', async () => {
      await store.put('tags', tag('t-1', 'AA01', 'unit-1'));
      expect(ids(await store.list('tags', { where: { field: 'unitId', value: 'unit-1' } }))).toEqual(['t-1']);
      await store.put('tags', { ...tag('t-1', 'AA01', 'unit-2'), status: 'lost' });
      expect(await store.get('tags', 't-1')).toMatchObject({ unitId: 'unit-2', status: 'lost' });
      expect(await store.list('tags', { where: { field: 'unitId', value: 'unit-1' } })).toEqual([]);
      expect(await store.list('tags', { where: { field: 'status', value: 'active' } })).toEqual([]);
      expect(ids(await store.list('tags', { where: { field: 'unitId', value: 'unit-2' } }))).toEqual(['t-1']);
      expect(ids(await store.list('tags', { where: { field: 'status', value: 'lost' } }))).toEqual(['t-1']);
    });

    it('lists by id ascending, with an after cursor and a limit (default 100, at most 1000)', async () => {
      const order = [7, 3, 11, 1, 5];
      for (const n of order) await store.insert('doors', door(`d-${pad(n)}`));
      expect(ids(await store.list('doors'))).toEqual(['d-0001', 'd-0003', 'd-0005', 'd-0007', 'd-0011']);
      expect(ids(await store.list('doors', { limit: 2 }))).toEqual(['d-0001', 'd-0003']);
      expect(ids(await store.list('doors', { after: 'd-0003', limit: 2 }))).toEqual(['d-0005', 'd-0007']);
      expect(ids(await store.list('doors', { after: 'd-0004' }))).toEqual(['d-0005', 'd-0007', 'd-0011']);
      expect(await store.list('doors', { after: 'd-0011' })).toEqual([]);

      await Promise.all(Array.from({ length: 1001 }, (_, i) => store.insert('units', { id: `un-${pad(i)}`, agencyId: 'ag-1', callSign: `RTJ ${i}` })));
      const first = await store.list('units');
      expect(first).toHaveLength(100);
      expect(first[99]?.id).toBe('un-0099');
      const max = await store.list('units', { limit: 5000 });
      expect(max).toHaveLength(1000);
      expect(max[999]?.id).toBe('un-0999');
      expect(ids(await store.list('units', { after: 'un-0999', limit: 5000 }))).toEqual(['un-1000']);
      // paging by cursor visits every document once, in order
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.list('units', { where: { field: 'agencyId', value: 'ag-1' }, limit: 300, ...(after === undefined ? {} : { after }) });
        if (page.length === 0) break;
        seen.push(...ids(page));
        after = page[page.length - 1]?.id;
      }
      expect(seen).toHaveLength(1001);
      expect(seen).toEqual([...seen].sort());
    });

    it('lists by an index, including an array field indexed per element', async () => {
      await store.insert('grants', grant('g-3', ['unit-a', 'unit-b']));
      await store.insert('grants', grant('g-1', ['unit-b']));
      await store.insert('grants', grant('g-2', ['unit-a'], { status: 'expired', incidentId: 'inc-2' }));
      await store.insert('grants', grant('g-4', [], { status: 'revoked' }));
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-a' } }))).toEqual(['g-2', 'g-3']);
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-b' } }))).toEqual(['g-1', 'g-3']);
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-b' }, after: 'g-1' }))).toEqual(['g-3']);
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-a' }, limit: 1 }))).toEqual(['g-2']);
      expect(ids(await store.list('grants', { where: { field: 'status', value: 'active' } }))).toEqual(['g-1', 'g-3']);
      expect(ids(await store.list('grants', { where: { field: 'incidentId', value: 'inc-1' } }))).toEqual(['g-1', 'g-3', 'g-4']);
      expect(await store.list('grants', { where: { field: 'unitIds', value: 'unit-z' } })).toEqual([]);
      // optional fields that are absent are simply not indexed
      await store.insert('users', user('u-1', 'alice', { unitId: 'unit-a' }));
      await store.insert('users', user('u-2', 'bob'));
      expect(ids(await store.list('users', { where: { field: 'unitId', value: 'unit-a' } }))).toEqual(['u-1']);
      expect(ids(await store.list('users', { where: { field: 'role', value: 'dispatcher' } }))).toEqual(['u-1', 'u-2']);
    });

    it('refuses to list by a field that has no index', async () => {
      await expect(store.list('users', { where: { field: 'displayName' as 'role', value: 'alice' } })).rejects.toThrow(/no index/);
    });

    it('update returns the stored result, moves index entries, and leaves a missing id alone', async () => {
      await store.insert('grants', grant('g-1', ['unit-a', 'unit-b']));
      const next = await store.update('grants', 'g-1', (g) => ({ ...g, status: 'revoked', unitIds: ['unit-b', 'unit-c'] }));
      expect(next).toMatchObject({ id: 'g-1', status: 'revoked', unitIds: ['unit-b', 'unit-c'] });
      expect(await store.get('grants', 'g-1')).toEqual(next);
      expect(await store.list('grants', { where: { field: 'status', value: 'active' } })).toEqual([]);
      expect(await store.list('grants', { where: { field: 'unitIds', value: 'unit-a' } })).toEqual([]);
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-c' } }))).toEqual(['g-1']);
      expect(ids(await store.list('grants', { where: { field: 'status', value: 'revoked' } }))).toEqual(['g-1']);

      // undefined from mutate: nothing changes, the current document comes back
      expect(await store.update('grants', 'g-1', () => undefined)).toEqual(next);
      let called = false;
      expect(
        await store.update('grants', 'nope', (g) => {
          called = true;
          return g;
        }),
      ).toBeUndefined();
      expect(called).toBe(false);
      expect(await store.get('grants', 'nope')).toBeUndefined();
    });

    it('update checks unique values, refuses to change the id, and passes mutate errors through', async () => {
      await store.insert('users', user('u-1', 'alice'));
      await store.insert('users', user('u-2', 'bob'));
      await expect(store.update('users', 'u-2', (u) => ({ ...u, username: 'alice' }))).rejects.toMatchObject({ field: 'username' });
      expect((await store.get('users', 'u-2'))?.username).toBe('bob');
      await expect(store.update('users', 'u-2', (u) => ({ ...u, id: 'u-9' }))).rejects.toThrow(/id/);
      expect(await store.get('users', 'u-9')).toBeUndefined();
      await expect(
        store.update('users', 'u-2', () => {
          throw new Error('policy says no');
        }),
      ).rejects.toThrow('policy says no');
      expect((await store.get('users', 'u-2'))?.username).toBe('bob');
    });

    it('update is atomic under contention: 50 concurrent increments from two instances all land', async () => {
      const other = await h.open();
      await store.insert('doors', door('d-1'));
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).update('doors', 'd-1', (d) => ({ ...d, routeOrder: d.routeOrder + 1 }))),
      );
      expect((await store.get('doors', 'd-1'))?.routeOrder).toBe(50);
      // every caller saw a different stored result: none overwrote another's
      expect(new Set(results.map((d) => d?.routeOrder)).size).toBe(50);
    });

    it('delete removes the document and its index entries, and says whether it existed', async () => {
      await store.insert('grants', grant('g-1', ['unit-a']));
      await store.insert('grants', grant('g-2', ['unit-a']));
      expect(await store.delete('grants', 'g-1')).toBe(true);
      expect(await store.delete('grants', 'g-1')).toBe(false);
      expect(await store.get('grants', 'g-1')).toBeUndefined();
      expect(ids(await store.list('grants'))).toEqual(['g-2']);
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-a' } }))).toEqual(['g-2']);
      expect(ids(await store.list('grants', { where: { field: 'status', value: 'active' } }))).toEqual(['g-2']);
      // the id can be used again
      await store.insert('grants', grant('g-1', ['unit-b']));
      expect(ids(await store.list('grants', { where: { field: 'unitIds', value: 'unit-b' } }))).toEqual(['g-1']);
    });
  });

  describe('counters (PROTOCOL §4.4)', () => {
    it('nextSeq is monotonic per controller and jumps above atLeast', async () => {
      expect(await store.nextSeq('ctl-1')).toBe(1);
      expect(await store.nextSeq('ctl-1')).toBe(2);
      expect(await store.nextSeq('ctl-2')).toBe(1);
      expect(await store.nextSeq('ctl-1', 10)).toBe(11); // a birth said it accepted 10
      expect(await store.nextSeq('ctl-1', 5)).toBe(12); // a lower atLeast never goes back
      expect(await store.nextSeq('ctl-3', 1000)).toBe(1001);
    });

    it('bumpDesiredVersion raises by one, above atLeast; desiredVersion reads it', async () => {
      expect(await store.desiredVersion('ctl-1')).toBe(0);
      expect(await store.bumpDesiredVersion('ctl-1')).toBe(1);
      expect(await store.bumpDesiredVersion('ctl-1')).toBe(2);
      expect(await store.bumpDesiredVersion('ctl-1', 40)).toBe(41);
      expect(await store.bumpDesiredVersion('ctl-1', 3)).toBe(42);
      expect(await store.desiredVersion('ctl-1')).toBe(42);
      expect(await store.desiredVersion('ctl-2')).toBe(0);
      // the seq counter and the version are separate
      expect(await store.nextSeq('ctl-1')).toBe(1);
    });

    it('concurrent nextSeq and bumpDesiredVersion from two instances never repeat', async () => {
      const other = await h.open();
      const seqs = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? store : other).nextSeq('ctl-1')));
      expect(new Set(seqs).size).toBe(200);
      expect(Math.max(...seqs)).toBe(200);
      const versions = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? store : other).bumpDesiredVersion('ctl-1', i % 7)));
      expect(new Set(versions).size).toBe(100);
      expect(await other.desiredVersion('ctl-1')).toBe(Math.max(...versions));
    });
  });

  describe('event dedupe (PROTOCOL §7.8)', () => {
    it('classifies new, gap, late and duplicate per (ctrl, boot)', async () => {
      expect(await store.classifyEvent('ctl-1', 'boot-a', 1)).toEqual({ kind: 'new', missing: 0 });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 1)).toEqual({ kind: 'duplicate' });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 2)).toEqual({ kind: 'new', missing: 0 });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 5)).toEqual({ kind: 'new', missing: 2 });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 3)).toEqual({ kind: 'late' });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 3)).toEqual({ kind: 'duplicate' });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 4)).toEqual({ kind: 'late' });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 5)).toEqual({ kind: 'duplicate' });
      // a new boot starts over; another controller is independent
      expect(await store.classifyEvent('ctl-1', 'boot-b', 1)).toEqual({ kind: 'new', missing: 0 });
      expect(await store.classifyEvent('ctl-2', 'boot-a', 3)).toEqual({ kind: 'new', missing: 2 });
      expect(await store.classifyEvent('ctl-1', 'boot-a', 6)).toEqual({ kind: 'new', missing: 0 });
    });

    it('takes each event exactly once when two instances race (shared subscription, DESIGN §11)', async () => {
      const other = await h.open();
      const verdicts = await Promise.all(
        [1, 1, 2, 2, 3, 3, 3, 4].flatMap((seq) => [store.classifyEvent('ctl-1', 'b', seq), other.classifyEvent('ctl-1', 'b', seq)]),
      );
      const taken = verdicts.filter((v) => v.kind !== 'duplicate');
      expect(taken).toHaveLength(4);
    });
  });

  describe('scheduler and leases (DESIGN §4, §11)', () => {
    it('returns due keys earliest first, moves and removes them', async () => {
      await store.scheduleAt('grant:c', 300);
      await store.scheduleAt('grant:a', 100);
      await store.scheduleAt('grant:b', 200);
      await store.scheduleAt('grant:d', 500);
      await store.scheduleAt('grant:e', 200);
      expect(await store.due(250, 10)).toEqual([
        { key: 'grant:a', at: 100 },
        { key: 'grant:b', at: 200 },
        { key: 'grant:e', at: 200 },
      ]);
      expect(await store.due(300, 2)).toEqual([
        { key: 'grant:a', at: 100 },
        { key: 'grant:b', at: 200 },
      ]);
      expect(await store.due(99, 10)).toEqual([]);
      await store.scheduleAt('grant:a', 400); // moved, not duplicated
      await store.unschedule('grant:b');
      await store.unschedule('grant:none');
      expect(await store.due(450, 10)).toEqual([
        { key: 'grant:e', at: 200 },
        { key: 'grant:c', at: 300 },
        { key: 'grant:a', at: 400 },
      ]);
      const big = 1_764_330_000_123;
      await store.scheduleAt('grant:f', big);
      expect(await store.due(big, 10)).toContainEqual({ key: 'grant:f', at: big });
    });

    it('a lease has one holder, who may renew and release it; it expires by itself', async () => {
      const other = await h.open();
      expect(await store.acquireLease('expiry', 'gw-a', 10_000)).toBe(true);
      expect(await other.acquireLease('expiry', 'gw-b', 10_000)).toBe(false);
      expect(await store.acquireLease('expiry', 'gw-a', 10_000)).toBe(true); // renew
      await other.releaseLease('expiry', 'gw-b'); // not the holder: no effect
      expect(await other.acquireLease('expiry', 'gw-b', 10_000)).toBe(false);
      await store.releaseLease('expiry', 'gw-a');
      expect(await other.acquireLease('expiry', 'gw-b', 10_000)).toBe(true);
      expect(await store.acquireLease('expiry', 'gw-a', 10_000)).toBe(false);
      expect(await store.acquireLease('sync:ctl-1', 'gw-a', 10_000)).toBe(true); // names are separate

      expect(await store.acquireLease('short', 'gw-a', 80)).toBe(true);
      expect(await other.acquireLease('short', 'gw-b', 80)).toBe(false);
      await sleep(200);
      expect(await other.acquireLease('short', 'gw-b', 10_000)).toBe(true);
    });

    it('of many instances racing for a free lease exactly one wins', async () => {
      const other = await h.open();
      const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).acquireLease('race', `gw-${i}`, 10_000)));
      expect(wins.filter(Boolean)).toHaveLength(1);
    });
  });

  describe('sessions (DESIGN §7)', () => {
    const rec = (id: string, expiresAt = Date.now() + 60_000): RefreshTokenRecord => ({ id, userId: 'u-1', family: 'fam-1', expiresAt });

    it('a refresh token is taken once', async () => {
      const r = rec('rt-1');
      await store.saveRefreshToken(r);
      expect(await store.consumeRefreshToken('rt-1')).toEqual(r);
      expect(await store.consumeRefreshToken('rt-1')).toBeUndefined();
      expect(await store.consumeRefreshToken('rt-unknown')).toBeUndefined();
    });

    it('of concurrent consumers on two instances exactly one gets the token', async () => {
      const other = await h.open();
      await store.saveRefreshToken(rec('rt-2'));
      const got = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).consumeRefreshToken('rt-2')));
      expect(got.filter((g) => g !== undefined)).toHaveLength(1);
    });

    it('an expired refresh token is gone', async () => {
      await store.saveRefreshToken(rec('rt-old', Date.now() - 1));
      await store.saveRefreshToken(rec('rt-short', Date.now() + 60));
      await sleep(150);
      expect(await store.consumeRefreshToken('rt-old')).toBeUndefined();
      expect(await store.consumeRefreshToken('rt-short')).toBeUndefined();
    });

    it('revokes refresh families', async () => {
      expect(await store.isRefreshFamilyRevoked('fam-1')).toBe(false);
      await store.revokeRefreshFamily('fam-1');
      await store.revokeRefreshFamily('fam-1');
      expect(await store.isRefreshFamilyRevoked('fam-1')).toBe(true);
      expect(await store.isRefreshFamilyRevoked('fam-2')).toBe(false);
    });

    it('revokes access token ids until they would have expired', async () => {
      const now = Date.now();
      await store.revokeAccessToken('jti-1', now + 60_000);
      await store.revokeAccessToken('jti-past', now - 1);
      await store.revokeAccessToken('jti-short', now + 80);
      expect(await store.isAccessTokenRevoked('jti-1')).toBe(true);
      expect(await store.isAccessTokenRevoked('jti-short')).toBe(true);
      expect(await store.isAccessTokenRevoked('jti-past')).toBe(false);
      expect(await store.isAccessTokenRevoked('jti-other')).toBe(false);
      // revoking again with an earlier time never shortens it
      await store.revokeAccessToken('jti-1', now + 50);
      await sleep(200);
      expect(await store.isAccessTokenRevoked('jti-short')).toBe(false);
      expect(await store.isAccessTokenRevoked('jti-1')).toBe(true);
    });
  });

  describe('rate limits', () => {
    it('counts hits within the sliding window, per key', async () => {
      const t = 1_764_330_000_000;
      expect(await store.hit('login:alice', 1000, t)).toBe(1);
      expect(await store.hit('login:alice', 1000, t + 100)).toBe(2);
      expect(await store.hit('login:alice', 1000, t + 999)).toBe(3);
      expect(await store.hit('login:bob', 1000, t + 999)).toBe(1);
      expect(await store.hit('login:alice', 1000, t + 1000)).toBe(3); // the hit at t left the window
      expect(await store.hit('login:alice', 1000, t + 1000)).toBe(4); // same instant counts twice
      expect(await store.hit('login:alice', 1000, t + 2500)).toBe(1);
    });

    it('counts concurrent hits from two instances exactly', async () => {
      const other = await h.open();
      const t = 1_764_330_000_000;
      const counts = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? store : other).hit('api:k', 60_000, t + i)));
      expect(Math.max(...counts)).toBe(40);
      expect(await store.hit('api:k', 60_000, t + 41)).toBe(41);
    });
  });
});

describe('EmbeddedStore', () => {
  it('keeps everything across stop() and start() on the same file (DESIGN §10: no grant lost)', async () => {
    const h = await makeEmbedded();
    try {
      const a = new EmbeddedStore({ path: h.path });
      await a.start();
      await a.insert('grants', grant('g-1', ['unit-a']));
      await a.insert('users', user('u-1', 'alice'));
      expect(await a.nextSeq('ctl-1', 41)).toBe(42);
      await a.bumpDesiredVersion('ctl-1');
      await a.scheduleAt('grant:g-1', 1000);
      await a.classifyEvent('ctl-1', 'boot', 3);
      await a.saveRefreshToken({ id: 'rt-1', userId: 'u-1', family: 'f', expiresAt: Date.now() + 60_000 });
      await a.revokeRefreshFamily('f-old');
      await a.stop();
      await expect(a.get('grants', 'g-1')).rejects.toBeInstanceOf(StoreUnavailableError);

      const b = new EmbeddedStore({ path: h.path });
      await b.start();
      expect(await b.get('grants', 'g-1')).toEqual(grant('g-1', ['unit-a']));
      expect(ids(await b.list('grants', { where: { field: 'unitIds', value: 'unit-a' } }))).toEqual(['g-1']);
      await expect(b.insert('users', user('u-2', 'alice'))).rejects.toBeInstanceOf(StoreConflictError);
      expect(await b.nextSeq('ctl-1')).toBe(43);
      expect(await b.desiredVersion('ctl-1')).toBe(1);
      expect(await b.due(1000, 10)).toEqual([{ key: 'grant:g-1', at: 1000 }]);
      expect(await b.classifyEvent('ctl-1', 'boot', 2)).toEqual({ kind: 'late' });
      expect(await b.consumeRefreshToken('rt-1')).toMatchObject({ userId: 'u-1' });
      expect(await b.isRefreshFamilyRevoked('f-old')).toBe(true);
      await b.stop();

      // WAL is a property of the file, so it can be checked from outside
      const raw = new Database(h.path, { readonly: true });
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      raw.close();
    } finally {
      await h.close();
    }
  });

  it('commits the writes asked for in one turn together (group commit); one that fails is rolled back alone', async () => {
    const h = await makeEmbedded();
    const raw = () => new Database(h.path, { readonly: true });
    const users = (db: Database.Database) => (db.prepare("SELECT count(*) AS n FROM docs WHERE collection = 'users'").get() as { n: number }).n;
    try {
      const a = new EmbeddedStore({ path: h.path });
      await a.start();
      const asked = [a.insert('users', user('u-1', 'alice')), a.insert('users', user('u-2', 'alice')), a.nextSeq('ctl-1'), a.bumpDesiredVersion('ctl-1')];
      const outside = raw();
      expect(users(outside)).toBe(0); // asked for, not yet committed: nothing visible from another connection
      const settled = await Promise.allSettled(asked);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(StoreConflictError);
      expect(settled.slice(2).map((s) => (s as PromiseFulfilledResult<number>).value)).toEqual([1, 1]);
      expect(users(outside)).toBe(1); // settled means committed: the others are stored, the conflict is not
      outside.close();

      // stop() commits what was asked for before it, rather than dropping it
      const late = a.put('users', user('u-3', 'carol'));
      await a.stop();
      await expect(late).resolves.toBeUndefined();
      const after = raw();
      expect(users(after)).toBe(2);
      after.close();
    } finally {
      await h.close();
    }
  });

  it('works in memory, and rejects calls before start with StoreUnavailableError', async () => {
    const s = new EmbeddedStore({ path: ':memory:' });
    await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await s.start();
    await s.insert('agencies', { id: 'a-1', name: 'Fire', kind: 'fire' });
    expect(ids(await s.list('agencies', { where: { field: 'kind', value: 'fire' } }))).toEqual(['a-1']);
    await s.stop();
  });

  it('createStore picks the embedded store when no Redis URL is set', () => {
    expect(createStore({ dataDir: '/tmp/sp-none' }, memoryLogger())).toBeInstanceOf(EmbeddedStore);
    expect(createStore({ dataDir: '/tmp/sp-none', redisUrl: REDIS_URL }, memoryLogger())).toBeInstanceOf(RedisStore);
  });
});

describe('RedisStore', () => {
  it('fails fast with StoreUnavailableError when nothing listens (DESIGN §10)', async () => {
    const s = new RedisStore({ url: 'redis://127.0.0.1:1', prefix: 'sp-test-never:', logger: memoryLogger() });
    const t0 = Date.now();
    await expect(s.start()).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(Date.now() - t0).toBeLessThan(2000);
    await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await s.stop();
  });

  it('answers StoreUnavailableError at once while Redis is away, and recovers without a restart', async () => {
    const proxy = RedisProxy.forUrl(REDIS_URL);
    await proxy.listen();
    const log = memoryLogger();
    const h = await makeRedis(proxy.url(REDIS_URL), log);
    try {
      const s = await h.open();
      await s.insert('agencies', { id: 'a-1', name: 'Fire', kind: 'fire' });

      await proxy.cut();
      await sleep(50);
      for (const call of [() => s.ping(), () => s.get('agencies', 'a-1'), () => s.nextSeq('ctl-1'), () => s.update('agencies', 'a-1', (a) => a)]) {
        const t0 = Date.now();
        await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - t0).toBeLessThan(2000);
      }
      expect(log.lines.some((l) => l.level === 'warn' && /unreachable/.test(l.msg))).toBe(true);

      await proxy.listen(); // same port: Redis is back
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await s.ping();
          break;
        } catch (err) {
          expect(err).toBeInstanceOf(StoreUnavailableError);
          if (Date.now() > deadline) throw err;
          await sleep(100);
        }
      }
      expect(await s.get('agencies', 'a-1')).toMatchObject({ name: 'Fire' });
      expect(log.lines.some((l) => l.level === 'info' && /again/.test(l.msg))).toBe(true);
    } finally {
      await h.close();
      await proxy.cut();
    }
  });

  it('warns at start when Redis persists nothing; its keys live under its prefix and go with it', async () => {
    const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    const cfg = (await admin.config('GET', 'appendonly', 'save')) as string[];
    await admin.quit();
    const settings = new Map<string, string | undefined>();
    for (let i = 0; i + 1 < cfg.length; i += 2) settings.set(cfg[i] ?? '', cfg[i + 1]);
    const persistsNothing = settings.get('appendonly') === 'no' && settings.get('save') === '';

    const log = memoryLogger();
    const h = await makeRedis(REDIS_URL, log);
    try {
      const s = await h.open();
      expect(log.lines.some((l) => l.level === 'warn' && /persists nothing/.test(l.msg))).toBe(persistsNothing);
      await s.insert('grants', grant('g-1', ['unit-a']));
      await s.insert('users', user('u-1', 'alice'));
      await s.nextSeq('ctl-1');
      await s.scheduleAt('k', 1);
      const keys = await keysUnder(h.prefix);
      expect(keys.length).toBeGreaterThan(5);
    } finally {
      await h.close();
    }
    expect(await keysUnder(h.prefix)).toEqual([]);
  });
});
