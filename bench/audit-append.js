#!/usr/bin/env node
// Audit-trail append throughput (DESIGN §8, §12): AuditLog.record() through each store, beside the
// raw write of a similar row measured in the same run.
//
// For the embedded store (a temp file, WAL, synchronous=FULL as the store sets it) and for Redis
// (--redis-url, default this machine's, under a key prefix of its own that is removed afterwards):
//   raw      better-sqlite3 INSERTs of a similar row in transactions of the batch size AuditLog
//            used, or XADDs of a similar payload pipelined in batches of that size, one writer
//            per chain in parallel. No hashing, no compare-and-append, no indexes but the row's.
//   record   AuditLog.record(): hashing, the per-chain queue, compare-and-append with dedupe, the
//            store's indexes, and a signed checkpoint every 1000 entries of a chain.
// Entries are spread round-robin over --chains building chains, --in-flight records at a time.
//
// Run with `npm run bench:audit` (builds first). `node bench/audit-append.js --help` lists the options.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
// Built packages by path (see mqtt-roundtrip.js: the linter resolves these without package exports).
import { generateRawKeyPair, privateKeyFromSeed, silentLogger } from '../protocol/dist/index.js';
import { AuditLog } from '../gateway/dist/features/audit/audit-log.js';
import { EmbeddedStore, RedisStore } from '../gateway/dist/store/index.js';
import { deletePrefix, errorText, machine, machineLine, markdownTable, nowMs, positiveInt as boundedInt, runMain } from './lib.js';

/**
 * The part of better-sqlite3 the raw baseline uses, typed here: the linter's default project for
 * plain JS files does not pick up @types/better-sqlite3.
 * @typedef {{ run(...params: unknown[]): unknown }} RawStatement
 * @typedef {{
 *   pragma(source: string): unknown,
 *   exec(source: string): unknown,
 *   prepare(source: string): RawStatement,
 *   transaction(fn: (from: number, to: number) => void): (from: number, to: number) => void,
 *   close(): unknown,
 * }} RawDatabase
 */
/** @type {unknown} */
const betterSqlite3 = createRequire(import.meta.url)('better-sqlite3');
const Database = /** @type {new (file: string) => RawDatabase} */ (betterSqlite3);

const USAGE = `Usage: node bench/audit-append.js [options]

  --n N             entries per measured case (default 20000)
  --chains N        building chains the entries are spread over (default 10)
  --in-flight N     records awaited at once (default 500)
  --warmup N        untimed records before each AuditLog case, on chains of their own (default 2000)
  --redis-url URL   the Redis to measure (default redis://127.0.0.1:6379); --redis-url '' skips it
  --help            this text
`;

/** DESIGN §12 event ingest: 5,000 access events/s, each stored in the audit chain. */
const BUDGET = 5_000;

/** @param {string} name @param {string} raw */
const positiveInt = (name, raw) => boundedInt(name, raw, 1_000_000);

function parseOptions() {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '20000' },
      chains: { type: 'string', default: '10' },
      'in-flight': { type: 'string', default: '500' },
      warmup: { type: 'string', default: '2000' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  return {
    n: positiveInt('n', values.n),
    chains: positiveInt('chains', values.chains),
    inFlight: positiveInt('in-flight', values['in-flight']),
    warmup: Number(values.warmup) === 0 ? 0 : positiveInt('warmup', values.warmup),
    redisUrl: values['redis-url'],
    help: values.help,
  };
}

/**
 * What a controller's access event records (the commonest entry): about the size of a real one.
 * @param {number} i @param {number} chains @param {string} run
 * @returns {import('../gateway/dist/features/audit/audit-log.js').AuditInput}
 */
function input(i, chains, run) {
  const b = i % chains;
  return {
    type: 'access.granted',
    actor: { kind: 'controller', id: `ctl-${b}` },
    buildingId: `${run}-b${b}`,
    doorId: `d-${b}-${i % 5}`,
    tagId: `tag-${i % 97}`,
    controllerId: `ctl-${b}`,
    data: { eventAt: 1_764_000_000_000 + i, boot: 'boot-1', seq: i },
    dedupe: `ctl-${b}/boot-1/${run}/${i}`,
  };
}

/** The row the raw baselines write: the stored form of such an entry, with a hash. @param {number} i */
function rawJson(i) {
  const { dedupe: _dedupe, ...rest } = input(i, 10, 'raw');
  return JSON.stringify({ v: 1, chain: `building:${rest.buildingId ?? ''}`, seq: i + 1, at: Date.now(), ...rest, hash: randomBytes(32).toString('hex') });
}

