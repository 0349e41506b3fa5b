// The audit writer, exporter and retention on both stores (issue 4): checkpoints every N entries
// and every T ms, exports that stream page by page, tampering in the store detected, and trimming
// that archives first and leaves a chain that still verifies.
import { createReadStream, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AUDIT_GENESIS,
  auditEntryOf,
  auditHash,
  type AuditItem,
  AuditExportVerifier,
  generateRawKeyPair,
  privateKeyFromSeed,
  silentLogger,
  trustedKeys,
  verifyAuditSignature,
  type AuditCheckpoint,
  type ExportLine,
} from '@smart-passage/protocol';
import { AuditLog } from '../../../src/features/audit/audit-log.js';
import { exportLines } from '../../../src/features/audit/export.js';
import { AuditRetention } from '../../../src/features/audit/retention.js';
import { verifyStored } from '../../../src/features/audit/routes.js';
import type { StorePort } from '../../../src/store/index.js';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { REDIS_URL, makeEmbedded, makeRedis, type Harness } from '../../store/helpers.js';

const pair = generateRawKeyPair();
const key = { kid: 'audit-t', key: privateKeyFromSeed(pair.privateKey), publicKey: pair.publicKey };
const trusted = trustedKeys([{ kid: key.kid, publicKey: key.publicKey }]);

/** Someone with write access to the store, bypassing the gateway: what the trail must expose. */
interface Tamper {
  put(item: AuditItem): Promise<void>;
  remove(item: AuditItem): Promise<void>;
  setHead(chain: string, size: number, hash: string, at: number): Promise<void>;
  close(): Promise<void>;
}
type Made = Harness & { tamper(): Tamper };

async function embedded(): Promise<Made> {
  const h = await makeEmbedded();
  return {
    ...h,
    tamper() {
      const db = new Database(h.path);
      return {
        put: (item) => {
          const { id, ...rest } = item;
          db.prepare('UPDATE audit_entries SET json = ? WHERE id = ?').run(JSON.stringify(rest), Number(id));
          return Promise.resolve();
        },
        remove: (item) => {
          db.prepare('DELETE FROM audit_entries WHERE id = ?').run(Number(item.id));
          return Promise.resolve();
        },
        setHead: (chain, size, hash, at) => {
          db.prepare('UPDATE audit_heads SET size = ?, hash = ?, at = ? WHERE chain = ?').run(size, hash, at, chain);
          return Promise.resolve();
        },
        close: () => Promise.resolve(void db.close()),
      };
    },
  };
}

async function redis(): Promise<Made> {
  const h = await makeRedis();
  const p = h.prefix;
  const member = (i: AuditItem) => `${String(i.at).padStart(15, '0')}:${i.id.padStart(16, '0')}`;
  return {
    ...h,
    tamper() {
      const r = new Redis(REDIS_URL);
      return {
        put: async (item) => {
          const { id, ...rest } = item;
          await r.hset(`${p}a:e`, id, JSON.stringify(rest));
        },
        remove: async (item) => {
          await r.hdel(`${p}a:e`, item.id);
          await r.zrem(`${p}a:c:${item.chain}`, member(item));
          await r.zrem(`${p}a:t`, member(item));
        },
        setHead: async (chain, size, hash, at) => {
          await r.hset(`${p}a:h:${chain}`, 'size', String(size), 'hash', hash, 'at', String(at));
        },
        close: async () => void (await r.quit()),
      };
    },
  };
}

const harnesses: [string, () => Promise<Made>][] = [
  ['embedded', embedded],
  ['redis', redis],
];

