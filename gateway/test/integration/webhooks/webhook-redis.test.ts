// Issue 8, scale-out: two gateway instances' webhook engines sharing one Redis store (our own key
// prefix on the machine's Redis). A delivery is sent by exactly one of them (its lease), with the
// retries of either, and both stores' list indexes serve the pending queue and the log.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, type AuditItem } from '@smart-passage/protocol';
import { WebhookService } from '../../../src/features/webhooks/webhook-service.js';
import { RedisStore } from '../../../src/store/redis-store.js';
import { deletePrefix, REDIS_URL, uniquePrefix } from '../../store/helpers.js';

const prefix = uniquePrefix();
const store = new RedisStore({ url: REDIS_URL, prefix, logger: silentLogger });
const got: { delivery: string; ms: number }[] = [];
let script: number[] = [];
const server: Server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    got.push({ delivery: String(req.headers['x-sp-delivery']), ms: Date.now() });
    res.statusCode = script.shift() ?? 200;
    res.end();
  });
});
const engines: WebhookService[] = [];

beforeAll(async () => {
  await store.start();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const now = Date.now();
  await store.insert('organisations', { id: 'org-a', name: 'A', kind: 'owner', createdAt: now });
  await store.insert('buildings', { id: 'bld-a', orgId: 'org-a', name: 'A 1', address: 'Gatan 1', location: { lat: 59.3, lng: 18 }, policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: now, updatedAt: now });
  await store.put('orgWebhooks', { id: 'org-a', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, secret: 'whsec_x', createdAt: now, updatedAt: now });
  for (const owner of ['gw-a', 'gw-b']) {
    const e = new WebhookService({ store, logger: silentLogger, owner, backoffMs: 100, pollMs: 20, allowHttp: true });
    e.start();
    engines.push(e);
  }
});

afterAll(async () => {
  for (const e of engines) await e.stop();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await store.stop();
  await deletePrefix(prefix);
});

const entry = (id: string): AuditItem => ({ v: 1, id, hash: 'h', chain: 'building:bld-a', seq: Number(id), at: Date.now(), type: 'access.granted', actor: { kind: 'controller', id: 'ctl-a' }, buildingId: 'bld-a', grantId: 'grt-1', data: { door: 'd1', credential: 'tag' } });

const until = async (cond: () => Promise<boolean> | boolean, what: string) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > 15_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('webhooks on a shared Redis store', () => {
  it('each delivery is sent once though both instances poll, and an entry queued twice is one delivery', async () => {
    for (let i = 1; i <= 10; i++) await engines[i % 2]!.onEntry(entry(String(i)));
    await engines[0]!.onEntry(entry('1')); // the same entry again: no second delivery
    await until(async () => (await store.list('webhookDeliveries', { where: { field: 'state', value: 'delivered' }, limit: 100 })).length === 10, 'ten deliveries');
    await new Promise((r) => setTimeout(r, 200)); // a few more polls of both engines
    expect(got).toHaveLength(10);
    expect(new Set(got.map((g) => g.delivery)).size).toBe(10);
    expect(await store.list('webhookDeliveries', { where: { field: 'target', value: 'org:org-a' }, limit: 100 })).toHaveLength(10);
  });

  it('retries after failures with a growing wait, whichever instance holds the lease', async () => {
    got.length = 0;
    script = [503, 503];
    await engines[1]!.onEntry(entry('100'));
    await until(async () => (await store.get('webhookDeliveries', 'whd-100-org-org-a'))?.state === 'delivered', 'the third attempt');
    const d = (await store.get('webhookDeliveries', 'whd-100-org-org-a'))!;
    expect(d.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(d.attempts[1]!.at - d.attempts[0]!.at).toBeGreaterThanOrEqual(100);
    expect(d.attempts[2]!.at - d.attempts[1]!.at).toBeGreaterThanOrEqual(200);
    expect(got).toHaveLength(3);
  });
});
