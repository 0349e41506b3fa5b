// The audit-trail part of the StorePort contract (DESIGN §8), run against both stores: the
// compare-and-append that keeps every chain unforked across processes, ids, dedupe, the
// (at, id)-ordered query with its cursors and filters, range, since, checkpoints and trim.
// Each test has a fresh backing store (a temp file or a Redis key prefix of its own).
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_GENESIS, auditHash, type AuditCheckpoint, type AuditEntry, type AuditItem, type AuditType } from '@smart-passage/protocol';
import { EmbeddedStore, StoreUnavailableError, type AuditHead, type AuditPage, type AuditQuery, type StorePort } from '../../src/store/index.js';
import { REDIS_URL, RedisProxy, keysUnder, makeEmbedded, makeRedis, sleep, type Harness } from './helpers.js';

const T0 = 1_764_000_000_000;
const EMPTY: AuditHead = { size: 0, hash: AUDIT_GENESIS, at: 0, trimmed: 0 };

type Spec = Partial<Omit<AuditEntry, 'v' | 'chain' | 'seq'>>;

/** What is hashed: the item without `id` and `hash`. */
function entryOf(item: AuditItem): AuditEntry {
  const { id: _id, hash: _hash, ...entry } = item;
  return entry;
}

/** Items chained on `head`, as the audit log builds them: consecutive seqs, hashes on the head's. */
function build(chain: string, head: Pick<AuditHead, 'size' | 'hash' | 'at'>, specs: readonly Spec[]): AuditItem[] {
  let prev = head.hash;
  let at = head.at;
  return specs.map((spec, i) => {
    const entry: AuditEntry = { v: 1, chain, seq: head.size + i + 1, type: 'door.state', actor: { kind: 'system' }, ...spec, at: Math.max(spec.at ?? T0, at) };
    at = entry.at;
    const hash = auditHash(prev, entry);
    prev = hash;
    return { ...entry, id: '', hash };
  });
}

/** Append specs to a chain on its current head; must succeed. Returns the items with their ids. */
async function append(store: StorePort, chain: string, specs: readonly Spec[], dedupes: readonly (string | undefined)[] = []): Promise<AuditItem[]> {
  const head = await store.auditHead(chain);
  const items = build(chain, head, specs);
  const res = await store.auditAppend(
    chain,
    head,
    items.map((item, i) => (dedupes[i] === undefined ? { item } : { item, dedupe: dedupes[i] })),
  );
  if (res.kind !== 'ok') throw new Error(`append to ${chain}: ${res.kind}`);
  return items.map((item, i) => ({ ...item, id: res.ids[i]! }));
}

