/**
 * Which organisation owns a building, cached for the real-time fan-out (DESIGN §6, §12; issue 7).
 * Every audit entry and checkpoint of a building chain (and every grant and controller delta)
 * goes to that building's owner organisation, and event ingest runs at 5,000 entries/s (DESIGN
 * §12): a store read per entry just to find an owner that almost never changes would be 5,000
 * extra reads a second.
 *
 * Correctness rests on invalidation, bounded by a TTL:
 * - on this instance, the admin routes call `invalidate(id)` after a building is created, changed
 *   or deleted (`AdminDeps.onBuildingChanged`);
 * - on other instances sharing Redis (DESIGN §11) the gateway passes the same id on through the
 *   real-time channel's server-side events, so they drop it too;
 * - `ttlMs` bounds the rest (a server-side event lost while an instance was cut off from Redis):
 *   an entry is re-read at the latest that long after it was read. 30 s by default: long against
 *   the time between two entries of one building even with 10,000 buildings sharing 5,000 entries/s
 *   (2 s), so nearly every entry is a hit; short enough that a lost invalidation sends a moved
 *   building's deltas to its former owner for half a minute at most.
 * A read that was already under way when its building was invalidated is returned to its callers
 * but not kept, so it cannot put the old owner back in the cache.
 *
 * Only owners are cached: an unknown building is read again each time (rare: entries of a deleted
 * building), so creating a building needs no invalidation to be seen.
 */

/** What the cache reads on a miss: the building's owner, or undefined if there is no such building. */
export type OrgLookup = (buildingId: string) => Promise<string | undefined>;

export interface BuildingOrgsOptions {
  lookup: OrgLookup;
  /** How long an owner read from the store is used without reading it again (default 30 s). */
  ttlMs?: number;
  /** At most this many buildings are kept; the oldest read goes first (default 100,000). */
  maxEntries?: number;
  /** ms, monotonic or epoch; tests pin it. */
  now?: () => number;
}

export const DEFAULT_BUILDING_ORG_TTL_MS = 30_000;
const DEFAULT_MAX_ENTRIES = 100_000;

interface Entry {
  orgId: string;
  expires: number;
}

export class BuildingOrgs {
  readonly #lookup: OrgLookup;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  /** Reads under way, shared by every caller that misses meanwhile. */
  readonly #loading = new Map<string, Promise<string | undefined>>();
  /**
   * When each building was last invalidated (a count of invalidations, not a time). A store read
   * begun before its building's last invalidation is not kept. Remembered only while reads are under way: with none, no read can be older than one.
   */
  readonly #invalidated = new Map<string, number>();
  #seq = 0;
  #reading = 0;
  readonly stats = { hits: 0, misses: 0 };

  constructor(o: BuildingOrgsOptions) {
    this.#lookup = o.lookup;
    this.#ttlMs = o.ttlMs ?? DEFAULT_BUILDING_ORG_TTL_MS;
    this.#max = o.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = o.now ?? Date.now;
  }

  /** Buildings cached now (expired ones included until they are next asked for). */
  get size(): number {
    return this.#entries.size;
  }

  /** The owner of `buildingId`, from the cache while it is fresh, else from the store. */
  orgOf(buildingId: string): Promise<string | undefined> {
    const e = this.#entries.get(buildingId);
    if (e !== undefined) {
      if (e.expires > this.#now()) {
        this.stats.hits += 1;
        return Promise.resolve(e.orgId);
      }
      this.#entries.delete(buildingId);
    }
    this.stats.misses += 1;
    const loading = this.#loading.get(buildingId);
    if (loading) return loading;
    const began = this.#seq;
    this.#reading += 1;
    const settle = (): void => {
      if (this.#loading.get(buildingId) === p) this.#loading.delete(buildingId);
      this.#reading -= 1;
      if (this.#reading === 0) this.#invalidated.clear();
    };
    let read: Promise<string | undefined>;
    try {
      read = this.#lookup(buildingId);
    } catch (err) {
      read = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const p = read.then(
      (orgId) => {
        const stale = (this.#invalidated.get(buildingId) ?? 0) > began;
        settle();
        if (orgId !== undefined && !stale) this.#put(buildingId, orgId);
        return orgId;
      },
      (err: unknown) => {
        settle();
        throw err;
      },
    );
    this.#loading.set(buildingId, p);
    return p;
  }

  /** The building was created, changed or deleted (here or on another instance): read it again next time. */
  invalidate(buildingId: string): void {
    this.#entries.delete(buildingId);
    // A caller arriving after this must not join a read that began before the change.
    this.#loading.delete(buildingId);
    this.#seq += 1;
    if (this.#reading > 0) this.#invalidated.set(buildingId, this.#seq);
  }

  #put(buildingId: string, orgId: string): void {
    this.#entries.delete(buildingId);
    if (this.#entries.size >= this.#max) {
      // Map keeps insertion order: the first key is the oldest read.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(buildingId, { orgId, expires: this.#now() + this.#ttlMs });
  }
}