/**
 * The store as AuditLog sees it, counting compare-and-append calls so the raw baselines can use the
 * batch size AuditLog ended up with.
 * @param {import('../gateway/dist/store/index.js').StorePort} store
 */
function counting(store) {
  const counts = { calls: 0, items: 0 };
  /** @type {Pick<import('../gateway/dist/store/index.js').StorePort, 'auditHead' | 'auditAppend' | 'auditGet' | 'auditChains' | 'auditPutCheckpoint' | 'auditCheckpoints'>} */
  const audit = {
    auditHead: (chain) => store.auditHead(chain),
    auditAppend: (chain, expected, batch) => {
      counts.calls += 1;
      counts.items += batch.length;
      return store.auditAppend(chain, expected, batch);
    },
    auditGet: (id) => store.auditGet(id),
    auditChains: () => store.auditChains(),
    auditPutCheckpoint: (cp) => store.auditPutCheckpoint(cp),
    auditCheckpoints: (chain, o) => store.auditCheckpoints(chain, o),
  };
  // AuditLog calls only these methods of its store.
  return { store: /** @type {import('../gateway/dist/store/index.js').StorePort} */ (/** @type {unknown} */ (audit)), counts };
}

/**
 * `count` records over `chains` chains, `inFlight` at a time; resolves to the seconds taken.
 * @param {AuditLog} log @param {number} count @param {number} chains @param {number} inFlight @param {string} run
 */
async function recordMany(log, count, chains, inFlight, run) {
  let next = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: Math.min(inFlight, count) }, async () => {
      while (next < count) {
        const i = next++;
        await log.record(input(i, chains, run));
      }
    }),
  );
  return (nowMs() - t0) / 1000;
}

/**
 * AuditLog.record() on a started store: a warm-up on chains of its own, then the timed run.
 * @param {import('../gateway/dist/store/index.js').StorePort} store
 * @param {ReturnType<typeof parseOptions>} opts
 */
async function measureRecord(store, opts) {
  const { store: counted, counts } = counting(store);
  const pair = generateRawKeyPair();
  const log = new AuditLog({ store: counted, key: { kid: 'bench-audit', key: privateKeyFromSeed(pair.privateKey) }, logger: silentLogger });
  log.start();
  try {
    if (opts.warmup > 0) await recordMany(log, opts.warmup, opts.chains, opts.inFlight, 'warm');
    counts.calls = 0;
    counts.items = 0;
    const seconds = await recordMany(log, opts.n, opts.chains, opts.inFlight, 'run');
    return { seconds, batch: counts.calls > 0 ? counts.items / counts.calls : 1 };
  } finally {
    await log.stop();
  }
}

/**
 * Raw better-sqlite3: the same pragmas as the store, INSERTs in transactions of `batch` rows.
 * @param {string} file @param {number} n @param {number} batch
 */
function rawSqlite(file, n, batch) {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, chain TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, type TEXT NOT NULL, json TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO rows (chain, seq, at, type, json) VALUES (?, ?, ?, ?, ?)');
    const rows = Array.from({ length: n }, (_, i) => rawJson(i));
    const write = db.transaction((/** @type {number} */ from, /** @type {number} */ to) => {
      for (let i = from; i < to; i++) insert.run(`building:b${i % 10}`, i + 1, Date.now(), 'access.granted', rows[i]);
    });
    const t0 = nowMs();
    for (let i = 0; i < n; i += batch) write(i, Math.min(n, i + batch));
    return (nowMs() - t0) / 1000;
  } finally {
    db.close();
  }
}

/**
 * Raw Redis: XADD of a similar payload, `batch` per pipeline, one writer per chain in parallel.
 * @param {Redis} client @param {string} prefix @param {number} n @param {number} batch @param {number} chains
 */
async function rawRedis(client, prefix, n, batch, chains) {
  const rows = Array.from({ length: n }, (_, i) => rawJson(i));
  let next = 0;
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: chains }, async (_, c) => {
      while (next < n) {
        const from = next;
        const to = Math.min(n, from + batch);
        next = to;
        const p = client.pipeline();
        for (let i = from; i < to; i++) p.xadd(`${prefix}raw:${c}`, '*', 'e', rows[i] ?? '');
        const replies = (await p.exec()) ?? [];
        for (const [err] of replies) if (err) throw err;
      }
    }),
  );
  return (nowMs() - t0) / 1000;
}

/**
 * @typedef {{ store: string, scenario: string, n: number, batch: number, seconds: number, rate: number, raw?: number, note?: string }} Row
 * @param {Row[]} rows
 */
