// Several gateway processes appending to one chain at once never fork it (issue 4, DESIGN §8,
// §11). Real processes (each with its own store connection and its own AuditLog), started here
// and ended by their PIDs, write to one chain on the machine's Redis (under a prefix of their own)
// and on one embedded SQLite file; afterwards the chain is one line: seqs 1..n, every hash
// chained on the previous one, nothing lost.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { AUDIT_GENESIS, auditEntryOf, auditHash, generateRawKeyPair } from '@smart-passage/protocol';
import { EmbeddedStore, RedisStore, type StorePort } from '../../../src/store/index.js';
import { REDIS_URL, deletePrefix, memoryLogger, uniquePrefix } from '../../store/helpers.js';

const DIST = pathToFileURL(fileURLToPath(new URL('../../../dist/', import.meta.url))).href;
const GATEWAY_DIR = fileURLToPath(new URL('../../../', import.meta.url));
const WRITERS = 3;
const PER_WRITER = 300;
const CHAIN_BUILDING = 'fork-test';

// One writer process: its own store connection and AuditLog, PER_WRITER records in flight at once.
const WRITER = `
import { createStore } from '${DIST}store/index.js';
import { AuditLog } from '${DIST}features/audit/audit-log.js';
import { privateKeyFromSeed, silentLogger } from '@smart-passage/protocol';
const e = process.env;
const store = createStore({ dataDir: e.W_DIR, ...(e.W_REDIS ? { redisUrl: e.W_REDIS, redisPrefix: e.W_PREFIX } : {}) }, silentLogger);
await store.start();
const log = new AuditLog({ store, key: { kid: 'audit-test', key: privateKeyFromSeed(e.W_SEED) }, logger: silentLogger, checkpointEvery: 97, maxBatch: 16 });
const n = Number(e.W_N);
await Promise.all(Array.from({ length: n }, (_, i) => log.record({ type: 'door.state', actor: { kind: 'system', id: e.W_NAME }, buildingId: '${CHAIN_BUILDING}', data: { writer: e.W_NAME, i } })));
await log.stop();
await store.stop();
process.stdout.write('done ' + n + '\\n');
`;

const started = new Set<number>();
afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited
    }
  }
});

function runWriter(name: string, env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER], { cwd: GATEWAY_DIR, env: { ...process.env, ...env, W_NAME: name, W_N: String(PER_WRITER) }, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('spawn failed');
  const pid = child.pid;
  started.add(pid);
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const timer = setTimeout(() => process.kill(pid, 'SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      started.delete(pid);
      resolve({ code, out, err });
    }),
  );
}

/** Read the whole chain and check it is one unbroken line. */
async function checkChain(store: StorePort, expected: number): Promise<void> {
  const chain = `building:${CHAIN_BUILDING}`;
  const head = await store.auditHead(chain);
  expect(head.size).toBe(expected);
  let prev = AUDIT_GENESIS;
  const seen = new Set<string>();
  for (let seq = 1; seq <= expected; ) {
    const page = await store.auditRange(chain, seq, 1000);
    expect(page.length).toBeGreaterThan(0);
    for (const item of page) {
      expect(item.seq).toBe(seq);
      expect(item.hash).toBe(auditHash(prev, auditEntryOf(item)));
      seen.add(`${String(item.data?.writer)}:${String(item.data?.i)}`);
      prev = item.hash;
      seq++;
    }
  }
  expect(prev).toBe(head.hash);
  // Every record of every writer is there exactly once.
  expect(seen.size).toBe(expected);
  // Checkpoints were signed by several processes; each names a hash that is on the chain.
  const cps = await store.auditCheckpoints(chain, { order: 'asc', limit: 1000 });
  expect(cps.length).toBeGreaterThan(3);
  for (const cp of cps) {
    const [at] = await store.auditRange(chain, cp.size, 1);
    expect(at?.hash).toBe(cp.head);
  }
}

describe('concurrent gateway processes on one chain', () => {
  const seed = generateRawKeyPair().privateKey;

  it('Redis: 3 processes × 300 records → one chain of 900, no fork', async () => {
    const prefix = uniquePrefix();
    const dir = mkdtempSync(join(tmpdir(), 'sp-fork-'));
    try {
      const env = { W_DIR: dir, W_REDIS: REDIS_URL, W_PREFIX: prefix, W_SEED: seed };
      const results = await Promise.all(Array.from({ length: WRITERS }, (_, i) => runWriter(`w${i}`, env)));
      for (const r of results) expect(r.code, r.err).toBe(0);
      const store = new RedisStore({ url: REDIS_URL, prefix, logger: memoryLogger() });
      await store.start();
      try {
        await checkChain(store, WRITERS * PER_WRITER);
      } finally {
        await store.stop();
      }
    } finally {
      await deletePrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('embedded SQLite file: 3 processes × 300 records → one chain of 900, no fork', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sp-fork-'));
    try {
      const results = await Promise.all(Array.from({ length: WRITERS }, (_, i) => runWriter(`w${i}`, { W_DIR: dir, W_SEED: seed })));
      for (const r of results) expect(r.code, r.err).toBe(0);
      const store = new EmbeddedStore({ path: join(dir, 'store.sqlite') });
      await store.start();
      try {
        await checkChain(store, WRITERS * PER_WRITER);
      } finally {
        await store.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
