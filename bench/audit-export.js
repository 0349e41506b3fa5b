#!/usr/bin/env node
// Streamed audit export (issue 4, DESIGN §8): a million entries of one building chain go out
// through exportLines into a file without being held in memory, and the file verifies with the
// protocol's streaming verifier, as `sp-audit-verify` reads it.
//
// For the embedded store (a temp file) and, with --redis, for Redis under a key prefix of its own
// (removed afterwards), three phases, each in a child process of its own so that one phase's heap
// does not hide another's growth:
//   fill     AuditLog.record() of --entries entries into one building chain, --in-flight at a time,
//            a signed checkpoint every --checkpoint-every entries.
//   export   exportLines() → jsonlLine() → a file write stream, waiting for 'drain' whenever
//            write() returns false, as the HTTP layer does with the socket.
//   verify   the file read in 64 KiB chunks into AuditExportReader (what the CLI does).
// Each phase samples process.memoryUsage() every 100 ms (and every 10,000 lines) and reports its
// peak RSS and heapUsed beside its RSS before the phase started.
//
// Run with `npm run bench:audit-export` (after a build). `node bench/audit-export.js --help` lists the options.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { finished } from 'node:stream/promises';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
// Built packages by path (see mqtt-roundtrip.js: the linter resolves these without package exports).
import { AuditExportReader, generateRawKeyPair, jsonlLine, privateKeyFromSeed, silentLogger, trustedKeys } from '../protocol/dist/index.js';
import { AuditLog } from '../gateway/dist/features/audit/audit-log.js';
import { exportLines } from '../gateway/dist/features/audit/export.js';
import { EmbeddedStore, RedisStore } from '../gateway/dist/store/index.js';
import { deletePrefix, errorText, machine, machineLine, markdownTable, nowMs, positiveInt, runMain } from './lib.js';

const USAGE = `Usage: node bench/audit-export.js [options]

  --entries N            entries in the exported building chain (default 1000000)
  --in-flight N          records awaited at once while filling the chain (default 2000)
  --checkpoint-every N   AuditLog's checkpoint interval while filling (default 1000)
  --redis                also measure Redis, under a key prefix of its own that is deleted afterwards
  --redis-url URL        the Redis for --redis (default redis://127.0.0.1:6379)
  --help                 this text
`;

/** Issue 4: "export streamed: a million entries without loading them into memory". */
const BUDGET_MB = 100;
const BUDGET_ENTRIES = 1_000_000;
const SAMPLE_MS = 100;
const SAMPLE_LINES = 10_000;
const BUILDING = 'bench-export';
const CHAIN = `building:${BUILDING}`;
const MB = 2 ** 20;
const here = fileURLToPath(import.meta.url);

