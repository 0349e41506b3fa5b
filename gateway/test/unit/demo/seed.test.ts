// seedDemo against a Map-backed fake of the StorePort document methods (the contract suite covers
// the real stores): idempotent, hashes only, secrets made only for what is new.
import { describe, expect, it } from 'vitest';
import { seedDemo, type SeedDemoOptions } from '../../../src/demo/seed.js';
import { demoDistrict, DEMO_USERNAMES, type ControllerSecrets } from '../../../src/demo/district.js';
import {
  INDEXES,
  StoreConflictError,
  UNIQUE,
  type CollectionName,
  type Collections,
  type ListOptions,
  type StorePort,
} from '../../../src/store/port.js';

const fieldOf = (doc: object, field: string): unknown => (doc as Record<string, unknown>)[field];

const notUsed = (): never => {
  throw new Error('not used');
};
const rejectNotUsed = (): Promise<never> => Promise.reject(new Error('not used in this test'));

/** Documents in Maps, copied in and out; ids and UNIQUE fields enforced as the port says. */
class MapStore implements StorePort {
  readonly docs = new Map<CollectionName, Map<string, unknown>>();
  inserts = 0;

  private col(c: CollectionName): Map<string, unknown> {
    let m = this.docs.get(c);
    if (m === undefined) this.docs.set(c, (m = new Map<string, unknown>()));
    return m;
  }

  /** The conflict a write of `doc` would cause, if any. */
  private conflict<K extends CollectionName>(c: K, doc: Collections[K]): StoreConflictError | undefined {
    for (const field of (UNIQUE[c] ?? []) as readonly string[]) {
      const value = fieldOf(doc, field);
      for (const [id, other] of this.col(c)) {
        if (id !== doc.id && fieldOf(other as object, field) === value) return new StoreConflictError(c, field);
      }
    }
    return undefined;
  }

  get<K extends CollectionName>(c: K, id: string): Promise<Collections[K] | undefined> {
    const doc = this.col(c).get(id) as Collections[K] | undefined;
    return Promise.resolve(doc === undefined ? undefined : structuredClone(doc));
  }

  list<K extends CollectionName>(c: K, o: ListOptions<K> = {}): Promise<Collections[K][]> {
    const where = o.where;
    if (where !== undefined && !(INDEXES[c] as readonly string[]).includes(where.field)) throw new Error(`${c}.${where.field} not indexed`);
    const out = [...this.col(c).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([id]) => o.after === undefined || id > o.after)
      .map(([, doc]) => doc as Collections[K])
      .filter((doc) => {
        if (where === undefined) return true;
        const v = fieldOf(doc, where.field);
        return Array.isArray(v) ? v.includes(where.value) : v === where.value;
      })
      .slice(0, Math.min(o.limit ?? 100, 1000));
    return Promise.resolve(structuredClone(out));
  }

  insert<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    const conflict = this.col(c).has(doc.id) ? new StoreConflictError(c, 'id') : this.conflict(c, doc);
    if (conflict !== undefined) return Promise.reject(conflict);
    this.col(c).set(doc.id, structuredClone(doc));
    this.inserts += 1;
    return Promise.resolve();
  }

  put<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    const conflict = this.conflict(c, doc);
    if (conflict !== undefined) return Promise.reject(conflict);
    this.col(c).set(doc.id, structuredClone(doc));
    return Promise.resolve();
  }

  async update<K extends CollectionName>(c: K, id: string, mutate: (cur: Collections[K]) => Collections[K] | undefined): Promise<Collections[K] | undefined> {
    const cur = await this.get(c, id);
    if (cur === undefined) return undefined;
    const next = mutate(cur);
    if (next === undefined) return cur;
    await this.put(c, next);
    return structuredClone(next);
  }

  delete(c: CollectionName, id: string): Promise<boolean> {
    return Promise.resolve(this.col(c).delete(id));
  }

  /** Every document, for before/after comparisons. */
  snapshot(): Record<string, unknown[]> {
    const out: Record<string, unknown[]> = {};
    for (const [c, m] of [...this.docs.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) out[c] = [...m.values()];
    return structuredClone(out);
  }

  start = notUsed;
  stop = notUsed;
  ping = notUsed;
  nextSeq = notUsed;
  bumpDesiredVersion = notUsed;
  desiredVersion = notUsed;
  classifyEvent = notUsed;
  scheduleAt = notUsed;
  unschedule = notUsed;
  due = notUsed;
  acquireLease = notUsed;
  releaseLease = notUsed;
  saveRefreshToken = notUsed;
  consumeRefreshToken = notUsed;
  revokeRefreshFamily = notUsed;
  isRefreshFamilyRevoked = notUsed;
  revokeAccessToken = notUsed;
  isAccessTokenRevoked = notUsed;
  hit = notUsed;
  auditHead = rejectNotUsed;
  auditAppend = rejectNotUsed;
  auditGet = rejectNotUsed;
  auditQuery = rejectNotUsed;
  auditRange = rejectNotUsed;
  auditSince = rejectNotUsed;
  auditChains = rejectNotUsed;
  auditPutCheckpoint = rejectNotUsed;
  auditCheckpoints = rejectNotUsed;
  auditTrim = rejectNotUsed;
}

const NOW = 1_780_000_000_000;
const PASSWORDS: Record<string, string> = Object.fromEntries(Object.values(DEMO_USERNAMES).map((u) => [u, `pw-of-${u}-Secret!`]));

