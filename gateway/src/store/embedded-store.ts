/**
 * The embedded store: one SQLite file (better-sqlite3) for a single-machine gateway (DESIGN §2:
 * no SP_REDIS_URL → an embedded, durable store). better-sqlite3 is synchronous, so every method
 * runs to completion before it returns and is atomic within this process; writes that read first
 * run in IMMEDIATE transactions so a second process on the same file cannot interleave either.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { AUDIT_GENESIS, classifyEventSeq, nextSeq, type AuditCheckpoint, type AuditItem, type EventSeqState } from '@smart-passage/protocol';
import {
  INDEXES,
  StoreConflictError,
  StoreUnavailableError,
  UNIQUE,
  type AuditAppend,
  type AuditAppendResult,
  type AuditHead,
  type AuditPage,
  type AuditQuery,
  type CollectionName,
  type Collections,
  type EventSeqVerdict,
  type ListOptions,
  type RefreshTokenRecord,
  type StorePort,
} from './port.js';
import { DECIMAL_ID, checkAuditBatch, checkLimit, checkCursor, checkFromSeq, checkAfterId, checkOrder } from './audit-checks.js';

export interface EmbeddedStoreOptions {
  /** The database file (`<dataDir>/store.sqlite`), or ':memory:' for tests. */
  path: string;
}