function parseOptions() {
  const { values } = parseArgs({
    options: {
      entries: { type: 'string', default: '1000000' },
      'in-flight': { type: 'string', default: '2000' },
      'checkpoint-every': { type: 'string', default: '1000' },
      redis: { type: 'boolean', default: false },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      help: { type: 'boolean', default: false },
      // Internal: how the parent runs one phase in a child process.
      phase: { type: 'string' },
      db: { type: 'string' },
      prefix: { type: 'string' },
      key: { type: 'string' },
      file: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  return {
    entries: positiveInt('entries', values.entries, 10_000_000),
    inFlight: positiveInt('in-flight', values['in-flight'], 100_000),
    checkpointEvery: positiveInt('checkpoint-every', values['checkpoint-every'], 1_000_000),
    redis: values.redis,
    redisUrl: values['redis-url'],
    help: values.help,
    phase: values.phase,
    db: values.db,
    prefix: values.prefix,
    key: values.key ?? '',
    file: values.file ?? '',
  };
}

/** @typedef {ReturnType<typeof parseOptions>} Options */
/** @typedef {{ kid: string, privateKey: string, publicKey: string }} KeyFile */
/**
 * What a phase reports (the last line of the child's stdout, as JSON).
 * @typedef {{
 *   entries: number, seconds: number, rssBefore: number, heapBefore: number, peakRss: number, peakHeap: number,
 *   samples: number, heapAfterGc: number, bytes?: number, lines?: number, rssTrail?: number[], ok?: boolean, checkpoints?: number,
 *   problem?: string,
 * }} PhaseResult
 */

// ── inside a child: one phase ────────────────────────────────────────────────────────────────

/**
 * Peak RSS and heapUsed, sampled every SAMPLE_MS and whenever `sample()` is called.
 */
function memorySampler() {
  const peak = { rss: 0, heap: 0, samples: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heapUsed);
    peak.samples += 1;
  };
  sample();
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    sample,
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** heapUsed after a full GC when the child has one (--expose-gc): what is still held. */
function heapAfterGc() {
  /** @type {{ gc?: () => void }} */ (globalThis).gc?.();
  return process.memoryUsage().heapUsed;
}

/** RSS and heapUsed at the start of a phase, after a full GC. */
function baseline() {
  const heapBefore = heapAfterGc();
  return { rssBefore: process.memoryUsage().rss, heapBefore };
}

/** @param {Options} opts @returns {import('../gateway/dist/store/index.js').StorePort} */
function openStore(opts) {
  if (opts.db !== undefined) return new EmbeddedStore({ path: opts.db });
  if (opts.prefix !== undefined) return new RedisStore({ url: opts.redisUrl, prefix: opts.prefix, logger: silentLogger });
  throw new Error('a phase needs --db or --prefix');
}

/**
 * A controller's access event, the commonest entry, about the size of a real one.
 * @param {number} i @returns {import('../gateway/dist/features/audit/audit-log.js').AuditInput}
 */
function input(i) {
  return {
    type: 'access.granted',
    actor: { kind: 'controller', id: 'ctl-1' },
    buildingId: BUILDING,
    doorId: `d-${i % 5}`,
    tagId: `tag-${i % 97}`,
    controllerId: 'ctl-1',
    data: { eventAt: 1_764_000_000_000 + i, boot: 'boot-1', seq: i },
    dedupe: `ctl-1/boot-1/${i}`,
  };
}

/** @param {Options} opts @param {KeyFile} k @returns {Promise<PhaseResult>} */
async function fillPhase(opts, k) {
  const store = openStore(opts);
  await store.start();
  const before = baseline();
  const mem = memorySampler();
  const log = new AuditLog({ store, key: { kid: k.kid, key: privateKeyFromSeed(k.privateKey) }, logger: silentLogger, checkpointEvery: opts.checkpointEvery });
  log.start();
  const t0 = nowMs();
  try {
    let next = 0;
    let done = 0;
    const step = Math.max(SAMPLE_LINES, Math.round(opts.entries / 10));
    await Promise.all(
      Array.from({ length: Math.min(opts.inFlight, opts.entries) }, async () => {
        while (next < opts.entries) {
          const i = next++;
          await log.record(input(i));
          done += 1;
          if (done % SAMPLE_LINES === 0) mem.sample();
          if (done % step === 0) process.stderr.write(`  filled ${done.toLocaleString('en-US')} (${Math.round(done / ((nowMs() - t0) / 1000)).toLocaleString('en-US')}/s)\n`);
        }
      }),
    );
  } finally {
    await log.stop();
    await store.stop();
  }
  const seconds = (nowMs() - t0) / 1000;
  const peak = mem.stop();
  return { entries: opts.entries, seconds, ...before, peakRss: peak.rss, peakHeap: peak.heap, samples: peak.samples, heapAfterGc: heapAfterGc() };
}

/** @param {Options} opts @param {KeyFile} k @returns {Promise<PhaseResult>} */
async function exportPhase(opts, k) {
  const store = openStore(opts);
  await store.start();
  const key = privateKeyFromSeed(k.privateKey);
  // Not started: the export only asks it to sign the head if no checkpoint covers it.
  const log = new AuditLog({ store, key: { kid: k.kid, key }, logger: silentLogger });
  const deps = { store, checkpoint: (/** @type {string} */ c) => log.checkpoint(c), key: { kid: k.kid, key, publicKey: k.publicKey } };
  const out = createWriteStream(opts.file);
  const before = baseline();
  const mem = memorySampler();
  const stats = { entries: 0, chains: [] };
  let peakHeapAfter = 0;
  let lines = 0;
  /** @type {number[]} RSS at each tenth of the entries */
  const rssTrail = [];
  const tenth = Math.max(1, Math.floor(opts.entries / 10));
  const t0 = nowMs();
  try {
    // The gateway's .d.ts files name protocol types by package name, which the linter does not resolve.
    const exported = /** @type {AsyncGenerator<import('../protocol/dist/index.js').ExportLine>} */ (/** @type {unknown} */ (exportLines(deps, { chains: [CHAIN] }, stats)));
    for await (const line of exported) {
      lines += 1;
      if (lines % SAMPLE_LINES === 0) mem.sample();
      if (line.record === 'entry' && stats.entries % tenth === 0 && rssTrail.length < 10) rssTrail.push(process.memoryUsage().rss);
      if (!out.write(jsonlLine(line))) await once(out, 'drain');
    }
    out.end();
    await finished(out);
    peakHeapAfter = heapAfterGc();
  } finally {
    out.destroy();
    await store.stop();
  }
  const seconds = (nowMs() - t0) / 1000;
  const peak = mem.stop();
  const { size } = await stat(opts.file);
  return { entries: stats.entries, lines, bytes: size, seconds, ...before, peakRss: peak.rss, peakHeap: peak.heap, samples: peak.samples, heapAfterGc: peakHeapAfter, rssTrail };
}

/** @param {Options} opts @param {KeyFile} k @returns {Promise<PhaseResult>} */
async function verifyPhase(opts, k) {
  const reader = new AuditExportReader({ keys: trustedKeys([{ kid: k.kid, publicKey: k.publicKey }]) });
  const input = createReadStream(opts.file, { highWaterMark: 1 << 16, encoding: 'utf8' });
  const before = baseline();
  const mem = memorySampler();
  const t0 = nowMs();
  let chunks = 0;
  try {
    for await (const chunk of input) {
      chunks += 1;
      if (chunks % 100 === 0) mem.sample();
      if (!reader.write(String(chunk))) break;
    }
  } finally {
    input.destroy();
  }
  /** @type {import('../protocol/dist/index.js').AuditVerifyResult} */
  const result = reader.end();
  const problem = result.ok ? undefined : /** @type {import('../protocol/dist/index.js').AuditProblem} */ (result.problem);
  const seconds = (nowMs() - t0) / 1000;
  const peak = mem.stop();
  return {
    entries: result.entries,
    seconds,
    ...before,
    peakRss: peak.rss,
    peakHeap: peak.heap,
    samples: peak.samples,
    heapAfterGc: heapAfterGc(),
    ok: result.ok,
    ...(result.ok ? { checkpoints: result.checkpoints } : { problem: `${problem?.code ?? ''} at line ${problem?.line ?? 0}: ${problem?.message ?? ''}` }),
  };
}

/** @param {Options} opts */
async function runPhase(opts) {
  /** @type {unknown} */
  const parsed = JSON.parse(await readFile(opts.key, 'utf8'));
  const k = /** @type {KeyFile} */ (parsed);
  const phases = { fill: fillPhase, export: exportPhase, verify: verifyPhase };
  const run = phases[/** @type {keyof typeof phases} */ (opts.phase)];
  if (!run) throw new Error(`unknown phase ${opts.phase}`);
  const result = await run(opts, k);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

// ── the parent: the phases of each store, the table ─────────────────────────────────────────

/**
 * Run one phase in a child process (with --expose-gc, for a clean baseline); its stderr shows here.
 * @param {string[]} args @returns {Promise<PhaseResult>}
 */
async function child(args) {
  const proc = spawn(process.execPath, ['--expose-gc', here, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => (stdout += String(d)));
  /** @type {unknown[]} */
  const exit = await once(proc, 'exit');
  const code = /** @type {number | null} */ (exit[0]);
  const last = stdout.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`phase ${args[1] ?? '?'} exited with ${code ?? 'a signal'}`);
  /** @type {unknown} */
  const result = JSON.parse(last);
  return /** @type {PhaseResult} */ (result);
}

/**
 * Fill, export and verify on one store.
 * @param {Options} opts @param {string[]} where `--db <file>` or `--prefix <p>` @param {string} keyFile @param {string} file
 */
async function measureStore(opts, where, keyFile, file) {
  const common = [...where, '--key', keyFile, '--redis-url', opts.redisUrl, '--file', file, '--entries', String(opts.entries)];
  process.stderr.write(`… fill: ${opts.entries.toLocaleString('en-US')} entries through AuditLog.record(), ${opts.inFlight} in flight\n`);
  const fill = await child(['--phase', 'fill', ...common, '--in-flight', String(opts.inFlight), '--checkpoint-every', String(opts.checkpointEvery)]);
  process.stderr.write(`  ${Math.round(fill.entries / fill.seconds).toLocaleString('en-US')} entries/s\n… export\n`);
  const exp = await child(['--phase', 'export', ...common]);
  process.stderr.write('… verify\n');
  const ver = await child(['--phase', 'verify', ...common]);
  return { fill, exp, ver };
}

/**
 * @typedef {{ store: string, phase: string, r?: PhaseResult, note?: string }} Row
 * @param {Row[]} rows
 */
function table(rows) {
  const head = ['store', 'phase', 'entries', 'file MB', 'seconds', 'entries/s', 'RSS before MB', 'peak RSS MB', 'RSS growth MB', 'heapUsed before MB', 'peak heapUsed MB', 'heapUsed after GC MB', 'result'];
  const mb = (/** @type {number} */ b) => (b / MB).toFixed(1);
  const body = rows.map(({ store, phase, r }) => {
    if (!r) return [store, phase, ...head.slice(2).map(() => '—')];
    const result = r.ok === undefined ? (r.lines !== undefined ? `${r.lines.toLocaleString('en-US')} lines` : '') : r.ok ? `ok, ${r.checkpoints ?? 0} checkpoints` : `FAILED: ${r.problem ?? ''}`;
    return [
      store,
      phase,
      r.entries.toLocaleString('en-US'),
      r.bytes !== undefined ? mb(r.bytes) : '—',
      r.seconds.toFixed(1),
      Math.round(r.entries / r.seconds).toLocaleString('en-US'),
      mb(r.rssBefore),
      mb(r.peakRss),
      mb(r.peakRss - r.rssBefore),
      mb(r.heapBefore),
      mb(r.peakHeap),
      mb(r.heapAfterGc),
      result,
    ];
  });
  const notes = rows.filter((r) => r.note).map((r) => `${r.store}, ${r.phase}: ${r.note ?? ''}`);
  return markdownTable(head, body, (i) => i >= 2 && i <= 11, notes);
}

/** @param {string} store @param {Awaited<ReturnType<typeof measureStore>>} m @returns {Row[]} */
const phaseRows = (store, m) => [
  { store, phase: 'fill: AuditLog.record()', r: m.fill },
  { store, phase: 'export: exportLines → file', r: m.exp },
  { store, phase: 'verify: AuditExportReader', r: m.ver },
];

/** @param {Options} opts */
async function main(opts) {
  const m = machine();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sp-bench-export-'));
  /** @type {Row[]} */
  const rows = [];
  /** @type {string[]} */
  const budget = [];
  /** @type {string[]} */
  const trails = [];
  let failed = false;
  /** @param {string} store @param {() => Promise<Awaited<ReturnType<typeof measureStore>>>} run */
  const measure = async (store, run) => {
    try {
      const r = await run();
      rows.push(...phaseRows(store, r));
      const growth = (r.exp.peakRss - r.exp.rssBefore) / MB;
      const holds = growth <= BUDGET_MB;
      const scale = opts.entries === BUDGET_ENTRIES ? '' : ` (this run: ${opts.entries.toLocaleString('en-US')} entries)`;
      if (r.exp.rssTrail) trails.push(`${store}: RSS during the export at 10 %, 20 % … 100 % of the entries (MB): ${r.exp.rssTrail.map((b) => (b / MB).toFixed(0)).join(', ')}`);
      budget.push(`${store}: peak RSS growth during export ≤ ${BUDGET_MB} MB for ${BUDGET_ENTRIES.toLocaleString('en-US')} entries${scale}: ${growth.toFixed(1)} MB, holds: ${holds ? 'yes' : 'no'}`);
      if (!holds || r.ver.ok !== true || r.exp.entries !== opts.entries || r.ver.entries !== opts.entries) failed = true;
    } catch (err) {
      failed = true;
      rows.push({ store, phase: 'fill → export → verify', note: `failed: ${errorText(err)}` });
    }
  };
  try {
    const keyFile = path.join(dir, 'key.json');
    const pair = generateRawKeyPair();
    await writeFile(keyFile, JSON.stringify({ kid: 'bench-export', privateKey: pair.privateKey, publicKey: pair.publicKey }), { mode: 0o600 });

    process.stderr.write('embedded store (SQLite, synchronous=FULL)\n');
    await measure('embedded (SQLite)', async () => {
      const file = path.join(dir, 'embedded.jsonl');
      try {
        return await measureStore(opts, ['--db', path.join(dir, 'store.sqlite')], keyFile, file);
      } finally {
        await rm(file, { force: true });
      }
    });

    if (opts.redis) {
      const url = opts.redisUrl;
      const prefix = `sp-bench-export-${randomBytes(4).toString('hex')}:`;
      process.stderr.write(`redis ${new URL(url).host}, prefix ${prefix}\n`);
      await measure(`redis ${new URL(url).host}`, async () => {
        const file = path.join(dir, 'redis.jsonl');
        try {
          return await measureStore(opts, ['--prefix', prefix], keyFile, file);
        } finally {
          await rm(file, { force: true });
          const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
          try {
            await admin.connect();
            await deletePrefix(admin, prefix);
          } catch (err) {
            process.stderr.write(`could not remove the keys under ${prefix}: ${errorText(err)}\n`);
          } finally {
            admin.disconnect();
          }
        }
      });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  process.stdout.write(`\n${table(rows)}\n\n`);
  for (const line of [...trails, '', ...budget]) process.stdout.write(`${line}\n`);
  process.stdout.write(
    `One building chain, ${opts.inFlight} records in flight while filling, a checkpoint every ${opts.checkpointEvery} entries; each phase in a child process of its own, memory sampled every ${SAMPLE_MS} ms; RSS before = after a full GC at the phase's start.\n`,
  );
  process.stdout.write(`${machineLine(m)}\n`);
  return failed ? 1 : 0;
}

runMain(async () => {
  const opts = parseOptions();
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  return opts.phase !== undefined ? runPhase(opts) : main(opts);
});