function options(over: Partial<SeedDemoOptions> = {}) {
  const calls = { hash: [] as string[], keys: [] as string[] };
  const opts: SeedDemoOptions = {
    passwords: PASSWORDS,
    hash: (pw) => {
      calls.hash.push(pw);
      return Promise.resolve(`scrypt$16384$8$1$c2FsdA$${Buffer.from(pw).toString('base64url').split('').reverse().join('')}`);
    },
    controllerKeys: (id): ControllerSecrets => {
      calls.keys.push(id);
      return { publicKey: `pk-${id}`, controllerKid: `${id}:1`, mqttPasswordHash: `scrypt$mqtt$${id}`, offlineSecret: `os-${id}` };
    },
    now: NOW,
    ...over,
  };
  return { opts, calls };
}

describe('seedDemo', () => {
  it('inserts the whole district, with hashes in place of passwords and keys on controllers', async () => {
    const store = new MapStore();
    const { opts, calls } = options();
    const report = await seedDemo(store, opts);
    const d = demoDistrict({ now: NOW });
    const total = d.organisations.length + d.agencies.length + d.units.length + d.tags.length + d.buildings.length + d.controllers.length + d.doors.length + d.users.length;
    expect(report).toEqual({ inserted: total, existing: 0, conflicts: [], usersWithoutPassword: [] });
    expect(store.inserts).toBe(total);

    expect(await store.list('buildings', { limit: 1000 })).toEqual(d.buildings);
    expect(await store.list('doors', { where: { field: 'buildingId', value: 'bld-01' } })).toHaveLength(5);
    expect(await store.list('tags', { limit: 1000 })).toHaveLength(d.tags.length);

    const users = await store.list('users');
    expect(users.map((u) => u.username).sort()).toEqual(Object.values(DEMO_USERNAMES).sort());
    const everything = JSON.stringify(store.snapshot());
    for (const u of users) {
      expect(u.passwordHash).toMatch(/^scrypt\$/);
      expect(u.passwordHash).not.toContain(PASSWORDS[u.username]);
    }
    for (const pw of Object.values(PASSWORDS)) expect(everything).not.toContain(pw);
    expect(calls.hash.sort()).toEqual(Object.values(PASSWORDS).sort());

    const ctl = await store.get('controllers', 'ctl-sofa-01');
    expect(ctl).toEqual({ id: 'ctl-sofa-01', buildingId: 'bld-01', vendor: 'smart-passage-reference', createdAt: NOW, publicKey: 'pk-ctl-sofa-01', controllerKid: 'ctl-sofa-01:1', mqttPasswordHash: 'scrypt$mqtt$ctl-sofa-01', offlineSecret: 'os-ctl-sofa-01' });
    expect(calls.keys).toEqual(d.controllers.map((c) => c.id));
  });

  it('is idempotent: a second call (even at a later now) changes nothing and makes no secrets', async () => {
    const store = new MapStore();
    const first = await seedDemo(store, options().opts);
    const before = store.snapshot();
    const { opts, calls } = options({ now: NOW + 86_400_000 });
    const second = await seedDemo(store, opts);
    expect(second).toEqual({ inserted: 0, existing: first.inserted, conflicts: [], usersWithoutPassword: [] });
    expect(store.snapshot()).toEqual(before);
    expect(calls).toEqual({ hash: [], keys: [] });
  });

  it('leaves edited documents alone and fills in only what was deleted', async () => {
    const store = new MapStore();
    await seedDemo(store, options().opts);
    await store.update('buildings', 'bld-02', (b) => ({ ...b, policy: { ...b.policy, maxMinutes: 15 } }));
    await store.delete('doors', 'door-03-2');
    const { opts, calls } = options();
    const report = await seedDemo(store, opts);
    expect(report.inserted).toBe(1);
    expect((await store.get('buildings', 'bld-02'))?.policy.maxMinutes).toBe(15);
    expect((await store.get('doors', 'door-03-2'))?.ref).toBe('trapp');
    expect(calls).toEqual({ hash: [], keys: [] });
  });

  it('skips users it has no password for, and reports a taken username instead of failing', async () => {
    const store = new MapStore();
    // Someone made their own `admin` before the demo was seeded.
    await store.insert('users', { id: 'user-mine', username: 'admin', displayName: 'Mine', role: 'admin', passwordHash: 'scrypt$x', disabled: false, createdAt: 1 });
    const withoutOwnerBrf = Object.fromEntries(Object.entries(PASSWORDS).filter(([u]) => u !== DEMO_USERNAMES.ownerBrf));
    const { opts } = options({ passwords: withoutOwnerBrf });
    const report = await seedDemo(store, opts);
    expect(report.conflicts).toEqual(['users/user-admin: username']);
    expect(report.usersWithoutPassword).toEqual([DEMO_USERNAMES.ownerBrf]);
    expect((await store.get('users', 'user-mine'))?.displayName).toBe('Mine');
    expect(await store.get('users', 'user-admin')).toBeUndefined();
    expect(await store.get('users', 'user-owner-brf')).toBeUndefined();
  });

  it('passes on store failures other than conflicts', async () => {
    const store = new MapStore();
    store.insert = () => Promise.reject(new Error('disk full'));
    await expect(seedDemo(store, options().opts)).rejects.toThrow('disk full');
  });
});
