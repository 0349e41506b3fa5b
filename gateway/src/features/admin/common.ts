/**
 * What the administrative resources share (issue 3 "CRUD"; DESIGN §6, §7): their dependencies,
 * the schemas of ids, names and pages, and the scoping and reference checks every module applies
 * the same way.
 */
import { Type, type TArray, type TObject, type TOptional, type TSchema, type TString } from '@sinclair/typebox';
import { newId } from '@smart-passage/protocol';
import type { Building, Grant, Tag } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import type { Principal } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import { isOpen } from '../grants/desired-state.js';
import { StoreConflictError, type CollectionName, type Collections, type IndexField, type StorePort } from '../../store/port.js';
import type { PasswordHasher } from '../auth/passwords.js';
import type { AuditSink } from '../audit/audit-log.js';

export interface AdminDeps {
  store: StorePort;
  /** Needed by the users resource only. */
  hasher?: PasswordHasher;
  /**
   * After `POST /tags/{id}/block` stored the blocked tag (also on a repeated block, so a failed
   * re-sync can be retried by blocking again). The gateway re-syncs the controllers whose active
   * grants carried it (issue 3: "Blocking a tag removes it from every active grant").
   */
  onTagBlocked?: (tag: Tag) => Promise<void>;
  /**
   * After a tag was created, changed (uid, unit, status) or deleted by an admin: any of these can
   * change what a controller must hold (desired-state.ts keeps only active tags of granted units).
   */
  onTagChanged?: (change: { before?: Tag; after?: Tag }) => Promise<void>;
  /**
   * After a building was created, changed (its policy too) or deleted: caches keyed by building
   * drop it (the real-time fan-out's owner cache, issue 7). Not awaited; must not throw.
   */
  onBuildingChanged?: (buildingId: string) => void;
  /**
   * The audit trail (issue 4): `tag.blocked` and `policy.changed`, recorded before the change,
   * awaited (a change whose entry cannot be stored fails). Default: no auditing.
   */
  audit?: AuditSink;
  /** Clock for `createdAt`/`updatedAt`; tests may pin it. */
  now?: () => number;
}

/** Ids: gateway-made (`bld-<ULID>`) or the caller's (`bld-01`); safe in a path and a log line. */
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
export const Id = Type.String({ pattern: ID_PATTERN, maxLength: 64 });
export const IdParams = Type.Object({ id: Id });

// Zero-width, bidi-override and BOM characters: invisible in a UI, so they let one name pose as
// another ("Entré" vs "Entré\u200B"); the validator already refuses control characters and lone
// surrogates (http/validation.ts).
const INVISIBLE = '\\u00AD\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u2069\\uFEFF';

/** Human text on one line: 1..max UTF-16 units, no surrounding spaces, nothing invisible. */
export function Text(max: number, description?: string): TString {
  return Type.String({
    minLength: 1,
    maxLength: max,
    pattern: `^[^\\s${INVISIBLE}](?:[^\\n\\r\\t${INVISIBLE}]*[^\\s${INVISIBLE}])?$`,
    ...(description !== undefined ? { description } : {}),
  });
}

export const LatLng = Type.Object({ lat: Type.Number({ minimum: -90, maximum: 90 }), lng: Type.Number({ minimum: -180, maximum: 180 }) });

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 500;
export const PageQuery = {
  after: Type.Optional(Type.String({ pattern: ID_PATTERN, maxLength: 64, description: 'The `next` of the previous page.' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE, default: DEFAULT_PAGE })),
};

/** `{items, next?}`; `next` is present when there may be more, and goes in `?after=`. */
export function Page<T extends TSchema>(item: T): TObject<{ items: TArray<T>; next: TOptional<TString> }> {
  return Type.Object({ items: Type.Array(item), next: Type.Optional(Type.String()) }, { additionalProperties: false });
}

export interface PageOf<T> {
  items: T[];
  next?: string;
}

/** The most documents one `store.list` call returns (ListOptions.limit). */
const STORE_PAGE = 1000;

