// The building → organisation cache of the real-time fan-out (issue 7): hits, misses, shared reads,
// invalidation (also of a read already under way), the TTL bound and the size bound.
import { describe, expect, it } from 'vitest';
import { BuildingOrgs } from '../../../src/features/realtime/building-orgs.js';

/** A store of owners that counts its reads; `hold()` makes the next reads wait for `release()`. */
class FakeOwners {
  readonly owners = new Map<string, string>([
    ['bld-1', 'org-a'],
    ['bld-2', 'org-b'],
  ]);
  reads = 0;
  #held: (() => void)[] | undefined;

  lookup = async (id: string): Promise<string | undefined> => {
    this.reads += 1;
    // The owner as it was when the read reached the store; a held answer comes back later.
    const owner = this.owners.get(id);
    if (this.#held) await new Promise<void>((resolve) => this.#held?.push(resolve));
    return owner;
  };

  hold(): void {
    this.#held = [];
  }
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const r of held) r();
  }
}

function setup(o: { ttlMs?: number; maxEntries?: number } = {}) {
  const clock = { now: 1_764_330_000_000 };
  const store = new FakeOwners();
  const cache = new BuildingOrgs({ lookup: store.lookup, now: () => clock.now, ...o });
  return { clock, store, cache };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('BuildingOrgs', () => {
  it('reads a building once, then answers from the cache', async () => {
    const { store, cache } = setup();
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    expect(await cache.orgOf('bld-2')).toBe('org-b');
    expect(store.reads).toBe(2);
    expect(cache.stats).toEqual({ hits: 2, misses: 2 });
  });

  it('shares one read among callers that miss at the same time', async () => {
    const { store, cache } = setup();
    store.hold();
    const answers = Promise.all([cache.orgOf('bld-1'), cache.orgOf('bld-1'), cache.orgOf('bld-1')]);
    await flush();
    store.release();
    expect(await answers).toEqual(['org-a', 'org-a', 'org-a']);
    expect(store.reads).toBe(1);
  });

  it('does not cache an unknown building: it is read again, and seen once created', async () => {
    const { store, cache } = setup();
    expect(await cache.orgOf('bld-new')).toBeUndefined();
    store.owners.set('bld-new', 'org-c');
    expect(await cache.orgOf('bld-new')).toBe('org-c');
    expect(store.reads).toBe(2);
    expect(cache.size).toBe(1);
  });

  it('reads a building again after it was invalidated (its owner changed)', async () => {
    const { store, cache } = setup();
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    store.owners.set('bld-1', 'org-b');
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    cache.invalidate('bld-1');
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(store.reads).toBe(2);
    // Other buildings keep their entries.
    expect(await cache.orgOf('bld-2')).toBe('org-b');
    cache.invalidate('bld-2');
    store.owners.delete('bld-2');
    expect(await cache.orgOf('bld-2')).toBeUndefined();
  });

  it('does not keep a read that was under way when its building was invalidated', async () => {
    const { store, cache } = setup();
    store.hold();
    const before = cache.orgOf('bld-1');
    await flush();
    // The change lands (and is announced) while that read, which saw the old owner, is still out.
    store.owners.set('bld-1', 'org-b');
    cache.invalidate('bld-1');
    store.release();
    // Its callers get what it read; the cache does not keep it.
    expect(await before).toBe('org-a');
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(store.reads).toBe(2);
  });

  it('does not let a caller after an invalidation join a read from before it', async () => {
    const { store, cache } = setup();
    store.hold();
    const before = cache.orgOf('bld-1');
    await flush();
    store.owners.set('bld-1', 'org-b');
    cache.invalidate('bld-1');
    const after = cache.orgOf('bld-1');
    await flush();
    store.release();
    expect(await before).toBe('org-a');
    expect(await after).toBe('org-b');
    expect(store.reads).toBe(2);
  });

  it('does not keep an old read that finishes after a newer read of the same building', async () => {
    // The old read answers org-a, but only after the change and after the newer read is cached.
    const owners = new Map([['bld-1', 'org-a']]);
    let releaseOld: (() => void) | undefined;
    const slow = new BuildingOrgs({
      lookup: async (id) => {
        const owner = owners.get(id);
        if (owner === 'org-a') await new Promise<void>((resolve) => (releaseOld = resolve));
        return owner;
      },
    });
    const old = slow.orgOf('bld-1');
    owners.set('bld-1', 'org-b');
    slow.invalidate('bld-1');
    expect(await slow.orgOf('bld-1')).toBe('org-b');
    releaseOld?.();
    expect(await old).toBe('org-a');
    expect(await slow.orgOf('bld-1')).toBe('org-b');
  });

  it('reads again once the TTL has passed, so a change it was not told of is seen within the TTL', async () => {
    const { store, cache, clock } = setup({ ttlMs: 30_000 });
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    store.owners.set('bld-1', 'org-b'); // changed on another instance; no invalidation here
    clock.now += 29_999;
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    clock.now += 1;
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(store.reads).toBe(2);
    // The TTL runs from the new read.
    clock.now += 29_999;
    expect(await cache.orgOf('bld-1')).toBe('org-b');
    expect(store.reads).toBe(2);
  });

  it('keeps at most maxEntries buildings, dropping the oldest read', async () => {
    const { store, cache } = setup({ maxEntries: 2 });
    store.owners.set('bld-3', 'org-c');
    await cache.orgOf('bld-1');
    await cache.orgOf('bld-2');
    await cache.orgOf('bld-3');
    expect(cache.size).toBe(2);
    expect(store.reads).toBe(3);
    await cache.orgOf('bld-3');
    await cache.orgOf('bld-2');
    expect(store.reads).toBe(3);
    await cache.orgOf('bld-1');
    expect(store.reads).toBe(4);
  });

  it('passes a failed read on to its callers and does not cache it', async () => {
    let fail = true;
    const cache = new BuildingOrgs({
      lookup: (id) => {
        if (fail) return Promise.reject(new Error('store unavailable'));
        return Promise.resolve(id === 'bld-1' ? 'org-a' : undefined);
      },
    });
    await expect(cache.orgOf('bld-1')).rejects.toThrow('store unavailable');
    fail = false;
    expect(await cache.orgOf('bld-1')).toBe('org-a');
    // A lookup that throws instead of rejecting is a rejection too.
    const throwing = new BuildingOrgs({
      lookup: () => {
        throw new Error('boom');
      },
    });
    await expect(throwing.orgOf('bld-1')).rejects.toThrow('boom');
  });
});