/** Every entry of a chain, in pages of 1000. */
async function wholeChain(store: StorePort, chain: string): Promise<AuditItem[]> {
  const out: AuditItem[] = [];
  for (;;) {
    const page = await store.auditRange(chain, (out[out.length - 1]?.seq ?? 0) + 1, 1000);
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

/** Follow `next` to the end; every page is ordered and within its limit. */
async function collect(store: StorePort, q: AuditQuery): Promise<{ items: AuditItem[]; pages: AuditPage[] }> {
  const pages: AuditPage[] = [];
  const items: AuditItem[] = [];
  let after = q.after;
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.auditQuery({ ...q, ...(after ? { after } : {}) });
    expect(page.items.length).toBeLessThanOrEqual(q.limit);
    pages.push(page);
    items.push(...page.items);
    if (!page.next) return { items, pages };
    after = page.next;
  }
  throw new Error('auditQuery never ended');
}

const byAtId = (a: AuditItem, b: AuditItem): number => a.at - b.at || Number(a.id) - Number(b.id);
const ids = (items: readonly AuditItem[]): string[] => items.map((i) => i.id);

/** A small deterministic PRNG (mulberry32), so a failing run can be repeated. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.each([
  ['embedded', makeEmbedded],
  ['redis', () => makeRedis()],
] as const)('StorePort audit contract: %s', (_name, make: () => Promise<Harness>) => {
  let h: Harness;
  let store: StorePort;

  beforeEach(async () => {
    h = await make();
    store = await h.open();
  });
  afterEach(async () => {
    await h.close();
  });

  it('an empty chain has the genesis head and no entries', async () => {
    expect(await store.auditHead('building:b-1')).toEqual(EMPTY);
    expect(await store.auditChains()).toEqual([]);
    expect(await store.auditRange('building:b-1', 1, 10)).toEqual([]);
    expect(await store.auditGet('1')).toBeUndefined();
    expect(await store.auditSince('0', 10)).toEqual([]);
    expect(await store.auditQuery({ limit: 10 })).toEqual({ items: [] });
    expect(await store.auditCheckpoints('building:b-1', { order: 'asc', limit: 10 })).toEqual([]);
    expect(await store.auditTrim('building:b-1', 5)).toBe(0);
  });

  it('appends: global ids in append order across chains, items stored as given, head moves', async () => {
    const a1 = await append(store, 'building:a', [
      { at: T0, type: 'incident.opened', incidentId: 'inc-1', actor: { kind: 'user', id: 'usr-1', name: 'ann' } },
      { at: T0 + 5, type: 'grant.created', grantId: 'g-1', data: { minutes: 30, doors: ['d-1', 'd-2'], nested: { empty: {} } } },
      { at: T0 + 5, type: 'door.pulse.requested', doorId: 'd-1', reason: 'dispatch' },
    ]);
    const b1 = await append(store, 'system', [{ at: T0 + 1, type: 'auth.login', actor: { kind: 'user', id: 'usr-2' } }]);
    const a2 = await append(store, 'building:a', [{ at: T0 + 9, type: 'door.state', controllerId: 'ctl-1', data: {} }]);
    expect(ids([...a1, ...b1, ...a2])).toEqual(['1', '2', '3', '4', '5']);

    for (const item of [...a1, ...b1, ...a2]) expect(await store.auditGet(item.id)).toEqual(item);
    expect(await store.auditGet('6')).toBeUndefined();
    expect(await store.auditGet('not-an-id')).toBeUndefined();

    expect(await store.auditHead('building:a')).toEqual({ size: 4, hash: a2[0]!.hash, at: T0 + 9, trimmed: 0 });
    expect(await store.auditHead('system')).toEqual({ size: 1, hash: b1[0]!.hash, at: T0 + 1, trimmed: 0 });
    expect(await store.auditChains()).toEqual(['building:a', 'system']);

    expect(await store.auditRange('building:a', 1, 10)).toEqual([...a1, ...a2]);
    expect(await store.auditRange('building:a', 2, 2)).toEqual(a1.slice(1, 3));
    expect(await store.auditRange('building:a', -3, 1)).toEqual(a1.slice(0, 1));
    expect(await store.auditRange('building:a', 5, 10)).toEqual([]);
    expect(await store.auditRange('building:none', 1, 10)).toEqual([]);
  });

  it('answers moved with the current head when expected is stale, and writes nothing', async () => {
    const first = await append(store, 'building:a', [{ at: T0 }, { at: T0 + 1 }]);
    const head = await store.auditHead('building:a');
    // A writer that still believes the chain is empty, and one a step behind.
    for (const stale of [EMPTY, { size: 1, hash: first[0]!.hash, at: T0, trimmed: 0 }]) {
      const items = build('building:a', stale, [{ at: T0 + 2 }]);
      expect(await store.auditAppend('building:a', stale, [{ item: items[0]!, dedupe: 'ev-x' }])).toEqual({ kind: 'moved', head });
    }
    // Right size, wrong hash: also moved.
    const forged = { ...head, hash: 'f'.repeat(64) };
    expect(await store.auditAppend('building:a', forged, [{ item: build('building:a', forged, [{ at: T0 + 2 }])[0]! }])).toEqual({ kind: 'moved', head });
    expect(await store.auditHead('building:a')).toEqual(head);
    expect(await wholeChain(store, 'building:a')).toEqual(first);
    // Nothing was taken: not the dedupe key, not an id.
    const next = await append(store, 'building:a', [{ at: T0 + 3 }], ['ev-x']);
    expect(next[0]!.id).toBe('3');
  });

  it('answers duplicate for a taken dedupe key (the first such item, with the holder id) and writes nothing', async () => {
    const [held] = await append(store, 'building:a', [{ at: T0, type: 'access.granted' }], ['ctl-1/boot-1/7']);
    await append(store, 'system', [{ at: T0 }], ['sys-1']);
    const head = await store.auditHead('building:a');
    const items = build('building:a', head, [{ at: T0 + 1 }, { at: T0 + 1 }, { at: T0 + 2 }]);
    const res = await store.auditAppend('building:a', head, [
      { item: items[0]!, dedupe: 'ctl-1/boot-1/8' },
      { item: items[1]! },
      { item: items[2]!, dedupe: 'ctl-1/boot-1/7' },
    ]);
    expect(res).toEqual({ kind: 'duplicate', index: 2, id: held!.id });
    // Keys are global, not per chain.
    const res2 = await store.auditAppend('building:a', head, [{ item: items[0]!, dedupe: 'sys-1' }]);
    expect(res2).toEqual({ kind: 'duplicate', index: 0, id: '2' });
    expect(await store.auditHead('building:a')).toEqual(head);
    expect(await wholeChain(store, 'building:a')).toEqual([held]);
    // The free key of the refused batch was not taken either.
    const ok = await store.auditAppend('building:a', head, [{ item: items[0]!, dedupe: 'ctl-1/boot-1/8' }]);
    expect(ok).toEqual({ kind: 'ok', ids: ['3'] });
  });

  it('rejects batches that break the chain rules, and writes nothing', async () => {
    await append(store, 'building:a', [{ at: T0 + 100 }]);
    const head = await store.auditHead('building:a');
    const good = build('building:a', head, [{ at: T0 + 100 }, { at: T0 + 200 }]);
    const bad: [string, () => ReturnType<typeof store.auditAppend>][] = [
      ['empty batch', () => store.auditAppend('building:a', head, [])],
      ['other chain', () => store.auditAppend('building:a', head, [{ item: { ...good[0]!, chain: 'building:b' } }])],
      ['seq gap', () => store.auditAppend('building:a', head, [{ item: good[0]! }, { item: { ...good[1]!, seq: 4 } }])],
      ['seq repeated', () => store.auditAppend('building:a', head, [{ item: { ...good[0]!, seq: 1 } }])],
      ['before the head', () => store.auditAppend('building:a', head, [{ item: { ...good[0]!, at: T0 + 99 } }])],
      ['back in the batch', () => store.auditAppend('building:a', head, [{ item: { ...good[0]!, at: T0 + 300 } }, { item: good[1]! }])],
      ['fractional at', () => store.auditAppend('building:a', head, [{ item: { ...good[0]!, at: T0 + 100.5 } }])],
      ['negative at', () => store.auditAppend('system', EMPTY, [{ item: { ...build('system', EMPTY, [{}])[0]!, at: -1 } }])],
      ['repeated dedupe', () => store.auditAppend('building:a', head, [{ item: good[0]!, dedupe: 'k' }, { item: good[1]!, dedupe: 'k' }])],
    ];
    for (const [what, attempt] of bad) await expect(attempt(), what).rejects.toThrow(Error);
    expect(await store.auditHead('building:a')).toEqual(head);
    expect(await store.auditHead('system')).toEqual(EMPTY);
    expect((await store.auditSince('0', 100)).map((i) => i.seq)).toEqual([1]);
    expect(await store.auditAppend('building:a', head, [{ item: good[0]!, dedupe: 'k' }, { item: good[1]! }])).toEqual({ kind: 'ok', ids: ['2', '3'] });
  });

  describe('query', () => {
    const CHAINS = Array.from({ length: 20 }, (_, i) => `building:b${String(i).padStart(2, '0')}`);
    const TYPES: AuditType[] = ['access.granted', 'access.denied', 'door.state', 'grant.created'];
    let all: AuditItem[];

    beforeEach(async () => {
      // 300 entries over 20 chains in random small batches; `at` advances slowly, so many
      // entries (of different chains and of one batch) share a millisecond.
      const rand = rng(7);
      all = [];
      for (let k = 0; k < 300; ) {
        const chain = CHAINS[Math.floor(rand() * CHAINS.length)]!;
        const n = 1 + Math.floor(rand() * 4);
        const specs: Spec[] = [];
        for (let j = 0; j < n; j++, k++) {
          specs.push({
            at: T0 + Math.floor(k / 9),
            type: TYPES[k % TYPES.length]!,
            ...(k % 5 === 0 ? { incidentId: 'inc-1' } : k % 5 === 1 ? { incidentId: 'inc-2' } : {}),
          });
        }
        all.push(...(await append(store, chain, specs)));
      }
      all.sort(byAtId);
    });

    const cases: [string, Omit<AuditQuery, 'limit'>, (i: AuditItem) => boolean][] = [
      ['everything', {}, () => true],
      ['one chain', { chains: ['building:b03'] }, (i) => i.chain === 'building:b03'],
      ['three chains', { chains: ['building:b01', 'building:b05', 'building:b07', 'building:b05'] }, (i) => ['building:b01', 'building:b05', 'building:b07'].includes(i.chain)],
      ['17 chains', { chains: CHAINS.slice(2, 19) }, (i) => CHAINS.slice(2, 19).includes(i.chain)],
      ['an unknown chain', { chains: ['building:none'] }, () => false],
      ['from', { from: T0 + 10 }, (i) => i.at >= T0 + 10],
      ['to', { to: T0 + 10 }, (i) => i.at <= T0 + 10],
      ['from and to', { from: T0 + 7, to: T0 + 7 }, (i) => i.at === T0 + 7],
      ['from after to', { from: T0 + 8, to: T0 + 7 }, () => false],
      ['one type', { types: ['access.denied'] }, (i) => i.type === 'access.denied'],
      ['two types', { types: ['access.denied', 'grant.created'] }, (i) => i.type === 'access.denied' || i.type === 'grant.created'],
      ['an incident', { incidentId: 'inc-2' }, (i) => i.incidentId === 'inc-2'],
      [
        'everything at once',
        { chains: ['building:b01', 'building:b02', 'building:b11'], from: T0 + 3, to: T0 + 30, types: ['access.granted', 'door.state'], incidentId: 'inc-1' },
        (i) =>
          ['building:b01', 'building:b02', 'building:b11'].includes(i.chain) &&
          i.at >= T0 + 3 &&
          i.at <= T0 + 30 &&
          (i.type === 'access.granted' || i.type === 'door.state') &&
          i.incidentId === 'inc-1',
      ],
    ];

    it.each(cases)('%s: pages in (at, id) order, following next to the end, at several limits', async (_what, q, match) => {
      const expected = all.filter(match);
      for (const limit of [1, 7, 1000]) {
        const { items } = await collect(store, { ...q, limit });
        expect(ids(items), `limit ${limit}`).toEqual(ids(expected));
      }
      const { items } = await collect(store, { ...q, limit: 13 });
      expect(items).toEqual(expected);
    });

    it.each(cases)('%s, newest first: following next to the end gives exactly the reverse of oldest first, at several limits', async (_what, q, match) => {
      const reversed = all.filter(match).reverse();
      for (const limit of [1, 7, 13, 1000]) {
        const { items: asc } = await collect(store, { ...q, order: 'asc', limit });
        const { items: desc } = await collect(store, { ...q, order: 'desc', limit });
        expect(ids(desc), `limit ${limit}`).toEqual(ids(reversed));
        expect(ids(desc), `limit ${limit}`).toEqual(ids([...asc].reverse()));
      }
      const { items } = await collect(store, { ...q, order: 'desc', limit: 13 });
      expect(items).toEqual(reversed);
    });

    it('matches nothing for an empty chain or type list', async () => {
      expect(await store.auditQuery({ chains: [], limit: 10 })).toEqual({ items: [] });
      expect(await store.auditQuery({ types: [], limit: 10 })).toEqual({ items: [] });
    });

    it('resumes after a cursor, exclusive, also inside a millisecond many entries share', async () => {
      for (const k of [0, 57, 150, 298, 299]) {
        const cursor = { at: all[k]!.at, id: all[k]!.id };
        const { items } = await collect(store, { after: cursor, limit: 11 });
        expect(ids(items)).toEqual(ids(all.slice(k + 1)));
        const { items: some } = await collect(store, { after: cursor, chains: [all[k]!.chain], limit: 3 });
        expect(ids(some)).toEqual(ids(all.slice(k + 1).filter((i) => i.chain === all[k]!.chain)));
      }
      // A cursor need not be an entry: between two ids, and before a `from`.
      const { items } = await collect(store, { after: { at: T0 + 4, id: '0' }, limit: 50 });
      expect(ids(items)).toEqual(ids(all.filter((i) => i.at > T0 + 4 || (i.at === T0 + 4 && Number(i.id) > 0))));
      const { items: later } = await collect(store, { after: { at: T0, id: '1' }, from: T0 + 20, limit: 50 });
      expect(ids(later)).toEqual(ids(all.filter((i) => i.at >= T0 + 20)));
    });

    it('newest first: resumes strictly before a cursor, also inside a millisecond many entries share', async () => {
      for (const k of [0, 1, 57, 150, 299]) {
        const cursor = { at: all[k]!.at, id: all[k]!.id };
        const { items } = await collect(store, { after: cursor, order: 'desc', limit: 11 });
        expect(ids(items)).toEqual(ids(all.slice(0, k).reverse()));
        const { items: some } = await collect(store, { after: cursor, order: 'desc', chains: [all[k]!.chain], limit: 3 });
        expect(ids(some)).toEqual(ids(all.slice(0, k).filter((i) => i.chain === all[k]!.chain).reverse()));
        const three = [all[k]!.chain, 'building:b01', 'building:b19'];
        const { items: merged } = await collect(store, { after: cursor, order: 'desc', chains: three, limit: 4 });
        expect(ids(merged)).toEqual(ids(all.slice(0, k).filter((i) => three.includes(i.chain)).reverse()));
      }
      // A cursor need not be an entry: between two ids, and after a `to`.
      const { items } = await collect(store, { after: { at: T0 + 4, id: '0' }, order: 'desc', limit: 50 });
      expect(ids(items)).toEqual(ids(all.filter((i) => i.at < T0 + 4).reverse()));
      const { items: earlier } = await collect(store, { after: { at: T0 + 1000, id: '1' }, to: T0 + 20, order: 'desc', limit: 50 });
      expect(ids(earlier)).toEqual(ids(all.filter((i) => i.at <= T0 + 20).reverse()));
      // A cursor inside the range narrows it; one before `from` leaves nothing.
      const mid = all[150]!;
      const { items: inside } = await collect(store, { after: { at: mid.at, id: mid.id }, from: T0 + 3, to: T0 + 30, order: 'desc', limit: 6 });
      expect(ids(inside)).toEqual(ids(all.slice(0, 150).filter((i) => i.at >= T0 + 3 && i.at <= T0 + 30).reverse()));
      expect(await store.auditQuery({ after: { at: T0 + 2, id: '1' }, from: T0 + 5, order: 'desc', limit: 10 })).toEqual({ items: [] });
    });

    it('newest first: a full page without filters has next exactly when more follow', async () => {
      const page = await store.auditQuery({ limit: 300, order: 'desc' });
      expect(ids(page.items)).toEqual(ids([...all].reverse()));
      const first = await store.auditQuery({ limit: 299, order: 'desc' });
      expect(first.next).toEqual({ at: all[1]!.at, id: all[1]!.id });
      expect(await store.auditQuery({ limit: 10, order: 'desc', after: first.next! })).toEqual({ items: [all[0]] });
      expect(await store.auditQuery({ limit: 10, order: 'desc', after: { at: all[0]!.at, id: all[0]!.id } })).toEqual({ items: [] });
    });

    it('a full page without filters has next exactly when more follow', async () => {
      const page = await store.auditQuery({ limit: 300 });
      expect(ids(page.items)).toEqual(ids(all));
      const first = await store.auditQuery({ limit: 299 });
      expect(first.next).toEqual({ at: all[298]!.at, id: all[298]!.id });
      expect(await store.auditQuery({ limit: 10, after: first.next! })).toEqual({ items: [all[299]] });
    });

    it('refuses a limit outside 1..1000', async () => {
      await expect(store.auditQuery({ limit: 0 })).rejects.toThrow(RangeError);
      await expect(store.auditQuery({ limit: 1001 })).rejects.toThrow(RangeError);
      await expect(store.auditQuery({ limit: 10, order: 'sideways' as 'asc' })).rejects.toThrow(RangeError);
      await expect(store.auditRange('building:b01', 1, 0)).rejects.toThrow(RangeError);
      await expect(store.auditSince('0', 1001)).rejects.toThrow(RangeError);
    });
  });

  it('a sparse filter over more entries than one window: short pages with next, followed to the end, either order', async () => {
    const expected: AuditItem[] = [];
    const everything: AuditItem[] = [];
    for (let round = 0; round < 12; round++) {
      for (const chain of ['building:a', 'building:b']) {
        const items = await append(
          store,
          chain,
          Array.from({ length: 100 }, (_, j) => ({ at: T0 + round * 100 + j, type: (round * 100 + j) % 450 === 0 ? 'tamper' : 'door.state' }) satisfies Spec),
        );
        expected.push(...items.filter((i) => i.type === 'tamper'));
        everything.push(...items);
      }
    }
    expected.sort(byAtId);
    everything.sort(byAtId);
    expect(expected.length).toBe(6);
    // The time index, a merge of two chains, and more than MERGE_MAX_CHAINS (the time index with the chain filter in JS).
    const many = ['building:a', 'building:b', ...Array.from({ length: 15 }, (_, i) => `building:none-${i}`)];
    for (const q of [
      { types: ['tamper'] },
      { types: ['tamper'], chains: ['building:a', 'building:b'] },
      { types: ['tamper'], chains: many },
      { chains: many },
    ] satisfies Omit<AuditQuery, 'limit'>[]) {
      const want = q.types ? expected : everything;
      const { items, pages } = await collect(store, { ...q, limit: 4 });
      expect(ids(items)).toEqual(ids(want));
      expect(pages.length).toBeGreaterThanOrEqual(2);
      const { items: desc, pages: descPages } = await collect(store, { ...q, order: 'desc', limit: 4 });
      expect(ids(desc)).toEqual(ids([...want].reverse()));
      expect(descPages.length).toBeGreaterThanOrEqual(2);
      if (q.types) expect(desc).toEqual([...expected].reverse());
    }
  });

  it('a filtered merge of chains of uneven density stops where the first chain runs out, either order', async () => {
    // Two entries a millisecond on one chain, one on the other: with a filter each chain gives a
    // window of the same length, which covers half the time on the dense chain.
    const dense: AuditItem[] = [];
    const thin: AuditItem[] = [];
    for (let round = 0; round < 12; round++) {
      dense.push(...(await append(store, 'building:dense', Array.from({ length: 100 }, (_, j) => ({ at: T0 + Math.floor((round * 100 + j) / 2) })))));
      if (round % 2 === 0) {
        thin.push(...(await append(store, 'building:thin', Array.from({ length: 100 }, (_, j) => ({ at: T0 + ((round / 2) * 100 + j) })))));
      }
    }
    const want = [...dense, ...thin].sort(byAtId);
    for (const q of [
      { types: ['door.state'], chains: ['building:dense', 'building:thin'] },
      { types: ['door.state', 'tamper'], chains: ['building:thin', 'building:dense', 'building:none'] },
    ] satisfies Omit<AuditQuery, 'limit'>[]) {
      for (const limit of [50, 1000]) {
        expect(ids((await collect(store, { ...q, limit })).items), `asc ${limit}`).toEqual(ids(want));
        expect(ids((await collect(store, { ...q, order: 'desc', limit })).items), `desc ${limit}`).toEqual(ids([...want].reverse()));
      }
    }
  });

  it('since: entries after an id, in id order, optionally of some chains only', async () => {
    const rand = rng(11);
    const appended: AuditItem[] = [];
    for (let k = 0; k < 60; k++) {
      const chain = ['building:a', 'building:b', 'building:c', 'system'][Math.floor(rand() * 4)]!;
      appended.push(...(await append(store, chain, [{ at: T0 + k }])));
    }
    expect(ids(await store.auditSince('0', 1000))).toEqual(ids(appended));
    expect(await store.auditSince('0', 1000)).toEqual(appended);
    expect(ids(await store.auditSince('17', 5))).toEqual(['18', '19', '20', '21', '22']);
    expect(await store.auditSince('60', 10)).toEqual([]);
    expect(await store.auditSince('99999999999999999999', 10)).toEqual([]);
    expect(await store.auditSince('0', 10, [])).toEqual([]);
    await expect(store.auditSince('x', 10)).rejects.toThrow(RangeError);

    const want = appended.filter((i) => i.chain === 'building:a' || i.chain === 'system');
    const got: AuditItem[] = [];
    for (let after = '0'; ; ) {
      const page = await store.auditSince(after, 4, ['building:a', 'system', 'building:none']);
      got.push(...page);
      if (page.length < 4) break;
      after = page[page.length - 1]!.id;
    }
    expect(got).toEqual(want);
    const mid = want[5]!.id;
    expect(ids(await store.auditSince(mid, 1000, ['system', 'building:a']))).toEqual(ids(want.filter((i) => Number(i.id) > Number(mid))));
  });

  it('checkpoints: keyed by (chain, size), the first one stays; ranges by size, either order', async () => {
    const cp = (chain: string, size: number, sig = 'sig-1'): AuditCheckpoint => ({ v: 1, chain, size, head: 'a'.repeat(64), at: T0 + size, kid: 'audit-1', sig });
    for (const size of [30, 10, 20, 40]) await store.auditPutCheckpoint(cp('building:a', size));
    await store.auditPutCheckpoint(cp('building:a', 20, 'sig-2'));
    await store.auditPutCheckpoint(cp('building:b', 20, 'sig-b'));
    expect(await store.auditCheckpoints('building:a', { order: 'asc', limit: 100 })).toEqual([10, 20, 30, 40].map((s) => cp('building:a', s)));
    expect(await store.auditCheckpoints('building:a', { order: 'desc', limit: 1 })).toEqual([cp('building:a', 40)]);
    expect(await store.auditCheckpoints('building:a', { minSize: 15, maxSize: 30, order: 'asc', limit: 100 })).toEqual([cp('building:a', 20), cp('building:a', 30)]);
    expect(await store.auditCheckpoints('building:a', { maxSize: 29, order: 'desc', limit: 1 })).toEqual([cp('building:a', 20)]);
    expect(await store.auditCheckpoints('building:a', { minSize: 20, order: 'asc', limit: 2 })).toEqual([cp('building:a', 20), cp('building:a', 30)]);
    expect(await store.auditCheckpoints('building:a', { minSize: 41, order: 'asc', limit: 10 })).toEqual([]);
    expect(await store.auditCheckpoints('building:b', { order: 'asc', limit: 10 })).toEqual([cp('building:b', 20, 'sig-b')]);
  });

  it('trim removes a chain prefix with its dedupe keys; head, range, since, query and get follow; checkpoints stay', async () => {
    const a: AuditItem[] = [];
    const b: AuditItem[] = [];
    for (let k = 0; k < 10; k++) {
      a.push(...(await append(store, 'building:a', [{ at: T0 + k }], [`a-${k}`])));
      if (k % 2 === 0) b.push(...(await append(store, 'building:b', [{ at: T0 + k }])));
    }
    const cp: AuditCheckpoint = { v: 1, chain: 'building:a', size: 4, head: a[3]!.hash, at: T0, kid: 'k', sig: 's' };
    await store.auditPutCheckpoint(cp);
    const headBefore = await store.auditHead('building:a');

    expect(await store.auditTrim('building:a', 4)).toBe(4);
    expect(await store.auditHead('building:a')).toEqual({ ...headBefore, trimmed: 4 });
    expect(await store.auditRange('building:a', 1, 100)).toEqual(a.slice(4));
    expect(await store.auditRange('building:a', 6, 2)).toEqual(a.slice(5, 7));
    expect(await store.auditGet(a[0]!.id)).toBeUndefined();
    expect(ids(await store.auditSince('0', 1000))).toEqual(ids([...a.slice(4), ...b].sort((x, y) => Number(x.id) - Number(y.id))));
    expect(ids(await store.auditSince('0', 1000, ['building:a']))).toEqual(ids(a.slice(4)));
    expect(ids((await collect(store, { limit: 3 })).items)).toEqual(ids([...a.slice(4), ...b].sort(byAtId)));
    expect(ids((await collect(store, { chains: ['building:a'], limit: 3 })).items)).toEqual(ids(a.slice(4)));
    expect(ids((await collect(store, { order: 'desc', limit: 3 })).items)).toEqual(ids([...a.slice(4), ...b].sort(byAtId).reverse()));
    expect(ids((await collect(store, { chains: ['building:a', 'building:b'], order: 'desc', limit: 3 })).items)).toEqual(
      ids([...a.slice(4), ...b].sort(byAtId).reverse()),
    );
    expect(await store.auditCheckpoints('building:a', { order: 'asc', limit: 10 })).toEqual([cp]);
    expect(await store.auditTrim('building:a', 3)).toBe(0);
    expect(await store.auditTrim('building:b', 0)).toBe(0);

    // Never beyond the size; the chain goes on from its head afterwards.
    expect(await store.auditTrim('building:a', 1000)).toBe(6);
    expect(await store.auditHead('building:a')).toEqual({ ...headBefore, trimmed: 10 });
    expect(await store.auditRange('building:a', 1, 100)).toEqual([]);
    expect(await store.auditChains()).toEqual(['building:a', 'building:b']);
    // A trimmed entry's dedupe key is free again.
    const more = await append(store, 'building:a', [{ at: T0 + 20 }, { at: T0 + 21 }], ['a-0', undefined]);
    expect(more.map((i) => i.seq)).toEqual([11, 12]);
    expect(await store.auditRange('building:a', 1, 100)).toEqual(more);
    expect(await store.auditRange('building:a', 12, 100)).toEqual(more.slice(1));
    expect(ids(await store.auditSince('0', 1000))).toEqual(ids([...b, ...more]));
    expect(await store.auditTrim('building:a', 11)).toBe(1);
    expect(await store.auditRange('building:a', 1, 100)).toEqual(more.slice(1));
  });

  it('a trim of many entries (beyond one chunk) leaves since and range consistent', async () => {
    for (let k = 0; k < 12; k++) await append(store, 'building:a', Array.from({ length: 100 }, () => ({ at: T0 + k })));
    const [other] = await append(store, 'system', [{ at: T0 + 50 }]);
    expect(await store.auditTrim('building:a', 1150)).toBe(1150);
    const rest = await store.auditSince('0', 1000);
    expect(rest.map((i) => i.seq)).toEqual([...Array.from({ length: 50 }, (_, i) => 1151 + i), 1]);
    expect(rest[rest.length - 1]).toEqual(other);
    expect((await store.auditRange('building:a', 1, 1000)).map((i) => i.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 1151 + i));
  });

  it('never forks a chain: 4 instances × 250 entries, each read head → hash → compare-and-append', async () => {
    const chain = 'building:race';
    const stores = [store, await h.open(), await h.open(), await h.open()];
    const moved = [0, 0, 0, 0];
    await Promise.all(
      stores.map(async (s, w) => {
        for (let written = 0; written < 250; ) {
          const head = await s.auditHead(chain);
          const n = Math.min(250 - written, 1 + ((written + w) % 3));
          const items = build(
            chain,
            head,
            Array.from({ length: n }, (_, j) => ({ at: Date.now(), data: { w, k: written + j } })),
          );
          const res = await s.auditAppend(chain, head, items.map((item, j) => ({ item, dedupe: `w${w}-${written + j}` })));
          if (res.kind === 'ok') written += n;
          else if (res.kind === 'moved') moved[w]!++;
          else throw new Error(`unexpected ${res.kind}`);
        }
      }),
    );
    const entries = await wholeChain(store, chain);
    expect(entries.map((i) => i.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    let prev = AUDIT_GENESIS;
    for (const item of entries) {
      expect(auditHash(prev, entryOf(item))).toBe(item.hash);
      prev = item.hash;
    }
    expect(await store.auditHead(chain)).toMatchObject({ size: 1000, hash: prev, trimmed: 0 });
    expect(new Set(ids(entries)).size).toBe(1000);
    for (let w = 0; w < 4; w++) expect(entries.filter((i) => i.data?.w === w).map((i) => i.data?.k)).toEqual(Array.from({ length: 250 }, (_, k) => k));
    // The writers really raced.
    expect(moved.reduce((x, y) => x + y, 0)).toBeGreaterThan(0);
  });
});

describe('EmbeddedStore audit schema', () => {
  it('brings a schema-1 file forward to schema 3, keeping its documents and indexing tags by uid', async () => {
    const h = await makeEmbedded();
    try {
      const s = await h.open();
      await s.put('incidents', { id: 'inc-1' } as never);
      await s.put('tags', { id: 'tag-1', uid: '04A1B2C3', label: 'x', unitId: 'u-1', status: 'active' });
      await s.stop();
      // What a schema-1 gateway left behind: no audit tables.
      const raw = new Database(h.path);
      for (const t of ['audit_entries', 'audit_heads', 'audit_checkpoints', 'audit_meta']) raw.exec(`DROP TABLE ${t}`);
      raw.prepare("DELETE FROM doc_index WHERE collection = 'tags' AND field = 'uid'").run(); // schema 1 did not index uids
      raw.pragma('user_version = 1');
      raw.close();

      const again = new EmbeddedStore({ path: h.path });
      await again.start();
      try {
        expect(await again.get('incidents', 'inc-1')).toEqual({ id: 'inc-1' });
        expect((await again.list('tags', { where: { field: 'uid', value: '04A1B2C3' } })).map((t) => t.id)).toEqual(['tag-1']);
        const [item] = build('system', EMPTY, [{ at: T0 }]);
        expect(await again.auditAppend('system', EMPTY, [{ item: item! }])).toEqual({ kind: 'ok', ids: ['1'] });
      } finally {
        await again.stop();
      }
      const check = new Database(h.path, { readonly: true });
      expect(check.pragma('user_version', { simple: true })).toBe(3);
      check.close();
    } finally {
      await h.close();
    }
  });
});

describe('RedisStore audit trail', () => {
  it('keeps every audit key under its prefix, and answers StoreUnavailableError while Redis is away', async () => {
    const proxy = RedisProxy.forUrl(REDIS_URL);
    await proxy.listen();
    const h = await makeRedis(proxy.url(REDIS_URL));
    try {
      const s = await h.open();
      await append(s, 'building:a', [{ at: T0 }], ['k-1']);
      await s.auditPutCheckpoint({ v: 1, chain: 'building:a', size: 1, head: 'a'.repeat(64), at: T0, kid: 'k', sig: 's' });
      await s.auditTrim('building:a', 1);
      const keys = await keysUnder(h.prefix);
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((k) => k.startsWith(`${h.prefix}a:`))).toBe(true);

      await proxy.cut();
      await sleep(50);
      const head = { size: 1, hash: 'a'.repeat(64), at: T0 };
      for (const call of [
        () => s.auditHead('building:a'),
        () => s.auditAppend('building:a', head, [{ item: build('building:a', head, [{ at: T0 }])[0]! }]),
        () => s.auditQuery({ limit: 10 }),
        () => s.auditSince('0', 10),
        () => s.auditRange('building:a', 1, 10),
      ]) {
        await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError);
      }
    } finally {
      await h.close();
      await proxy.cut();
    }
  });
});
