// Issue 5 end to end: the built UI served by a real gateway process with the demo district, in
// Debian's Chromium. A dispatcher grants a route and watches the doors turn delivered; a tag
// presented through the simulator (a separate process on a controller registered for this test,
// ended by its PID) shows in the incident's feed; the building's owner sees it in the log and
// exports a CSV that verifies; another owner sees nothing of it; the responder's phone page shows
// the grant and its PIN. A screenshot of each view lands in test-artifacts/e2e/.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trustedKeys, verifyAuditExport } from '@smart-passage/protocol';
import { api, apiLogin, login, pageErrors, shot, useE2e } from './support/index.js';

const SIMULATOR = fileURLToPath(new URL('../../../protocol/dist/cli/simulator.js', import.meta.url));
const TAG = 'F1231001'; // a tag of unit RTJ 2310 in the demo district
const e2e = useE2e();
const dir = mkdtempSync(join(tmpdir(), 'sp-e2e-sim-'));
let sim: ChildProcess | undefined;
let simOut = '';

beforeAll(async () => {
  // A controller of our own on Götgatan 78, with one emergency door, run by the simulator.
  const admin = await apiLogin(e2e.gw, 'admin');
  const bundle = await api(e2e.gw, admin, 'POST', '/api/v1/controllers', { id: 'ctl-e2e-01', buildingId: 'bld-01', vendor: 'simulator', doors: [{ ref: 'side', name: 'Side door' }] });
  writeFileSync(join(dir, 'ctl-e2e-01.json'), JSON.stringify(bundle), { mode: 0o600 });
  await api(e2e.gw, admin, 'POST', '/api/v1/buildings/bld-01/doors', { id: 'door-e2e-1', name: 'Side door (simulated)', kind: 'entrance', routeOrder: 9, controllerId: 'ctl-e2e-01', ref: 'side', emergency: true });
  sim = spawn(process.execPath, [SIMULATOR, '--bundles', dir, '--tags', TAG, '--rate', '2', '--data-dir', join(dir, 'sim'), '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  sim.stdout?.on('data', (c: Buffer) => (simOut += c.toString()));
  sim.stderr?.on('data', (c: Buffer) => (simOut += c.toString()));
  // Its birth reaches the gateway: the controller is online.
  for (let t0 = Date.now(); !(await api<{ online?: boolean }>(e2e.gw, admin, 'GET', '/api/v1/controllers/ctl-e2e-01')).online; ) {
    if (Date.now() - t0 > 20_000) throw new Error(`the simulated controller did not come online:\n${simOut}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}, 60_000);

afterAll(async () => {
  const pid = sim?.pid;
  if (pid !== undefined && sim?.exitCode === null) {
    const exited = new Promise((r) => sim?.once('exit', r));
    process.kill(pid, 'SIGTERM');
    const t = setTimeout(() => process.kill(pid, 'SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
  rmSync(dir, { recursive: true, force: true });
});

let grantId = '';
let pin = '';

describe('issue 5 end to end', () => {
  it('dispatcher: finds the building, grants the route, sees every door delivered and the simulated tag used in the feed', async () => {
    const page = await e2e.page();
    await login(page, 'dispatch');
    await page.getByTestId('building-search').fill('Götgatan 78');
    await page.getByTestId('building-bld-01').click();
    await page.getByTestId('route-door-door-e2e-1').waitFor();
    await shot(page, 'dispatch-building-card');
    await page.getByTestId('unit-unit-rtj-2310').locator('input').check();
    await page.getByTestId('grant-pin').check();
    await page.getByTestId('grant-button').click();
    const dialog = page.getByTestId('pin-dialog');
    await dialog.waitFor();
    pin = ((await dialog.getByTestId('pin-value').textContent()) ?? '').replace(/\D/g, '');
    expect(pin).toMatch(/^\d{6}$/);
    await shot(page, 'dispatch-pin-once');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });

    const token = await apiLogin(e2e.gw, 'dispatch');
    const incidents = await api<{ items: { id: string; buildingIds: string[]; status: string }[] }>(e2e.gw, token, 'GET', '/api/v1/incidents?status=open');
    const incident = incidents.items.find((i) => i.buildingIds.includes('bld-01'));
    expect(incident).toBeDefined();
    const detail = await api<{ grants: { id: string }[] }>(e2e.gw, token, 'GET', `/api/v1/incidents/${incident!.id}`);
    grantId = detail.grants[0]!.id;

    // pending → delivered on every door of the route, live.
    for (const door of ['door-01-1', 'door-01-2', 'door-e2e-1']) {
      await expect.poll(() => page.getByTestId(`door-state-${door}`).textContent(), { timeout: 20_000 }).toMatch(/delivered|used/);
    }
    // The simulator presents the tag at the side door: granted, in the feed, the door "used".
    await expect.poll(() => page.getByTestId('door-state-door-e2e-1').textContent(), { timeout: 20_000 }).toMatch(/used/);
    await expect.poll(async () => (await page.getByTestId('feed-item').allTextContents()).join('\n'), { timeout: 20_000 }).toMatch(/granted/i);
    await shot(page, 'dispatch-incident-live');
    expect(pageErrors(page)).toEqual([]);
  }, 90_000);

  it('owner of the building: sees the entry in the log, exports a CSV that verifies against the audit key', async () => {
    const page = await e2e.page();
    await login(page, 'owner');
    await page.goto(`${e2e.gw.url}/#/owner`);
    await expect.poll(async () => (await page.getByTestId('audit-row').allTextContents()).join('\n'), { timeout: 20_000 }).toMatch(/granted/i);
    await shot(page, 'owner-log');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    const file = join(dir, 'export.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    expect(csv).toContain('access.granted');
    expect(csv).toContain(grantId);
    const token = await apiLogin(e2e.gw, 'owner');
    const keys = await api<{ keys: { kid: string; publicKey: string }[] }>(e2e.gw, token, 'GET', '/api/v1/audit/keys');
    const verdict = verifyAuditExport(csv, { keys: trustedKeys(keys.keys) });
    expect(verdict.ok, JSON.stringify(verdict)).toBe(true);
    expect(csv).not.toContain(pin);
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);

  it('another owner: sees nothing of it', async () => {
    const page = await e2e.page();
    await login(page, 'owner-brf');
    await page.goto(`${e2e.gw.url}/#/owner`);
    await page.getByTestId('export-csv').waitFor();
    // Give the log time to load and the live feed time to bring anything it would.
    await page.waitForTimeout(1500);
    const rows = (await page.getByTestId('audit-row').allTextContents()).join('\n');
    expect(rows).not.toContain(grantId);
    expect(rows).not.toMatch(/Götgatan 78|Side door \(simulated\)/);
    expect(await page.content()).not.toContain(grantId);
    await shot(page, 'owner-other-org');
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);

  it('responder (phone): the unit\'s grant with its doors, time left and the PIN', async () => {
    const page = await e2e.page({ viewport: { width: 390, height: 844 } });
    await login(page, 'responder');
    const card = page.getByTestId('my-grant').first();
    await card.waitFor({ timeout: 20_000 });
    expect(await card.textContent()).toContain('Götgatan 78');
    expect(((await page.getByTestId('my-pin').first().textContent()) ?? '').replace(/\D/g, '')).toBe(pin);
    await shot(page, 'responder-phone');
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);

  it('admin: the admin view opens with the registered controller live', async () => {
    const page = await e2e.page();
    await login(page, 'admin');
    await page.goto(`${e2e.gw.url}/#/admin/controllers`);
    await expect.poll(async () => (await page.content()).includes('ctl-e2e-01'), { timeout: 20_000 }).toBe(true);
    await shot(page, 'admin-controllers');
    expect(pageErrors(page)).toEqual([]);
    expect(simOut).not.toMatch(/error/i);
  }, 60_000);
});
