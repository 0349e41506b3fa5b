/**
 * The gateway as production runs it, for fault tests (issue 6, DESIGN §10): `gateway/dist/main.js`
 * as a process on a private Mosquitto (SP_MQTT_URL) and a private Redis (SP_REDIS_URL), its keys
 * from the environment (instances sharing Redis share keys; none are generated), the demo district
 * on (its in-process reference controllers use the same broker). Helpers to drive it over REST and
 * to read what its demo controllers hold on disk.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRawKeyPair, type AuditItem } from '@smart-passage/protocol';
import { expect } from 'vitest';
import { api, sleep, until } from '../../support/http.js';
import { startMain, type Proc } from '../../support/main-process.js';
import type { PrivateServer } from '../../support/services.js';

/** The demo route of Götgatan 78 (bld-01) and a unit with tags (README's walk-through). */
export const ROUTE = { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2', 'door-01-3', 'door-01-4'], unitIds: ['unit-rtj-2310'] };

/** SP_GATEWAY_KEY/KID, SP_AUDIT_KEY/KID, SP_JWT_KEY: made once per scenario, kept across restarts. */
export function gatewayKeys(): Record<string, string> {
  return {
    SP_GATEWAY_KEY: generateRawKeyPair().privateKey,
    SP_GATEWAY_KID: 'gw-fault-1',
    SP_AUDIT_KEY: generateRawKeyPair().privateKey,
    SP_AUDIT_KID: 'audit-fault-1',
    SP_JWT_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

export interface Running {
  proc: Proc;
  http: string;
  dataDir: string;
  /** Access tokens of the demo admin, dispatcher and unit-rtj-2310's responder. */
  admin: string;
  dispatch: string;
  responder: string;
}

export interface GrantView {
  id: string;
  status: string;
  notAfter: number;
  endedAt?: number;
  hasPin: boolean;
  pin?: string;
  deliveries: { controllerId: string; version: number; state: string }[];
}

export interface ControllerView {
  id: string;
  online: boolean;
  boot?: string;
  appliedVersion: number;
  desiredVersion: number;
}

export { api, sleep, until };

/**
 * Start main on the private services with the demo on, read the banner, log in. `cwd` is where the
 * process runs (a temp dir of the test's own); `dataDir` keeps the demo's secrets and controller
 * state files, so a restart on the same one runs the same controllers.
 */
export async function startGateway(o: { mqtt: PrivateServer; redis: PrivateServer; dataDir: string; keys: Record<string, string>; cwd: string }): Promise<Running> {
  const proc = startMain(
    {
      ...o.keys,
      SP_MQTT_URL: o.mqtt.url,
      SP_REDIS_URL: o.redis.url,
      SP_DEMO: 'on',
      SP_PORT: '0',
      SP_DATA_DIR: o.dataDir,
      SP_LOG_LEVEL: 'info',
    },
    o.cwd,
  );
  await until(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`main exited with ${proc.child.exitCode}:\n${proc.err()}`);
      return proc.out().includes('Ctrl-C stops everything') ? true : undefined;
    },
    40_000,
    'the start banner',
    50,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}\n--- stderr ---\n${proc.err().slice(-4000)}`);
  });
  const out = proc.out();
  const http = /API and UI {3}(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
  if (http === undefined) throw new Error('no HTTP URL in the banner');
  const login = async (role: string, username: string) => {
    const password = new RegExp(`^ {2}${username} +${role} +(\\S+)$`, 'm').exec(out)?.[1];
    if (password === undefined) throw new Error(`no password for ${username} in the banner`);
    const r = await api<{ accessToken: string }>(http, '/api/v1/auth/login', { body: { username, password } });
    expect(r.status).toBe(200);
    return r.body.accessToken;
  };
  return {
    proc,
    http,
    dataDir: o.dataDir,
    admin: await login('admin', 'admin'),
    dispatch: await login('dispatcher', 'dispatch'),
    responder: await login('responder', 'responder'),
  };
}

export async function grantOf(g: Running, id: string): Promise<GrantView> {
  const r = await api<GrantView>(g.http, `/api/v1/grants/${id}`, { token: g.dispatch });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

export async function controllerOf(g: Running, id: string): Promise<ControllerView> {
  const r = await api<ControllerView>(g.http, `/api/v1/controllers/${id}`, { token: g.dispatch });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

export async function controllers(g: Running): Promise<ControllerView[]> {
  const r = await api<{ items: ControllerView[] }>(g.http, '/api/v1/controllers?limit=500', { token: g.admin });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.items;
}

/** The controller a door is wired to. */
export async function doorController(g: Running, buildingId: string, doorId: string): Promise<string> {
  const r = await api<{ controllerId: string }>(g.http, `/api/v1/buildings/${buildingId}/doors/${doorId}`, { token: g.admin });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.controllerId;
}

export async function openIncident(g: Running): Promise<string> {
  const inc = await api<{ id: string }>(g.http, '/api/v1/incidents', { token: g.dispatch, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 }, address: 'Götgatan 78' } });
  expect(inc.status, JSON.stringify(inc.body)).toBe(201);
  return inc.body.id;
}

/** Grant `route` under a new incident; returns the grant as created (deliveries pending). */
export async function createGrant(g: Running, route: { buildingId: string; doorIds: string[]; unitIds: string[] }, o: { pin?: boolean; minutes?: number; incidentId?: string } = {}): Promise<{ grant: GrantView; pin?: string; incidentId: string }> {
  const incidentId = o.incidentId ?? (await openIncident(g));
  const created = await api<{ grant: GrantView; pin?: string }>(g.http, `/api/v1/incidents/${incidentId}/grants`, {
    token: g.dispatch,
    body: { ...route, pin: o.pin ?? false, minutes: o.minutes ?? 10 },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return { ...created.body, incidentId };
}

export async function untilActive(g: Running, id: string, ms = 10_000): Promise<GrantView> {
  return until(async () => {
    const v = await grantOf(g, id);
    return v.status === 'active' && v.deliveries.every((d) => d.state === 'delivered') ? v : undefined;
  }, ms, `grant ${id} active and delivered`);
}

/** Every audit entry (all chains, admin's view), oldest first. */
export async function allAudit(g: Running): Promise<AuditItem[]> {
  const out: AuditItem[] = [];
  let cursor: string | undefined;
  for (;;) {
    const r = await api<{ items: AuditItem[]; next?: string }>(g.http, `/api/v1/audit?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { token: g.admin });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    out.push(...r.body.items);
    if (r.body.next === undefined) return out;
    cursor = r.body.next;
  }
}

