// A building changed on one instance reaches the others (issue 7): the real-time channel carries
// `building-changed` between instances sharing Redis, so each drops the building's owner from its
// fan-out cache. Two Realtime adapters on HTTP servers of their own and a private redis-server
// (never the machine's 6379).
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { Realtime } from '../../../src/adapters/realtime.js';
import { BuildingOrgs } from '../../../src/features/realtime/building-orgs.js';
import { endServices, startRedis, type PrivateServer } from '../../support/services.js';

let redis: PrivateServer;
const servers: Server[] = [];
const adapters: Realtime[] = [];

/** An instance: its adapter, what it was told, and its owner cache over a shared "store". */
async function instance(owners: Map<string, string>) {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  servers.push(server);
  const told: string[] = [];
  const cache = new BuildingOrgs({ lookup: (id) => Promise.resolve(owners.get(id)) });
  const rt = new Realtime({
    httpServer: server,
    redis: { url: redis.url, prefix: 'sp-test-building-changed:' },
    verify: () => Promise.reject(new Error('no sockets in this test')),
    snapshot: () => Promise.resolve({ incidents: [], grants: [], controllers: [] }),
    onBuildingChanged: (id) => {
      told.push(id);
      cache.invalidate(id);
    },
    logger: silentLogger,
    corsOrigins: [],
  });
  rt.start();
  adapters.push(rt);
  return { rt, told, cache };
}

async function until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  redis = await startRedis({ appendOnly: false });
});
afterAll(async () => {
  for (const rt of adapters) await rt.stop();
  for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
  await endServices();
});

describe('building-changed between instances', () => {
  it("drops the building's owner on the other instances, not on the one that announced it", async () => {
    const owners = new Map([['bld-1', 'org-a']]);
    const a = await instance(owners);
    const b = await instance(owners);
    const c = await instance(owners);
    // Every instance caches the owner.
    for (const i of [a, b, c]) expect(await i.cache.orgOf('bld-1')).toBe('org-a');
    // Moved on A (A drops its own entry itself, as the gateway does), announced to the others.
    owners.set('bld-1', 'org-b');
    a.cache.invalidate('bld-1');
    // The streams adapter needs its readers running before it delivers: announce until heard.
    const announce = setInterval(() => a.rt.buildingChanged('bld-1'), 200);
    try {
      a.rt.buildingChanged('bld-1');
      await until(() => b.told.includes('bld-1') && c.told.includes('bld-1'), 'B and C told');
    } finally {
      clearInterval(announce);
    }
    expect(a.told).toEqual([]);
    for (const i of [a, b, c]) expect(await i.cache.orgOf('bld-1')).toBe('org-b');
  });
});
