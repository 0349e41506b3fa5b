/**
 * The storage port (STYLE: store/): everything the gateway keeps lives behind this interface, so
 * instances stay stateless (DESIGN §2, §11). Two implementations: the embedded store (SQLite on
 * disk, single machine) and Redis (scale-out). One contract test suite runs against both.
 *
 * Every method is atomic on its own; none spans several calls. Where the gateway needs several
 * writes to agree it makes each idempotent and reconciles (DESIGN §4, §10).
 */
import type { AuditCheckpoint, AuditItem } from '@smart-passage/protocol';
import type {
  Agency,
  Building,
  Controller,
  ControllerLive,
  Door,
  Drill,
  DrillSchedule,
  Grant,
  Incident,
  Organisation,
  Tag,
  Unit,
  User,
} from '../domain/types.js';
import type { RosterMember } from '../features/roster/types.js';
import type { CadLink, Integration, OrgWebhook, WebhookDelivery } from '../features/webhooks/types.js';

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
  // Issue 8: CAD integrations and webhooks (features/integrations, features/webhooks).
  integrations: Integration;
  cadLinks: CadLink;
  orgWebhooks: OrgWebhook;
  webhookDeliveries: WebhookDelivery;
  // Issue 8: readiness drills (features/drills).
  drills: Drill;
  drillSchedules: DrillSchedule;
  // Issue 8: roster sync (features/roster).
  rosterMembers: RosterMember;
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
  tags: ['unitId', 'status', 'uid'],
  incidents: ['status'],
  grants: ['incidentId', 'buildingId', 'status', 'unitIds'],
  integrations: ['keyHash'],
  cadLinks: ['integrationId', 'incidentId'],
  orgWebhooks: [],
  webhookDeliveries: ['target', 'state'],
  drills: ['buildingId', 'status'],
  drillSchedules: [],
  rosterMembers: ['agencyId', 'tagUids'],
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

/** Where a chain stands. `trimmed` entries (1..trimmed) were removed by retention (DESIGN §8). */
export interface AuditHead {
  size: number;
  /** Hash of entry `size`; AUDIT_GENESIS when the chain is empty. */
  hash: string;
  /** `at` of entry `size` (0 when empty): the next entry's `at` may not be earlier. */
  at: number;
  trimmed: number;
}

/** One entry to append; `dedupe` makes the append idempotent (a controller event's (ctrl, boot, seq)). */
export interface AuditAppend {
  item: AuditItem;
  dedupe?: string;
}

/**
 * - `ok`: appended; `ids` are the global ids given, in order (the items' own `id` is ignored).
 * - `moved`: the chain's head is not `expected` (another writer was first); nothing written.
 * - `duplicate`: batch[index].dedupe is taken (by the entry `id`); nothing written.
 */
export type AuditAppendResult = { kind: 'ok'; ids: string[] } | { kind: 'moved'; head: AuditHead } | { kind: 'duplicate'; index: number; id: string };

/** Position in the (at, id) order of entries; `id` compares as a number. */
export interface AuditCursor {
  at: number;
  id: string;
}

export interface AuditQuery {
  /** Only these chains; undefined = every chain. An empty array matches nothing. */
  chains?: readonly string[];
  /** ms epoch, inclusive. */
  from?: number;
  to?: number;
  types?: readonly string[];
  incidentId?: string;
  /**
   * Only entries past this position in the page order: after it (asc), strictly before it (desc).
   * Exclusive either way; it need not be an entry's position.
   */
  after?: AuditCursor;
  /**
   * 'asc' (default): oldest first, by (at, id) ascending. 'desc': newest first, by (at, id)
   * descending, and `next` continues backwards. Filters are the same either way: following `next`
   * to the end in 'desc' gives exactly the reverse of 'asc'.
   */
  order?: 'asc' | 'desc';
  /** 1..1000. */
  limit: number;
}

/**
 * A page ordered by (at, id), ascending or descending (AuditQuery.order). A page may hold fewer than
 * `limit` items (filters are applied while scanning a bounded window) yet still have `next`: follow
 * `next` (passed back as `after`, with the same order and filters) until it is absent. `next` is the
 * position of the last item returned, or of the last entry examined, in the page's order.
 */
export interface AuditPage {
  items: AuditItem[];
  next?: AuditCursor;
}

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

  // ── Audit trail (DESIGN §8; features/audit) ──────────────────────────────────────────────────
  auditHead(chain: string): Promise<AuditHead>;
  /**
   * Compare-and-append: append `batch` (consecutive seqs after `expected.size`, hashes already
   * chained on `expected.hash`) only if the chain's head is still `expected`, atomically across
   * every process sharing the store: concurrent writers can never fork a chain.
   */
  auditAppend(chain: string, expected: Pick<AuditHead, 'size' | 'hash'>, batch: readonly AuditAppend[]): Promise<AuditAppendResult>;
  auditGet(id: string): Promise<AuditItem | undefined>;
  auditQuery(q: AuditQuery): Promise<AuditPage>;
  /** Entries of one chain from `fromSeq` on, in seq order, at most `limit` (1..1000). */
  auditRange(chain: string, fromSeq: number, limit: number): Promise<AuditItem[]>;
  /** Entries with id greater than `afterId`, in id order, at most `limit`; optionally only these chains (live-feed resume). */
  auditSince(afterId: string, limit: number, chains?: readonly string[]): Promise<AuditItem[]>;
  /** Every chain that has (or had) entries. */
  auditChains(): Promise<string[]>;
  /** Keep a signed checkpoint; a second one for the same (chain, size) is ignored. */
  auditPutCheckpoint(cp: AuditCheckpoint): Promise<void>;
  /** Checkpoints of a chain with `minSize <= size <= maxSize`, by size (asc or desc), at most `limit`. */
  auditCheckpoints(chain: string, o: { minSize?: number; maxSize?: number; order: 'asc' | 'desc'; limit: number }): Promise<AuditCheckpoint[]>;
  /** Remove entries 1..uptoSeq (and their dedupe keys) and record `trimmed`; returns how many went. */
  auditTrim(chain: string, uptoSeq: number): Promise<number>;

  // ── Rate limits ─────────────────────────────────────────────────────────────────────────────
  /** Count one hit on `key` and return the hits within the last `windowMs`. */
  hit(key: string, windowMs: number, now: number): Promise<number>;
}