/** Per chain, the seqs missing between 1 and the highest seen (none trimmed here: retention is off). */
export function chainGaps(items: readonly AuditItem[]): Record<string, number[]> {
  const seqs = new Map<string, number[]>();
  for (const i of items) seqs.set(i.chain, [...(seqs.get(i.chain) ?? []), i.seq]);
  const gaps: Record<string, number[]> = {};
  for (const [chain, list] of seqs) {
    const have = new Set(list);
    const missing: number[] = [];
    for (let s = 1; s <= Math.max(...list); s++) if (!have.has(s)) missing.push(s);
    if (missing.length > 0 || have.size !== list.length) gaps[chain] = missing;
  }
  return gaps;
}

export async function verifyAudit(g: Running): Promise<{ ok: boolean; entries: number; problem?: unknown }> {
  const r = await api<{ ok: boolean; entries: number; problem?: unknown }>(g.http, '/api/v1/audit/verify', { token: g.admin });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body;
}

interface DemoState {
  grants: { grantId: string; notAfter: number }[];
  backlog: string[];
  appliedVersion: number;
}

/** What a demo controller holds in its state file (what it enforces on its own); no file yet = nothing. */
export function demoState(dataDir: string, ctrl: string): DemoState {
  const file = join(dataDir, 'demo', 'state', `${ctrl}.json`);
  if (!existsSync(file)) return { grants: [], backlog: [], appliedVersion: 0 };
  return JSON.parse(readFileSync(file, 'utf8')) as DemoState;
}
