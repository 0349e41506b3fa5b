// Issue 6, fault "Redis restart" (DESIGN §10: the API answers 503 with a code, nothing crashes;
// MQTT events are not acked until stored). The gateway runs as a process on a private Redis (AOF,
// fsync always) and a private Mosquitto; the Redis is SIGKILLed by its PID while requests are in
// flight, then started again on the same port and data dir. The gateway is never restarted.
// An event the gateway cannot store meanwhile — a pulsed door relocking — must arrive afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditItem } from '@smart-passage/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endAll } from '../../support/main-process.js';
import { endServices, startMosquitto, startRedis, type PrivateServer } from '../../support/services.js';
import { ROUTE, allAudit, api, chainGaps, controllers, createGrant, gatewayKeys, grantOf, sleep, startGateway, until, untilActive, verifyAudit } from './fault-gateway.js';

let tmp: string;
let mqtt: PrivateServer;
let redis: PrivateServer;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'sp-fault-redis-'));
  [mqtt, redis] = await Promise.all([startMosquitto({ anonymous: true, persistence: true }), startRedis()]);
});
afterAll(async () => {
  await endAll();
  await endServices();
  rmSync(tmp, { recursive: true, force: true });
});

describe('Redis restart (private redis-server SIGKILLed mid-operation, started again on the same data dir)', () => {
  it('answers 503 unavailable meanwhile without crashing, recovers without a gateway restart, keeps the grant, loses no event, and the chains verify', async () => {
    const g = await startGateway({ mqtt, redis, dataDir: join(tmp, 'data'), keys: gatewayKeys(), cwd: tmp });
    const pid = g.proc.pid;
    await until(async () => {
      const cs = await controllers(g);
      return cs.length === 15 && cs.every((c) => c.online && c.appliedVersion === c.desiredVersion) ? true : undefined;
    }, 20_000, 'all demo controllers online');
    const { grant, incidentId } = await createGrant(g, ROUTE, { pin: true, minutes: 10 });
    const active = await untilActive(g, grant.id);

    // A door pulsed for 3 s: it relocks, and reports it, while Redis is down.
    const pulse = await api(g.http, '/api/v1/doors/door-01-1/pulse', { token: g.dispatch, body: { seconds: 3, incidentId } });
    expect(pulse.status, JSON.stringify(pulse.body)).toBe(202);
    const isDoor01 = (i: AuditItem, state: string) => i.type === 'door.state' && i.doorId === 'door-01-1' && (i.data as { state?: string } | undefined)?.state === state;
    await until(async () => ((await allAudit(g)).some((i) => isDoor01(i, 'unlocked')) ? true : undefined), 5_000, 'door-01-1 unlocked in the trail');
    const before = await allAudit(g);

    // Mid-operation: reads and writes in flight while the server dies.
    const inFlight = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? api(g.http, '/api/v1/incidents', { token: g.dispatch }).catch(() => ({ status: 0, body: undefined }))
        : api(g.http, '/api/v1/incidents', { token: g.dispatch, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 } } }).catch(() => ({ status: 0, body: undefined })),
    );
    await redis.kill('SIGKILL');
    const killedAt = Date.now();
    const settled = await Promise.all(inFlight);
    // Each answered: done before the kill, or refused with 503 — none hangs, none is a 500.
    for (const r of settled) expect([200, 201, 503]).toContain(r.status);

    const down = await api<{ error: { code: string } }>(g.http, '/api/v1/incidents', { token: g.dispatch });
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('unavailable');
    const ready = await api<{ error: { code: string; details?: { store?: boolean } } }>(g.http, '/api/v1/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.error).toMatchObject({ code: 'unavailable', details: { store: false } });
    // Past the relock (the controller's event cannot be stored now) and several reconnect attempts.
    await sleep(4_000);
    expect(g.proc.child.exitCode, `the gateway died while Redis was down:\n${g.proc.err().slice(-1500)}`).toBeNull();
    const still = await api<{ error: { code: string } }>(g.http, '/api/v1/incidents', { token: g.dispatch });
    expect(still.status).toBe(503);
    expect(still.body.error.code).toBe('unavailable');

    const restartAt = Date.now();
    await redis.start();
    // Back without a restart: same process, the API answers again.
    const incidents = await until(async () => {
      const r = await api<{ items: { id: string }[] }>(g.http, '/api/v1/incidents', { token: g.dispatch });
      return r.status === 200 ? r.body.items : undefined;
    }, 15_000, 'GET /api/v1/incidents to answer 200 again');
    expect(g.proc.pid).toBe(pid);
    expect(g.proc.child.exitCode).toBeNull();
    expect(incidents.map((i) => i.id)).toContain(incidentId);
    // Ready again too (the broker side may take a moment: an event the gateway could not store
    // made it drop its MQTT connection, so the broker hands the event back on the resumed session).
    await until(async () => ((await api(g.http, '/api/v1/ready')).status === 200 ? true : undefined), 10_000, 'ready again');

    // The grant made before is still there, active and delivered.
    const after = await grantOf(g, grant.id);
    expect(after.status).toBe('active');
    expect(after.notAfter).toBe(active.notAfter);
    expect(after.deliveries.every((d) => d.state === 'delivered')).toBe(true);

    // No event lost: the relock, refused while Redis was down, was redelivered and stored.
    const items = await until(async () => {
      const all = await allAudit(g);
      return all.some((i) => isDoor01(i, 'locked')) ? all : undefined;
    }, 15_000, 'door-01-1 locked (reported while Redis was down) in the trail');
    // Made by the controller while Redis was down; stored only once it was back.
    const locked = items.find((i) => isDoor01(i, 'locked'))!;
    expect((locked.data as { at: number }).at).toBeGreaterThan(killedAt);
    expect((locked.data as { at: number }).at).toBeLessThan(restartAt);
    expect(locked.at).toBeGreaterThanOrEqual(restartAt);
    const byId = new Map(items.map((i) => [i.id, i]));
    for (const i of before) expect(byId.get(i.id), `entry ${i.id} (${i.type})`).toEqual(i);
    expect(chainGaps(items)).toEqual({});
    expect(items.filter((i) => i.type === 'controller.events-missing')).toEqual([]);
    const verdict = await verifyAudit(g);
    expect(verdict, JSON.stringify(verdict)).toMatchObject({ ok: true });
  }, 90_000);
});
