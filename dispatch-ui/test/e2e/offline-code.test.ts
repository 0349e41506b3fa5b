// Issue 8 in the built UI: a route door's controller goes offline and the dispatcher's incident
// panel says "controller offline — give the crew code NNNN NNNN for door X, valid until HH:MM";
// that code, typed at the door of the (offline) reference controller, opens it once; when the
// controller is back the line goes away and the use is in the audit trail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvisioningBundle } from '@smart-passage/protocol';
import { FileStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import { api, apiLogin, login, pageErrors, shot, useE2e } from './support/index.js';

const e2e = useE2e();
const CTRL = 'ctl-e2e-offline';
const dir = mkdtempSync(join(tmpdir(), 'sp-e2e-offline-'));
let ctl: ReferenceController | undefined;
let incidentId = '';

beforeAll(async () => {
  const admin = await apiLogin(e2e.gw, 'admin');
  const bundle = await api<ProvisioningBundle>(e2e.gw, admin, 'POST', '/api/v1/controllers', { id: CTRL, buildingId: 'bld-01', vendor: 'reference', doors: [{ ref: 'back' }] });
  await api(e2e.gw, admin, 'POST', '/api/v1/buildings/bld-01/doors', { id: 'door-e2e-back', name: 'Back door', kind: 'entrance', routeOrder: 12, controllerId: CTRL, ref: 'back', emergency: true });
  ctl = new ReferenceController({ bundle, store: new FileStateStore(join(dir, 'state.json')) });
  await ctl.start();
  const dispatch = await apiLogin(e2e.gw, 'dispatch');
  incidentId = (await api<{ id: string }>(e2e.gw, dispatch, 'POST', '/api/v1/incidents', { kind: 'fire', ref: 'E2E-OFFLINE', location: { lat: 59.3135, lng: 18.0718 } })).id;
  const { grant } = await api<{ grant: { id: string } }>(e2e.gw, dispatch, 'POST', `/api/v1/incidents/${incidentId}/grants`, { buildingId: 'bld-01', doorIds: ['door-e2e-back'], unitIds: ['unit-rtj-2310'], minutes: 30 });
  for (let t0 = Date.now(); !ctl.grants.some((g) => g.grantId === grant.id); ) {
    if (Date.now() - t0 > 20_000) throw new Error('the grant never reached the controller');
    await new Promise((r) => setTimeout(r, 100));
  }
}, 60_000);

afterAll(async () => {
  await ctl?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('dispatcher: offline emergency code', () => {
  it('shows the code for the offline door, the code opens it once, and the line goes when the controller is back', async () => {
    const page = await e2e.page();
    await login(page, 'dispatch');
    await page.getByTestId(`incident-${incidentId}`).click();
    await page.getByTestId('door-state-door-e2e-back').waitFor();
    expect(await page.getByTestId('offline-code-door-e2e-back').count()).toBe(0);

    ctl!.goOffline();
    const line = page.getByTestId('offline-code-door-e2e-back');
    await line.waitFor({ timeout: 20_000 });
    const text = (await line.textContent()) ?? '';
    const m = /controller offline — give the crew code (\d{4}) (\d{4}) for door Back door, valid until (\d\d):(\d\d)/.exec(text);
    expect(m, text).not.toBeNull();
    await shot(page, 'dispatch-offline-code');

    // What the dispatcher read out, typed at the door of the offline controller.
    const code = `${m![1]}${m![2]}`;
    expect(ctl!.presentCode('back', code)).toEqual({ result: 'granted', reason: 'offline-code' });
    expect(ctl!.presentCode('back', code)).toEqual({ result: 'denied', reason: 'spent' });

    await ctl!.goOnline();
    await line.waitFor({ state: 'detached', timeout: 20_000 });
    const admin = await apiLogin(e2e.gw, 'admin');
    for (let t0 = Date.now(); ; ) {
      const { items } = await api<{ items: { controllerId?: string; data?: Record<string, unknown> }[] }>(e2e.gw, admin, 'GET', '/api/v1/audit?buildingId=bld-01&type=access.granted&limit=1000');
      if (items.some((e) => e.controllerId === CTRL && e.data?.['credential'] === 'offline-code')) break;
      if (Date.now() - t0 > 20_000) throw new Error('the offline-code use never reached the audit trail');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(e2e.gw.output()).not.toContain(code);
    expect(pageErrors(page)).toEqual([]);
  }, 90_000);
});
