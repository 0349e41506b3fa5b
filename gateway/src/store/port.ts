/**
 * The storage port (STYLE: store/): everything the gateway keeps lives behind this interface, so
 * instances stay stateless (DESIGN §2, §11). Two implementations: the embedded store (SQLite on
 * disk, single machine) and Redis (scale-out). One contract test suite runs against both.
 *
 * Every method is atomic on its own; none spans several calls. Where the gateway needs several
 * writes to agree it makes each idempotent and reconciles (DESIGN §4, §10).
 */
import type {
  Agency,
  Building,
  Controller,
  ControllerEvent,
  ControllerLive,
  Door,
  Grant,
  Incident,
  Organisation,
  Tag,
  Unit,
  User,
} from '../domain/types.js';

export interface Collections {
  organisations: Organisation;
  users: User;
  buildings: Building;
  doors: Door;
  controllers: Controller;
  controllerLive: ControllerLive;
  agencies: Agency;
  units: Unit;
  tags: Tag;
  incidents: Incident;
  grants: Grant;
  controllerEvents: ControllerEvent;
}
export type CollectionName = keyof Collections;

type StringKeys<T> = { [F in keyof T]-?: NonNullable<T[F]> extends string | string[] ? F : never }[keyof T] & string;

/**
 * Fields each collection can be listed by. An array field is indexed by each element
 * (grants by a unit id in `unitIds`).
 */
export const INDEXES: { readonly [K in CollectionName]: readonly StringKeys<Collections[K]>[] } = {
  organisations: ['kind'],
  users: ['username', 'orgId', 'unitId', 'role'],
  buildings: ['orgId'],
  doors: ['buildingId', 'controllerId'],
  controllers: ['buildingId'],
  controllerLive: [],
  agencies: ['kind'],
  units: ['agencyId'],
  tags: ['unitId', 'status'],
  incidents: ['status'],
  grants: ['incidentId', 'buildingId', 'status', 'unitIds'],
  controllerEvents: ['controllerId', 'kind'],
};

/** Fields whose value is unique within the collection (insert/replace refuse a second holder). */
export const UNIQUE: { readonly [K in CollectionName]?: readonly StringKeys<Collections[K]>[] } = {
  users: ['username'],
  tags: ['uid'],
};

export type IndexField<K extends CollectionName> = (typeof INDEXES)[K][number];

export interface ListOptions<K extends CollectionName> {
  where?: { field: IndexField<K>; value: string };
  /** Cursor: return only documents whose id sorts after this one. */
  after?: string;
  /** At most this many (default 100, max 1000). */
  limit?: number;
}

/** Thrown on a duplicate id or a taken unique value; the API maps it to 409. */
export class StoreConflictError extends Error {
  constructor(
    readonly collection: CollectionName,
    readonly field: string,
  ) {
    super(`${collection}: ${field} already taken`);
    this.name = 'StoreConflictError';
  }
}

/** Thrown when the backing store cannot be reached; the API maps it to 503 `unavailable`. */
export class StoreUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`store unavailable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'StoreUnavailableError';
  }
}

export interface RefreshTokenRecord {
  /** The token id (its hash is the key; the token itself is never stored). */
  id: string;
  userId: string;
  /** Every rotation of one login shares a family; reuse of a spent token revokes the family. */
  family: string;
  expiresAt: number;
}

export type EventSeqVerdict = { kind: 'new'; missing: number } | { kind: 'late' } | { kind: 'duplicate' };

export interface StorePort {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves when the store answers (readiness); rejects with StoreUnavailableError otherwise. */
  ping(): Promise<void>;

  // ── Documents ───────────────────────────────────────────────────────────────────────────────
  get<K extends CollectionName>(c: K, id: string): Promise<Collections[K] | undefined>;
  /** Ordered by id ascending. */
  list<K extends CollectionName>(c: K, o?: ListOptions<K>): Promise<Collections[K][]>;
  /** Create; StoreConflictError if the id or a unique value is taken. */
  insert<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void>;
  /**
   * Read-modify-write one document atomically: `mutate` gets the current document (it may run
   * more than once under contention, so it must be pure) and returns the next one, or undefined
   * to leave it as it is. Resolves to the stored result, or undefined when there is no such id.
   */
  update<K extends CollectionName>(c: K, id: string, mutate: (cur: Collections[K]) => Collections[K] | undefined): Promise<Collections[K] | undefined>;
  /** Create or replace (unique values still checked against other documents). */
  put<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void>;
  delete<K extends CollectionName>(c: K, id: string): Promise<boolean>;

  // ── Per-controller counters (PROTOCOL §4.4, §5.8) ──────────────────────────────────────────
  /** The next gw→ctrl seq, above both the stored counter and `atLeast` (a birth's lastSeq). */
  nextSeq(ctrl: string, atLeast?: number): Promise<number>;
  /** Raise the desired version by one, above `atLeast` too; returns the new version. */
  bumpDesiredVersion(ctrl: string, atLeast?: number): Promise<number>;
  desiredVersion(ctrl: string): Promise<number>;

  // ── Event dedupe by (ctrl, boot, seq) (PROTOCOL §7.8; uses classifyEventSeq) ───────────────
  classifyEvent(ctrl: string, boot: string, seq: number): Promise<EventSeqVerdict>;

  // ── Scheduler and leases (DESIGN §4 expiry, §11 leases) ─────────────────────────────────────
  /** Set (or move) a due time for `key`. */
  scheduleAt(key: string, at: number): Promise<void>;
  unschedule(key: string): Promise<void>;
  /** Keys due at or before `now`, earliest first. */
  due(now: number, limit: number): Promise<{ key: string; at: number }[]>;
  /** True when `owner` now holds `name` for `ttlMs` (a holder may renew its own lease). */
  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(name: string, owner: string): Promise<void>;

  // ── Sessions (DESIGN §7) ────────────────────────────────────────────────────────────────────
  saveRefreshToken(r: RefreshTokenRecord): Promise<void>;
  /** Atomically take a refresh token: the first caller gets it, every later one undefined. */
  consumeRefreshToken(id: string): Promise<RefreshTokenRecord | undefined>;
  /** Mark a family spent: tokens of it are refused from now on. */
  revokeRefreshFamily(family: string): Promise<void>;
  isRefreshFamilyRevoked(family: string): Promise<boolean>;
  /** Revoke an access token id until it would have expired anyway. */
  revokeAccessToken(jti: string, until: number): Promise<void>;
  isAccessTokenRevoked(jti: string): Promise<boolean>;

  // ── Rate limits ─────────────────────────────────────────────────────────────────────────────
  /** Count one hit on `key` and return the hits within the last `windowMs`. */
  hit(key: string, windowMs: number, now: number): Promise<number>;
}