describe.each(harnesses)('audit trail on the %s store', (_name, make) => {
  let h: Made;
  let store: StorePort;
  let clock = 1_700_000_000_000;
  const now = () => clock;
  beforeEach(async () => {
    h = await make();
    store = await h.open();
    clock = 1_700_000_000_000;
  });
  afterEach(async () => {
    await h.close();
  });

  /** n records at once (they go in batches). */
  const record = (log: AuditLog, n: number, buildingId = 'b-1') =>
    Promise.all(Array.from({ length: n }, (_, i) => log.record({ type: 'door.state', actor: { kind: 'system' }, buildingId, data: { i } })));
  /** n records one after another (a checkpoint lands exactly every N). */
  const recordEach = async (log: AuditLog, n: number) => {
    for (let i = 0; i < n; i++) await record(log, 1);
  };

  it('signs a checkpoint every N entries and after T ms, and a last one at stop', async () => {
    const log = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 10, checkpointMs: 60_000, now });
    await recordEach(log, 25);
    const cps = await store.auditCheckpoints('building:b-1', { order: 'asc', limit: 100 });
    expect(cps.map((c) => c.size)).toEqual([10, 20]);
    for (const cp of cps) expect(verifyAuditSignature({ ...cp }, trusted)).toBe('ok');
    // T: another gateway's timer signs the remaining 5 without reaching N.
    const other = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 10, checkpointMs: 50, now });
    const seen: AuditCheckpoint[] = [];
    other.on('checkpoint', (cp) => seen.push(cp));
    other.start();
    await new Promise((r) => setTimeout(r, 300));
    expect((await store.auditCheckpoints('building:b-1', { order: 'desc', limit: 1 }))[0]?.size).toBe(25);
    expect(seen.map((c) => c.size)).toEqual([25]);
    await recordEach(other, 3);
    await other.stop();
    expect((await store.auditCheckpoints('building:b-1', { order: 'desc', limit: 1 }))[0]?.size).toBe(28);
    await log.stop();
  });

  it('keeps `at` from going back within a chain even when the clock does', async () => {
    const log = new AuditLog({ store, key, logger: silentLogger, now });
    await record(log, 3);
    clock -= 60_000;
    const [late] = await record(log, 1);
    expect(late?.at).toBe(1_700_000_000_000);
    await log.stop();
  });

  it('records once per dedupe key (a redelivered controller event)', async () => {
    const log = new AuditLog({ store, key, logger: silentLogger, now });
    const input = { type: 'access.granted' as const, actor: { kind: 'controller' as const, id: 'c-1' }, buildingId: 'b-1', dedupe: 'evt:c-1:boot:7' };
    const [a, b] = await Promise.all([log.record(input), log.record({ ...input })]);
    const c = await log.record(input);
    expect(b?.id).toBe(a.id);
    expect(c.id).toBe(a.id);
    expect((await store.auditHead('building:b-1')).size).toBe(1);
    // Two copies queued into one batch behind another entry: one entry, both answered with it.
    const twin = { ...input, dedupe: 'evt:c-1:boot:8' };
    const [, t1, t2] = await Promise.all([record(log, 1), log.record(twin), log.record({ ...twin })]);
    expect(t1.id).toBe(t2.id);
    expect((await store.auditHead('building:b-1')).size).toBe(3);
    await log.stop();
  });

  it('streams an export page by page: the first lines come before most entries are read', async () => {
    const log = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 500, now });
    for (let i = 0; i < 6; i++) await record(log, 500);
    let ranges = 0;
    const counting = new Proxy(store, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'auditRange') ranges++;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const gen = exportLines({ store: counting, checkpoint: (c) => log.checkpoint(c), key, now }, { chains: ['building:b-1'] });
    for (let i = 0; i < 50; i++) await gen.next();
    expect(ranges).toBeLessThanOrEqual(2);
    let n = 50;
    const verifier = new AuditExportVerifier({ keys: trusted });
    for await (const line of exportLines({ store, checkpoint: (c) => log.checkpoint(c), key, now }, { chains: ['building:b-1'] })) {
      verifier.push(JSON.parse(JSON.stringify(line)) as ExportLine, ++n);
    }
    const r = verifier.finish();
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (r.ok) expect(r.entries).toBe(3000);
    await gen.return(undefined);
    await log.stop();
  }, 60_000);

  it('exports a time range widened to the enclosing checkpoints, and it verifies', async () => {
    const log = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 10, now });
    for (let i = 0; i < 50; i++) {
      clock += 1000;
      await record(log, 1);
    }
    const from = 1_700_000_000_000 + 15_000;
    const to = 1_700_000_000_000 + 33_000;
    const lines: ExportLine[] = [];
    for await (const l of exportLines({ store, checkpoint: (c) => log.checkpoint(c), key, now }, { chains: ['building:b-1'], from, to })) lines.push(l);
    const entries = lines.filter((l) => l.record === 'entry');
    expect(entries[0]?.seq).toBe(11); // after the checkpoint at 10
    expect(entries[entries.length - 1]?.seq).toBe(40); // up to the checkpoint at 40
    expect(lines[1]).toMatchObject({ record: 'checkpoint', size: 10 });
    const verifier = new AuditExportVerifier({ keys: trusted });
    lines.forEach((l, i) => verifier.push(JSON.parse(JSON.stringify(l)) as unknown, i + 1));
    expect(verifier.finish().ok).toBe(true);
    await log.stop();
  });

  it('retention archives, verifies the archive, then trims at a checkpoint; the rest still verifies', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sp-ret-'));
    try {
      const log = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 10, now });
      await recordEach(log, 35); // old: checkpoints at 10, 20, 30
      clock += 40 * 86_400_000;
      await recordEach(log, 5); // recent: a checkpoint at 40
      const retention = new AuditRetention({ store, log, key, retentionMs: 30 * 86_400_000, archiveDir: dataDir, owner: 'gw-t', logger: silentLogger, now });
      const done = await retention.runOnce();
      expect(done).toEqual([expect.objectContaining({ chain: 'building:b-1', fromSeq: 1, toSeq: 30 })]);
      const head = await store.auditHead('building:b-1');
      expect(head.trimmed).toBe(30);
      expect((await store.auditRange('building:b-1', 1, 100))[0]?.seq).toBe(31);
      // The archive verifies on its own.
      const [sub] = readdirSync(dataDir);
      const [file] = readdirSync(join(dataDir, sub!));
      const v = new AuditExportVerifier({ keys: trusted });
      let n = 0;
      for await (const text of createInterface({ input: createReadStream(join(dataDir, sub!, file!)) })) v.push(JSON.parse(text) as unknown, ++n);
      const archived = v.finish();
      expect(archived.ok).toBe(true);
      if (archived.ok) expect(archived.entries).toBe(30);
      // What is left verifies from the kept checkpoint (and includes the audit.trimmed entry).
      const rest = await verifyStored({ store, checkpoint: (c) => log.checkpoint(c), key, now }, ['building:b-1'], now);
      expect(rest.ok, JSON.stringify(rest.problem)).toBe(true);
      expect(rest.chains[0]).toMatchObject({ firstSeq: 31 });
      // Nothing more to trim now.
      expect(await retention.runOnce()).toEqual([]);
      await log.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
  describe('tampering in the store is detected by the next verification', () => {
    const CHAIN = 'building:b-1';
    let log: AuditLog;
    let items: AuditItem[];
    let t: Tamper;
    const verify = () => verifyStored({ store, checkpoint: (c) => log.checkpoint(c), key, now }, [CHAIN], now);
    beforeEach(async () => {
      log = new AuditLog({ store, key, logger: silentLogger, checkpointEvery: 5, now });
      await recordEach(log, 20);
      await log.checkpoint(CHAIN);
      items = await store.auditRange(CHAIN, 1, 100);
      expect(items).toHaveLength(20);
      expect((await verify()).ok).toBe(true);
      t = h.tamper();
    });
    afterEach(async () => {
      await t.close();
      await log.stop();
    });

    it('an altered entry', async () => {
      await t.put({ ...items[7]!, actor: { kind: 'user', id: 'someone-else' } });
      const r = await verify();
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ code: 'hash-mismatch', seq: 8, id: items[7]!.id });
    });

    it('an altered entry with every later hash recomputed (no audit key to re-sign)', async () => {
      let prev = items[6]!.hash;
      for (const item of items.slice(7)) {
        const changed = item.seq === 8 ? { ...item, reason: 'nothing happened' } : item;
        const hash = auditHash(prev, auditEntryOf(changed));
        await t.put({ ...changed, hash });
        prev = hash;
      }
      await t.setHead(CHAIN, 20, prev, items[19]!.at);
      const r = await verify();
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ code: 'checkpoint-mismatch', chain: CHAIN });
      expect(r.problem?.message).toMatch(/10/); // the first checkpoint after the change
    });

    it('a deleted entry', async () => {
      await t.remove(items[11]!);
      const r = await verify();
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ code: 'seq-gap', chain: CHAIN });
      expect(r.problem?.message).toMatch(/12/);
    });

    it('two entries swapped', async () => {
      const [a, b] = [items[1]!, items[2]!];
      await t.put({ ...b, id: a.id });
      await t.put({ ...a, id: b.id });
      const r = await verify();
      expect(r.ok).toBe(false);
      expect(r.problem?.code).toBe('out-of-order');
    });

    it('the newest entries cut off and the head moved back', async () => {
      for (const item of items.slice(17)) await t.remove(item);
      await t.setHead(CHAIN, 17, items[16]!.hash, items[16]!.at);
      const r = await verify();
      expect(r.ok).toBe(false);
      expect(r.problem).toMatchObject({ code: 'checkpoint-mismatch', chain: CHAIN });
    });

    it('an untouched chain verifies (the tamper helper itself changes nothing)', async () => {
      await t.put(items[5]!);
      const r = await verify();
      expect(r.ok, JSON.stringify(r.problem)).toBe(true);
      expect(r.entries).toBe(20);
      expect(AUDIT_GENESIS).toHaveLength(64);
    });
  });
});