function table(rows) {
  const head = ['store', 'scenario', 'entries', 'batch', 'seconds', 'appends/s', 'vs raw', `budget ≥ ${BUDGET.toLocaleString('en-US')}/s`];
  const body = rows.map((r) => {
    if (r.note) return [r.store, r.scenario, '—', '—', '—', '—', '—', '—'];
    const isRecord = r.raw !== undefined;
    return [
      r.store,
      r.scenario,
      String(r.n),
      r.batch.toFixed(1),
      r.seconds.toFixed(2),
      Math.round(r.rate).toLocaleString('en-US'),
      isRecord ? `${((r.rate / (r.raw ?? 1)) * 100).toFixed(0)} %` : '100 %',
      isRecord ? (r.rate >= BUDGET ? 'holds: yes' : 'holds: no') : '—',
    ];
  });
  const notes = rows.filter((r) => r.note).map((r) => `${r.store}, ${r.scenario}: ${r.note ?? ''}`);
  return markdownTable(head, body, (i) => i >= 2 && i <= 6, notes);
}

/**
 * One store's two rows: AuditLog.record() on it (started here, stopped after), then the raw baseline
 * at the batch size AuditLog ended up with; or one row saying why the case failed.
 * @param {ReturnType<typeof parseOptions>} opts
 * @param {{
 *   label: string,
 *   store: () => import('../gateway/dist/store/index.js').StorePort,
 *   rawScenario: string,
 *   rawStep: (batch: number) => string,
 *   raw: (batch: number) => number | Promise<number>,
 * }} c
 * @returns {Promise<{ rows: Row[], failed: boolean }>}
 */
async function storeCase(opts, c) {
  try {
    process.stderr.write(`… ${c.label}: AuditLog.record()\n`);
    const store = c.store();
    await store.start();
    let rec;
    try {
      rec = await measureRecord(store, opts);
    } finally {
      await store.stop();
    }
    const batch = Math.max(1, Math.round(rec.batch));
    process.stderr.write(`… ${c.label}: ${c.rawStep(batch)}\n`);
    const rawSeconds = await c.raw(batch);
    const raw = opts.n / rawSeconds;
    return {
      rows: [
        { store: c.label, scenario: c.rawScenario, n: opts.n, batch, seconds: rawSeconds, rate: raw },
        { store: c.label, scenario: 'AuditLog.record()', n: opts.n, batch: rec.batch, seconds: rec.seconds, rate: opts.n / rec.seconds, raw },
      ],
      failed: false,
    };
  } catch (err) {
    return { rows: [{ store: c.label, scenario: 'AuditLog.record()', n: 0, batch: 0, seconds: 0, rate: 0, note: `failed: ${errorText(err)}` }], failed: true };
  }
}

async function main() {
  const opts = parseOptions();
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  /** @type {Row[]} */
  const rows = [];
  let failed = false;
  const m = machine();

  // Embedded: AuditLog first, so the raw baseline can use the batch size it ended up with.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sp-bench-audit-'));
  try {
    const r = await storeCase(opts, {
      label: 'embedded (SQLite, synchronous=FULL)',
      store: () => new EmbeddedStore({ path: path.join(dir, 'store.sqlite') }),
      rawScenario: 'raw INSERT, one transaction a batch',
      rawStep: (batch) => `raw better-sqlite3, ${batch} rows a transaction`,
      raw: (batch) => rawSqlite(path.join(dir, 'raw.sqlite'), opts.n, batch),
    });
    rows.push(...r.rows);
    failed ||= r.failed;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  if (opts.redisUrl) {
    const url = opts.redisUrl;
    const prefix = `sp-bench-${randomBytes(4).toString('hex')}:`;
    const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const r = await storeCase(opts, {
        label: `redis ${new URL(url).host}`,
        store: () => new RedisStore({ url, prefix, logger: silentLogger }),
        rawScenario: 'raw XADD, one pipeline a batch',
        rawStep: (batch) => `raw XADD, ${batch} a pipeline`,
        raw: async (batch) => {
          await admin.connect();
          return rawRedis(admin, prefix, opts.n, batch, opts.chains);
        },
      });
      rows.push(...r.rows);
      failed ||= r.failed;
    } finally {
      try {
        if (admin.status === 'wait') await admin.connect();
        await deletePrefix(admin, prefix);
      } catch (err) {
        process.stderr.write(`could not remove the keys under ${prefix}: ${errorText(err)}\n`);
      }
      admin.disconnect();
    }
  }

  process.stdout.write(`\n${table(rows)}\n\n`);
  process.stdout.write(
    `${opts.n} entries over ${opts.chains} building chains, ${opts.inFlight} records in flight; batch = mean entries per store call (AuditLog) or per transaction/pipeline (raw).\n`,
  );
  process.stdout.write(`${machineLine(m)}\n`);
  return failed ? 1 : 0;
}

runMain(main);