/** Bumped when the schema changes; `migrate()` brings an older file forward (MIGRATIONS). */
const SCHEMA_VERSION = 3;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS docs (
  collection TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (collection, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS doc_index (
  collection TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (collection, field, value, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_index_by_id ON doc_index (collection, id);
CREATE TABLE IF NOT EXISTS doc_unique (
  collection TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (collection, field, value)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_unique_by_id ON doc_unique (collection, id);
CREATE TABLE IF NOT EXISTS counters (
  ctrl TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
  PRIMARY KEY (ctrl, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_seq (
  ctrl TEXT NOT NULL, boot TEXT NOT NULL, state TEXT NOT NULL,
  PRIMARY KEY (ctrl, boot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedule (key TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedule_by_at ON schedule (at, key);
CREATE TABLE IF NOT EXISTS leases (
  name TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refresh_tokens (
  id TEXT PRIMARY KEY NOT NULL, json TEXT NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE TABLE IF NOT EXISTS revoked_families (family TEXT PRIMARY KEY NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revoked_jtis (jti TEXT PRIMARY KEY NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS revoked_jtis_by_until ON revoked_jtis (until);
CREATE TABLE IF NOT EXISTS rate_hits (key TEXT NOT NULL, at INTEGER NOT NULL, expires INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rate_hits_by_key ON rate_hits (key, at);
CREATE INDEX IF NOT EXISTS rate_hits_by_expiry ON rate_hits (expires);
`;

/**
 * The audit trail (DESIGN §8), schema 2. `id` is the global id, given by the `last_id` counter in
 * audit_meta rather than by the rowid, so an id is never reused even after a trim removed the
 * newest rows. `json` is the item without its `id` (the column holds it). The indexes serve, in
 * order: the (at, id) order of every query, one chain's range by seq, one chain in (at, id)
 * order, one incident in (at, id) order; `dedupe` is UNIQUE (NULLs do not collide).
 */
const AUDIT_SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_entries (
  id INTEGER PRIMARY KEY, chain TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
  type TEXT NOT NULL, incident_id TEXT, dedupe TEXT UNIQUE, json TEXT NOT NULL,
  UNIQUE (chain, seq));
CREATE INDEX IF NOT EXISTS audit_entries_by_at ON audit_entries (at, id);
CREATE INDEX IF NOT EXISTS audit_entries_by_chain_at ON audit_entries (chain, at, id);
CREATE INDEX IF NOT EXISTS audit_entries_by_incident ON audit_entries (incident_id, at, id) WHERE incident_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit_heads (
  chain TEXT PRIMARY KEY NOT NULL, size INTEGER NOT NULL, hash TEXT NOT NULL, at INTEGER NOT NULL,
  trimmed INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  chain TEXT NOT NULL, size INTEGER NOT NULL, json TEXT NOT NULL,
  PRIMARY KEY (chain, size)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_meta (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
`;

/**
 * What each schema version adds to the one before (SCHEMA is version 1). Every statement is
 * `IF NOT EXISTS`, so a step that was half applied, or a new file, runs them again harmlessly.
 */
const MIGRATIONS: readonly { version: number; sql: string }[] = [
  { version: 2, sql: AUDIT_SCHEMA },
  // Tags became listable by uid (port INDEXES): index the ones stored before.
  {
    version: 3,
    sql: `INSERT OR IGNORE INTO doc_index (collection, field, value, id)
      SELECT 'tags', 'uid', json_extract(json, '$.uid'), id FROM docs WHERE collection = 'tags' AND json_extract(json, '$.uid') IS NOT NULL;`,
  },
];

type Doc = { id: string } & Record<string, unknown>;

/** The values a document holds in `field`: one per element for an array field (port INDEXES). */
function fieldValues(doc: Doc, field: string): string[] {
  const v = doc[field];
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return [...new Set(v.filter((e): e is string => typeof e === 'string'))];
  return [];
}

/** Default 100, at most 1000 (port ListOptions). */
function listLimit(limit: number | undefined): number {
  return Math.min(Math.floor(limit ?? 100), 1000);
}

function checkDoc(c: CollectionName, doc: { id: unknown }): asserts doc is Doc {
  if (typeof doc.id !== 'string' || doc.id === '') throw new Error(`${c}: a document needs a non-empty string id`);
}

/** SQLite result codes that mean the file cannot serve now (locked, disk full, I/O), not a bug. */
const UNAVAILABLE_CODE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOMEM)/;

/** Translate at the boundary (STYLE): such failures become StoreUnavailableError (503, DESIGN §10). */
function storeError(err: unknown): Error {
  if (err instanceof Error && err.name === 'SqliteError' && UNAVAILABLE_CODE.test(String((err as Error & { code?: unknown }).code))) {
    return new StoreUnavailableError(err);
  }
  return err instanceof Error ? err : new Error(String(err));
}

// ── Audit helpers (the checks both stores share are in audit-checks.ts) ─────

/** `at` may not go back from the stored head (port AuditHead.at). */
function checkAuditAt(chain: string, head: AuditHead, batch: readonly AuditAppend[]): void {
  if (batch[0]!.item.at < head.at) throw new Error(`audit append to ${chain}: at ${batch[0]!.item.at} is before the head's ${head.at}`);
}

/** The stored form: the item without its `id` (a column holds it). */
function storedJson(item: AuditItem): string {
  const { id: _id, ...rest } = item;
  return JSON.stringify(rest);
}

interface EntryRow {
  id: number;
  json: string;
}

function itemOf(row: EntryRow): AuditItem {
  return { ...(JSON.parse(row.json) as Omit<AuditItem, 'id'>), id: String(row.id) };
}

/** A write waiting for its group commit (EmbeddedStore #commit). */
interface PendingWrite {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}
type WriteResult = { ok: true; value: unknown } | { ok: false; err: unknown };

export class EmbeddedStore implements StorePort {
  #db: Database.Database | undefined;

  constructor(private readonly options: EmbeddedStoreOptions) {}

  start(): Promise<void> {
    if (this.#db) return Promise.resolve();
    let db: Database.Database | undefined;
    try {
      if (this.options.path !== ':memory:') mkdirSync(dirname(this.options.path), { recursive: true });
      db = new Database(this.options.path);
      // Password hashes and PINs live here: owner-only, before the WAL (which copies the mode) exists.
      if (this.options.path !== ':memory:') chmodSync(this.options.path, 0o600);
      // DESIGN §10 "no grant lost": WAL for concurrent readers, FULL so a committed write
      // survives a power cut, not only a process crash.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      this.#migrate(db);
      this.#db = db;
      return Promise.resolve();
    } catch (err) {
      db?.close();
      return Promise.reject(storeError(err));
    }
  }

  stop(): Promise<void> {
    this.#flush(); // what was asked for before stop() is committed (or rejected), not dropped
    this.#group = undefined;
    this.#stmts.clear();
    this.#db?.close();
    this.#db = undefined;
    return Promise.resolve();
  }

  ping(): Promise<void> {
    return this.#run(() => {
      this.#sql('SELECT 1').get();
    });
  }

  #migrate(db: Database.Database): void {
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) throw new Error(`store.sqlite has schema ${version}, newer than this gateway (${SCHEMA_VERSION})`);
    db.transaction(() => {
      db.exec(SCHEMA);
      for (const step of MIGRATIONS) if (step.version > version) db.exec(step.sql);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  }

  /** Prepared statements, kept per connection: the hot paths (events, hits) run thousands a second (DESIGN §12). */
  #stmts = new Map<string, Database.Statement>();

  #sql(sql: string): Database.Statement {
    let stmt = this.#stmts.get(sql);
    if (!stmt) {
      stmt = this.#open().prepare(sql);
      this.#stmts.set(sql, stmt);
    }
    return stmt;
  }

  #open(): Database.Database {
    if (!this.#db) throw new StoreUnavailableError('embedded store is not started');
    return this.#db;
  }

  /** Run synchronous work (a read) and hand back a promise; errors reject (never throw synchronously). */
  #run<T>(work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(storeError(err));
    }
  }

  /** Writes waiting for the next group commit, in call order. */
  #queue: PendingWrite[] = [];
  #flushing = false;

  /**
   * A write, committed with the others asked for in the same turn of the event loop (group
   * commit): one transaction, so one fsync (synchronous = FULL), for all of them instead of one
   * each. With 20 grants in flight or a fan-out to many controllers the fsyncs were most of a
   * write's cost (issue 7: 0.3–0.9 ms each here, better-sqlite3 blocking the loop meanwhile).
   * Each write runs in a savepoint of its own — so a write's work needs no transaction of its own
   * to be atomic — and one that throws (a conflict, say) is rolled back alone and only its promise
   * rejects; the promises settle only after the commit, so what a caller awaited is durable. Writes
   * run in call order; a read asked for before an awaited write settles may not see it yet
   * (callers await their writes).
   */
  #commit<T>(work: () => T): Promise<T> {
    if (!this.#db) return Promise.reject(new StoreUnavailableError('embedded store is not started'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        // After this turn's I/O callbacks: what they all asked for is committed together. While a
        // commit waits for its fsync, the next turn's I/O piles up, so the groups grow with the load.
        setImmediate(() => this.#flush());
      }
    });
  }

  #group: Database.Transaction<(writes: PendingWrite[]) => WriteResult[]> | undefined;

  /** One transaction running each write in a savepoint of its own, made once per connection. */
  #groupCommit(db: Database.Database): Database.Transaction<(writes: PendingWrite[]) => WriteResult[]> {
    const savepoint = db.transaction((work: () => unknown) => work());
    return db.transaction((writes: PendingWrite[]) =>
      writes.map((w): WriteResult => {
        try {
          return { ok: true, value: savepoint(w.work) };
        } catch (err) {
          return { ok: false, err };
        }
      }),
    );
  }

  /** Commit every queued write in one transaction (see #commit). */
  #flush(): void {
    this.#flushing = false;
    const writes = this.#queue.splice(0);
    if (writes.length === 0) return;
    let results: WriteResult[];
    try {
      this.#group ??= this.#groupCommit(this.#open());
      results = this.#group.immediate(writes);
    } catch (err) {
      // The commit itself failed: nothing of the group is stored.
      for (const w of writes) w.reject(storeError(err));
      return;
    }
    writes.forEach((w, i) => {
      const r = results[i];
      if (r?.ok === true) w.resolve(r.value);
      else w.reject(storeError(r?.err));
    });
  }

  // ── Documents ─────────────────────────────────────────────────────────────────────────────

  #read<K extends CollectionName>(c: K, id: string): Collections[K] | undefined {
    const row = this.#sql('SELECT json FROM docs WHERE collection = ? AND id = ?').get(c, id) as { json: string } | undefined;
    return row ? (JSON.parse(row.json) as Collections[K]) : undefined;
  }

  /**
   * Write (or with `doc` undefined, remove) one document with its index and unique rows. Call
   * inside a transaction: the unique check and the writes must see the same state.
   */
  #write(c: CollectionName, id: string, doc: Doc | undefined): void {
    if (doc) {
      for (const field of UNIQUE[c] ?? []) {
        for (const value of fieldValues(doc, field)) {
          const holder = this.#sql('SELECT id FROM doc_unique WHERE collection = ? AND field = ? AND value = ?').get(c, field, value) as
            | { id: string }
            | undefined;
          if (holder && holder.id !== id) throw new StoreConflictError(c, field);
        }
      }
    }
    this.#sql('DELETE FROM doc_index WHERE collection = ? AND id = ?').run(c, id);
    this.#sql('DELETE FROM doc_unique WHERE collection = ? AND id = ?').run(c, id);
    if (!doc) {
      this.#sql('DELETE FROM docs WHERE collection = ? AND id = ?').run(c, id);
      return;
    }
    this.#sql('INSERT INTO docs (collection, id, json) VALUES (?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET json = excluded.json').run(
      c,
      id,
      JSON.stringify(doc),
    );
    const addIndex = this.#sql('INSERT INTO doc_index (collection, field, value, id) VALUES (?, ?, ?, ?)');
    for (const field of INDEXES[c]) for (const value of fieldValues(doc, field)) addIndex.run(c, field, value, id);
    const addUnique = this.#sql('INSERT INTO doc_unique (collection, field, value, id) VALUES (?, ?, ?, ?)');
    for (const field of UNIQUE[c] ?? []) for (const value of fieldValues(doc, field)) addUnique.run(c, field, value, id);
  }

  get<K extends CollectionName>(c: K, id: string): Promise<Collections[K] | undefined> {
    return this.#run(() => this.#read(c, id));
  }

  list<K extends CollectionName>(c: K, o: ListOptions<K> = {}): Promise<Collections[K][]> {
    return this.#run(() => {
      const limit = listLimit(o.limit);
      if (limit <= 0) return [];
      const after = o.after ?? '';
      let rows: { json: string }[];
      if (o.where) {
        if (!(INDEXES[c] as readonly string[]).includes(o.where.field)) throw new Error(`${c} has no index on ${o.where.field}`);
        rows = this.#sql(
          `SELECT d.json FROM doc_index i JOIN docs d ON d.collection = i.collection AND d.id = i.id
           WHERE i.collection = ? AND i.field = ? AND i.value = ? AND i.id > ? ORDER BY i.id LIMIT ?`,
        ).all(c, o.where.field, o.where.value, after, limit) as { json: string }[];
      } else {
        rows = this.#sql('SELECT json FROM docs WHERE collection = ? AND id > ? ORDER BY id LIMIT ?').all(c, after, limit) as { json: string }[];
      }
      return rows.map((r) => JSON.parse(r.json) as Collections[K]);
    });
  }

  insert<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    return this.#commit(() => {
      checkDoc(c, doc);
      if (this.#read(c, doc.id)) throw new StoreConflictError(c, 'id');
      this.#write(c, doc.id, doc);
    });
  }

  update<K extends CollectionName>(c: K, id: string, mutate: (cur: Collections[K]) => Collections[K] | undefined): Promise<Collections[K] | undefined> {
    return this.#commit((): Collections[K] | undefined => {
      const cur = this.#read(c, id);
      if (!cur) return undefined;
      const next = mutate(cur);
      if (next === undefined) return this.#read(c, id);
      checkDoc(c, next);
      if (next.id !== id) throw new Error(`${c}: update may not change a document's id`);
      this.#write(c, id, next);
      return JSON.parse(JSON.stringify(next)) as Collections[K];
    });
  }

  put<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    return this.#commit(() => {
      checkDoc(c, doc);
      this.#write(c, doc.id, doc);
    });
  }

  delete<K extends CollectionName>(c: K, id: string): Promise<boolean> {
    return this.#commit(() => {
      if (!this.#read(c, id)) return false;
      this.#write(c, id, undefined);
      return true;
    });
  }

  // ── Counters (PROTOCOL §4.4, §5.8) ────────────────────────────────────────────────────────

  #bump(ctrl: string, name: 'seq' | 'desired', atLeast: number | undefined): number {
    // One statement, so atomic on its own: max(stored, atLeast) + 1 (protocol nextSeq).
    const row = this.#sql(
      `INSERT INTO counters (ctrl, name, value) VALUES (@ctrl, @name, @first)
       ON CONFLICT (ctrl, name) DO UPDATE SET value = max(value, @atLeast) + 1 RETURNING value`,
    ).get({ ctrl, name, first: nextSeq(0, atLeast), atLeast: atLeast ?? 0 }) as { value: number };
    return row.value;
  }

  nextSeq(ctrl: string, atLeast?: number): Promise<number> {
    return this.#commit(() => this.#bump(ctrl, 'seq', atLeast));
  }

  bumpDesiredVersion(ctrl: string, atLeast?: number): Promise<number> {
    return this.#commit(() => this.#bump(ctrl, 'desired', atLeast));
  }

  desiredVersion(ctrl: string): Promise<number> {
    return this.#run(() => {
      const row = this.#sql("SELECT value FROM counters WHERE ctrl = ? AND name = 'desired'").get(ctrl) as { value: number } | undefined;
      return row?.value ?? 0;
    });
  }

  // ── Event dedupe (PROTOCOL §7.8, DESIGN §8) ───────────────────────────────────────────────

  classifyEvent(ctrl: string, boot: string, seq: number): Promise<EventSeqVerdict> {
    return this.#commit((): EventSeqVerdict => {
      const row = this.#sql('SELECT state FROM event_seq WHERE ctrl = ? AND boot = ?').get(ctrl, boot) as { state: string } | undefined;
      const r = classifyEventSeq(row ? (JSON.parse(row.state) as EventSeqState) : undefined, seq);
      if (r.kind === 'duplicate') return { kind: 'duplicate' };
      this.#sql('INSERT INTO event_seq (ctrl, boot, state) VALUES (?, ?, ?) ON CONFLICT (ctrl, boot) DO UPDATE SET state = excluded.state').run(
        ctrl,
        boot,
        JSON.stringify(r.state),
      );
      return r.kind === 'new' ? { kind: 'new', missing: r.missing } : { kind: 'late' };
    });
  }

  // ── Scheduler and leases (DESIGN §4, §11) ─────────────────────────────────────────────────

  scheduleAt(key: string, at: number): Promise<void> {
    return this.#commit(() => {
      this.#sql('INSERT INTO schedule (key, at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET at = excluded.at').run(key, at);
    });
  }

  unschedule(key: string): Promise<void> {
    return this.#commit(() => {
      this.#sql('DELETE FROM schedule WHERE key = ?').run(key);
    });
  }

  due(now: number, limit: number): Promise<{ key: string; at: number }[]> {
    return this.#run(() => {
      if (limit <= 0) return [];
      return this.#sql('SELECT key, at FROM schedule WHERE at <= ? ORDER BY at, key LIMIT ?').all(now, Math.floor(limit)) as {
        key: string;
        at: number;
      }[];
    });
  }

  acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return this.#commit(() => {
      const now = Date.now();
      // A free, expired or own lease is (re)taken in one statement; someone else's live lease is not.
      const r = this.#sql(
        `INSERT INTO leases (name, owner, until) VALUES (@name, @owner, @until)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
         WHERE leases.owner = excluded.owner OR leases.until <= @now`,
      ).run({ name, owner, until: now + ttlMs, now });
      return r.changes === 1;
    });
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return this.#commit(() => {
      this.#sql('DELETE FROM leases WHERE name = ? AND owner = ?').run(name, owner);
    });
  }

  // ── Sessions (DESIGN §7) ──────────────────────────────────────────────────────────────────

  saveRefreshToken(r: RefreshTokenRecord): Promise<void> {
    return this.#commit(() => {
      this.#sql('DELETE FROM refresh_tokens WHERE expires_at <= ?').run(Date.now());
      this.#sql(
        'INSERT INTO refresh_tokens (id, json, expires_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json, expires_at = excluded.expires_at',
      ).run(r.id, JSON.stringify(r), r.expiresAt);
    });
  }

  consumeRefreshToken(id: string): Promise<RefreshTokenRecord | undefined> {
    return this.#commit(() => {
      // DELETE … RETURNING takes the row in one statement: only the first caller gets it.
      const row = this.#sql('DELETE FROM refresh_tokens WHERE id = ? RETURNING json, expires_at').get(id) as
        | { json: string; expires_at: number }
        | undefined;
      // An expired token counts as gone, as it is in Redis (where it expires with its key).
      if (!row || row.expires_at <= Date.now()) return undefined;
      return JSON.parse(row.json) as RefreshTokenRecord;
    });
  }

  revokeRefreshFamily(family: string): Promise<void> {
    return this.#commit(() => {
      this.#sql('INSERT INTO revoked_families (family, at) VALUES (?, ?) ON CONFLICT (family) DO NOTHING').run(family, Date.now());
    });
  }

  isRefreshFamilyRevoked(family: string): Promise<boolean> {
    return this.#run(() => this.#sql('SELECT 1 FROM revoked_families WHERE family = ?').get(family) !== undefined);
  }

  revokeAccessToken(jti: string, until: number): Promise<void> {
    return this.#commit(() => {
      this.#sql('DELETE FROM revoked_jtis WHERE until <= ?').run(Date.now());
      this.#sql('INSERT INTO revoked_jtis (jti, until) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE SET until = max(until, excluded.until)').run(jti, until);
    });
  }

  isAccessTokenRevoked(jti: string): Promise<boolean> {
    return this.#run(() => this.#sql('SELECT 1 FROM revoked_jtis WHERE jti = ? AND until > ?').get(jti, Date.now()) !== undefined);
  }

  // ── Rate limits ───────────────────────────────────────────────────────────────────────────

  hit(key: string, windowMs: number, now: number): Promise<number> {
    return this.#commit(() => {
      // Purge every key's stale hits, not only this one's, so idle keys do not pile up.
      this.#sql('DELETE FROM rate_hits WHERE expires <= ?').run(now);
      this.#sql('INSERT INTO rate_hits (key, at, expires) VALUES (?, ?, ?)').run(key, now, now + windowMs);
      const row = this.#sql('SELECT count(*) AS n FROM rate_hits WHERE key = ? AND at > ?').get(key, now - windowMs) as { n: number };
      return row.n;
    });
  }

  // ── Audit trail (DESIGN §8) ───────────────────────────────────────────────────────────────

  #auditHeadOf(chain: string): AuditHead {
    const row = this.#sql('SELECT size, hash, at, trimmed FROM audit_heads WHERE chain = ?').get(chain) as AuditHead | undefined;
    return row ?? { size: 0, hash: AUDIT_GENESIS, at: 0, trimmed: 0 };
  }

  auditHead(chain: string): Promise<AuditHead> {
    return this.#run(() => this.#auditHeadOf(chain));
  }

  auditAppend(chain: string, expected: Pick<AuditHead, 'size' | 'hash'>, batch: readonly AuditAppend[]): Promise<AuditAppendResult> {
    return this.#commit((): AuditAppendResult => {
      checkAuditBatch(chain, expected, batch);
      // The group commit's transaction is IMMEDIATE: it takes the write lock before the head is
      // read, so a second process on this file waits (busy_timeout) and then sees our head, and
      // answers `moved` rather than forking.
      const head = this.#auditHeadOf(chain);
      if (head.size !== expected.size || head.hash !== expected.hash) return { kind: 'moved', head };
      checkAuditAt(chain, head, batch);
      const holder = this.#sql('SELECT id FROM audit_entries WHERE dedupe = ?');
      for (const [index, { dedupe }] of batch.entries()) {
        if (dedupe === undefined) continue;
        const taken = holder.get(dedupe) as { id: number } | undefined;
        if (taken) return { kind: 'duplicate', index, id: String(taken.id) };
      }
      const lastId = (this.#sql("SELECT value FROM audit_meta WHERE name = 'last_id'").get() as { value: number } | undefined)?.value ?? 0;
      const insert = this.#sql(
        'INSERT INTO audit_entries (id, chain, seq, at, type, incident_id, dedupe, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const ids = batch.map(({ item, dedupe }, i) => {
        const id = lastId + 1 + i;
        insert.run(id, chain, item.seq, item.at, item.type, item.incidentId ?? null, dedupe ?? null, storedJson(item));
        return String(id);
      });
      this.#sql("INSERT INTO audit_meta (name, value) VALUES ('last_id', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value").run(
        lastId + batch.length,
      );
      const last = batch[batch.length - 1]!.item;
      this.#sql(
        `INSERT INTO audit_heads (chain, size, hash, at, trimmed) VALUES (?, ?, ?, ?, 0)
         ON CONFLICT (chain) DO UPDATE SET size = excluded.size, hash = excluded.hash, at = excluded.at`,
      ).run(chain, last.seq, last.hash, last.at);
      return { kind: 'ok', ids };
    });
  }

  auditGet(id: string): Promise<AuditItem | undefined> {
    return this.#run(() => {
      if (!DECIMAL_ID.test(id)) return undefined;
      const row = this.#sql('SELECT id, json FROM audit_entries WHERE id = ?').get(Number(id)) as EntryRow | undefined;
      return row ? itemOf(row) : undefined;
    });
  }

  /**
   * Exact: the SQL does every filter, so pages are never short (the port allows short ones).
   * 'desc' mirrors 'asc': ORDER BY at DESC, id DESC and the cursor as an upper bound; the same
   * indexes serve it, scanned backwards.
   */
  auditQuery(q: AuditQuery): Promise<AuditPage> {
    return this.#run((): AuditPage => {
      const limit = checkLimit(q.limit, 'auditQuery');
      const desc = checkOrder(q.order) === 'desc';
      const after = q.after === undefined ? undefined : checkCursor(q.after);
      for (const [name, v] of [['from', q.from], ['to', q.to]] as const) {
        if (v !== undefined && !Number.isFinite(v)) throw new RangeError(`auditQuery: ${name} must be a finite number`);
      }
      const chains = q.chains === undefined ? undefined : [...new Set(q.chains)];
      if (chains?.length === 0 || q.types?.length === 0) return { items: [] };
      const where: string[] = [];
      const params: Record<string, string | number> = { n: limit + 1 };
      if (after) {
        where.push(desc ? '(at, id) < (@afterAt, @afterId)' : '(at, id) > (@afterAt, @afterId)');
        params.afterAt = after.at;
        params.afterId = Number(after.id);
      }
      if (q.from !== undefined) {
        where.push('at >= @from');
        params.from = q.from;
      }
      if (q.to !== undefined) {
        where.push('at <= @to');
        params.to = q.to;
      }
      if (chains?.length === 1) {
        // One chain as an equality, so the (chain, at, id) index gives the order without a sort.
        where.push('chain = @chain');
        params.chain = chains[0]!;
      } else if (chains) {
        where.push('chain IN (SELECT value FROM json_each(@chains))');
        params.chains = JSON.stringify(chains);
      }
      if (q.types) {
        where.push('type IN (SELECT value FROM json_each(@types))');
        params.types = JSON.stringify(q.types);
      }
      if (q.incidentId !== undefined) {
        where.push('incident_id = @incident');
        params.incident = q.incidentId;
      }
      const sql = `SELECT id, at, json FROM audit_entries${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${desc ? 'at DESC, id DESC' : 'at, id'} LIMIT @n`;
      const rows = this.#sql(sql).all(params) as (EntryRow & { at: number })[];
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { items: page.map(itemOf), ...(rows.length > limit && last ? { next: { at: last.at, id: String(last.id) } } : {}) };
    });
  }

  auditRange(chain: string, fromSeq: number, limit: number): Promise<AuditItem[]> {
    return this.#run(() => {
      checkLimit(limit, 'auditRange');
      checkFromSeq(fromSeq);
      // Trimmed entries are gone from the table, so seq >= fromSeq starts at max(fromSeq, trimmed + 1).
      const rows = this.#sql('SELECT id, json FROM audit_entries WHERE chain = ? AND seq >= ? ORDER BY seq LIMIT ?').all(chain, fromSeq, limit) as EntryRow[];
      return rows.map(itemOf);
    });
  }

  auditSince(afterId: string, limit: number, chains?: readonly string[]): Promise<AuditItem[]> {
    return this.#run(() => {
      checkLimit(limit, 'auditSince');
      const after = checkAfterId(afterId);
      let rows: EntryRow[];
      if (chains === undefined) {
        rows = this.#sql('SELECT id, json FROM audit_entries WHERE id > ? ORDER BY id LIMIT ?').all(after, limit) as EntryRow[];
      } else if (chains.length === 0) {
        rows = [];
      } else {
        rows = this.#sql('SELECT id, json FROM audit_entries WHERE id > ? AND chain IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?').all(
          after,
          JSON.stringify(chains),
          limit,
        ) as EntryRow[];
      }
      return rows.map(itemOf);
    });
  }

  auditChains(): Promise<string[]> {
    return this.#run(() => (this.#sql('SELECT chain FROM audit_heads ORDER BY chain').all() as { chain: string }[]).map((r) => r.chain));
  }

  auditPutCheckpoint(cp: AuditCheckpoint): Promise<void> {
    return this.#commit(() => {
      this.#sql('INSERT INTO audit_checkpoints (chain, size, json) VALUES (?, ?, ?) ON CONFLICT (chain, size) DO NOTHING').run(cp.chain, cp.size, JSON.stringify(cp));
    });
  }

  auditCheckpoints(chain: string, o: { minSize?: number; maxSize?: number; order: 'asc' | 'desc'; limit: number }): Promise<AuditCheckpoint[]> {
    return this.#run(() => {
      const limit = checkLimit(o.limit, 'auditCheckpoints');
      const order = o.order === 'desc' ? 'DESC' : 'ASC';
      const rows = this.#sql(
        `SELECT json FROM audit_checkpoints WHERE chain = @chain AND size >= @min AND size <= @max ORDER BY size ${order} LIMIT @limit`,
      ).all({ chain, min: o.minSize ?? Number.MIN_SAFE_INTEGER, max: o.maxSize ?? Number.MAX_SAFE_INTEGER, limit }) as { json: string }[];
      return rows.map((r) => JSON.parse(r.json) as AuditCheckpoint);
    });
  }

  auditTrim(chain: string, uptoSeq: number): Promise<number> {
    if (!Number.isFinite(uptoSeq)) return Promise.reject(new RangeError(`auditTrim: uptoSeq must be a finite number, got ${uptoSeq}`));
    return this.#commit(() => {
      const head = this.#auditHeadOf(chain);
      const upto = Math.min(Math.floor(uptoSeq), head.size);
      if (upto <= head.trimmed) return 0;
      // The dedupe keys are columns of the rows, so they go with them.
      const removed = this.#sql('DELETE FROM audit_entries WHERE chain = ? AND seq <= ?').run(chain, upto).changes;
      this.#sql('UPDATE audit_heads SET trimmed = ? WHERE chain = ?').run(upto, chain);
      return removed;
    });
  }
}
