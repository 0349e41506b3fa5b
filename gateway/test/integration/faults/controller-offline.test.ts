// Issue 6, fault "a controller offline for the whole grant" (DESIGN §4 flow 7, §10: grants queue
// as desired state; the birth brings the full set; expiry happens on the controller itself). A
// controller is registered through the admin API and a door put on it, but nothing runs it; a
// one-minute grant (the API's minimum) stays pending. Then the reference controller CLI
// (protocol/dist/cli/controller.js) runs from the provisioning bundle as a process of this test:
// the grant is delivered on its birth, and at notAfter both the gateway and the controller drop it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ProvisioningBundle } from '@smart-passage/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endAll } from '../../support/main-process.js';
import { endServices, startMosquitto, startRedis, type PrivateServer } from '../../support/services.js';
import { api, controllerOf, createGrant, gatewayKeys, grantOf, sleep, startGateway, until } from './fault-gateway.js';

const CONTROLLER_CLI = fileURLToPath(new URL('../../../../protocol/dist/cli/controller.js', import.meta.url));

let tmp: string;
let mqtt: PrivateServer;
let redis: PrivateServer;
let cli: ChildProcess | undefined;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'sp-fault-offline-'));
  [mqtt, redis] = await Promise.all([startMosquitto({ anonymous: true, persistence: true }), startRedis()]);
});
afterAll(async () => {
  // The controller process, by its PID (SIGTERM: it says goodbye), then the gateway and services.
  if (cli?.pid !== undefined && cli.exitCode === null && cli.signalCode === null) {
    const exited = new Promise((r) => cli?.once('exit', r));
    process.kill(cli.pid, 'SIGTERM');
    const timer = setTimeout(() => cli?.pid !== undefined && process.kill(cli.pid, 'SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }
  await endAll();
  await endServices();
  rmSync(tmp, { recursive: true, force: true });
});

/** The CLI's stdout as JSON lines, and a way to wait for one. */
function jsonLines(child: ChildProcess) {
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON: a banner line
    }
  });
  return {
    lines,
    next: (match: (v: Record<string, unknown>) => boolean, ms: number, what: string, from = 0) =>
      until(() => lines.slice(from).find(match), ms, what, 50),
  };
}

describe('a controller offline for the whole grant (reference controller CLI started late)', () => {
  it('queues the grant, delivers it on the birth, and both sides expire it on time', async () => {
    const g = await startGateway({ mqtt, redis, dataDir: join(tmp, 'data'), keys: gatewayKeys(), cwd: tmp });

    // Register a controller and wire a new door of Götgatan 78 to it; nothing runs it yet.
    const reg = await api<ProvisioningBundle>(g.http, '/api/v1/controllers', { token: g.admin, body: { buildingId: 'bld-01', vendor: 'fault-test', doors: [{ ref: 'side', name: 'Sidoentré' }] } });
    expect(reg.status, JSON.stringify(reg.body)).toBe(201);
    const bundle = reg.body;
    expect(bundle.mqtt.url).toBe(mqtt.url);
    const ctrl = bundle.controllerId;
    const door = await api<{ id: string }>(g.http, '/api/v1/buildings/bld-01/doors', {
      token: g.admin,
      body: { name: 'Sidoentré', kind: 'entrance', routeOrder: 1, controllerId: ctrl, ref: 'side' },
    });
    expect(door.status, JSON.stringify(door.body)).toBe(201);

    const { grant } = await createGrant(g, { buildingId: 'bld-01', doorIds: [door.body.id], unitIds: ['unit-rtj-2310'] }, { minutes: 1 });
    expect(grant.deliveries).toEqual([expect.objectContaining({ controllerId: ctrl, state: 'pending' })]);
    // Queued: the controller is offline, and the delivery stays pending however long we wait.
    await sleep(3_000);
    expect((await controllerOf(g, ctrl)).online).toBe(false);
    const queued = await grantOf(g, grant.id);
    expect(queued.status).toBe('pending');
    expect(queued.deliveries.map((d) => d.state)).toEqual(['pending']);

    // Now the controller comes up, from its bundle.
    const bundleFile = join(tmp, `${ctrl}.bundle.json`);
    writeFileSync(bundleFile, JSON.stringify(bundle), { mode: 0o600 });
    cli = spawn(process.execPath, [CONTROLLER_CLI, '--bundle', bundleFile, '--state', join(tmp, `${ctrl}.state.json`), '--log-level', 'warn'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr?.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const out = jsonLines(cli);
    await out.next((v) => v.event === 'connected', 10_000, `the controller connected (stderr: ${stderr})`);
    await out.next((v) => v.event === 'applied', 10_000, 'the controller applied a set after its birth');

    const delivered = await until(async () => {
      const v = await grantOf(g, grant.id);
      return v.status === 'active' ? v : undefined;
    }, 10_000, 'the grant active (delivered on the birth)');
    expect(delivered.deliveries.map((d) => d.state)).toEqual(['delivered']);
    const status = (from: number) => {
      cli?.stdin?.write('status\n');
      return out.next((v) => v.cmd === 'status', 5_000, 'status', from);
    };
    const held = (await status(out.lines.length)) as { grants: { grantId: string; notAfter: number }[] };
    expect(held.grants.map((x) => x.grantId)).toEqual([grant.id]);
    expect(held.grants[0]?.notAfter).toBe(grant.notAfter);

    // At notAfter: the controller drops it by itself, and the gateway marks it expired.
    const mark = out.lines.length;
    const expiredLine = await out.next(
      (v) => v.event === 'expired' && Array.isArray(v.grantIds) && v.grantIds.includes(grant.id),
      grant.notAfter - Date.now() + 5_000,
      'the controller to expire the grant itself',
      mark,
    );
    expect(expiredLine).toBeDefined();
    expect(Date.now()).toBeGreaterThanOrEqual(grant.notAfter);
    const ended = await until(async () => {
      const v = await grantOf(g, grant.id);
      return v.status === 'expired' ? v : undefined;
    }, 5_000, 'the grant expired in the gateway');
    expect((ended.endedAt ?? 0) - grant.notAfter).toBeGreaterThanOrEqual(0);
    expect((ended.endedAt ?? 0) - grant.notAfter).toBeLessThanOrEqual(1_500);
    const after = (await status(out.lines.length)) as { grants: { grantId: string }[] };
    expect(after.grants.map((x) => x.grantId)).not.toContain(grant.id);
    // …and the gateway's fresh set without it (defence in depth) reached the controller.
    await until(async () => {
      const c = await controllerOf(g, ctrl);
      return c.online && c.appliedVersion === c.desiredVersion ? true : undefined;
    }, 10_000, 'the controller on its desired version after the expiry');
  }, 110_000);
});