/**
 * One page of a collection in id order, optionally by an index value. A page larger than the
 * store's (GET /api/v1/buildings allows MAX_BUILDINGS_PAGE) is read in store pages, one after another.
 */
export async function listPage<K extends CollectionName, T>(
  store: StorePort,
  c: K,
  q: { after?: string | undefined; limit?: number | undefined },
  map: (doc: Collections[K]) => T,
  where?: { field: IndexField<K>; value: string },
): Promise<PageOf<T>> {
  const limit = q.limit ?? DEFAULT_PAGE;
  // One more than the page tells whether there is a next one.
  const rows: Collections[K][] = [];
  let after = q.after;
  while (rows.length <= limit) {
    const want = Math.min(STORE_PAGE, limit + 1 - rows.length);
    const chunk = await store.list(c, { limit: want, ...(after !== undefined ? { after } : {}), ...(where ? { where } : {}) });
    for (const r of chunk) rows.push(r);
    const last = chunk[chunk.length - 1];
    if (chunk.length < want || last === undefined) break;
    after = (last as { id: string }).id;
  }
  if (rows.length <= limit) return { items: rows.map(map) };
  const items = rows.slice(0, limit);
  return { items: items.map(map), next: (items[limit - 1] as { id: string }).id };
}

/** An id for a new document: the caller's, or `<prefix>-<ULID>`. */
export function idFor(prefix: string, given: string | undefined, now: number): string {
  return given ?? `${prefix}-${newId(now)}`;
}

/** Run a write; a taken id or unique value becomes 409 naming the field. */
export async function unique<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof StoreConflictError) throw new AppError('conflict', `${err.field} already taken`, { details: { field: err.field } });
    throw err;
  }
}

/** 400 at `path` when the referenced document does not exist. */
export async function mustExist<K extends CollectionName>(store: StorePort, c: K, id: string, path: string, what: string): Promise<Collections[K]> {
  const doc = await store.get(c, id);
  if (doc === undefined) throw AppError.badRequest(path, `no such ${what}`);
  return doc;
}

/** 409 when any document still points at the one being deleted. */
export async function refuseIfReferenced<K extends CollectionName>(store: StorePort, c: K, where: { field: IndexField<K>; value: string }, message: string): Promise<void> {
  const rows = await store.list(c, { where, limit: 1 });
  if (rows.length > 0) throw AppError.conflict(message);
}

/** Grants not yet ended (pending or active) with an index value. */
export async function liveGrants(store: StorePort, where: { field: IndexField<'grants'>; value: string }): Promise<Grant[]> {
  return (await listAll(store, 'grants', where)).filter(isOpen);
}

/**
 * A building the caller may see (DESIGN §7): every one for admin and dispatcher, its own
 * organisation's for an owner. Another organisation's building is "not found", not "forbidden",
 * so an owner cannot learn which ids exist.
 */
export async function visibleBuilding(store: StorePort, id: string, principal: Principal): Promise<Building> {
  const b = await store.get('buildings', id);
  if (b === undefined || !canSee(principal, b)) throw AppError.notFound('building');
  return b;
}

export function canSee(principal: Principal, b: Building): boolean {
  if (principal.role === 'admin' || principal.role === 'dispatcher') return true;
  return principal.role === 'owner' && principal.orgId !== undefined && b.orgId === principal.orgId;
}

/** Every document of a collection, page by page (for small collections without a fitting index). */
export async function scanAll<K extends CollectionName>(store: StorePort, c: K): Promise<Collections[K][]> {
  const out: Collections[K][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.list(c, { limit: 500, ...(after !== undefined ? { after } : {}) });
    out.push(...page);
    if (page.length < 500) return out;
    after = (page[page.length - 1] as { id: string }).id;
  }
}

/** The body of a PATCH: every field optional, at least one given. */
export const PATCH_OPTIONS = { minProperties: 1 } as const;

export function clockOf(deps: AdminDeps): () => number {
  return deps.now ?? Date.now;
}
