// Prometheus metrics at GET /metrics (issue 6): off (404) without SP_METRICS_TOKEN, 401 without the
// right bearer token, and with it the exposition moves with a grant flow on the demo district —
// with no secret, id or URL in any label.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controllerTopic, silentLogger } from '@smart-passage/protocol';
import { PasswordHasher } from '../../src/features/auth/passwords.js';
import { Gateway } from '../../src/gateway.js';

const PASSWORDS = { admin: 'metrics-admin-pw', dispatch: 'metrics-dispatch-pw', responder: 'metrics-responder-pw', amb3010: 'metrics-amb-pw', owner: 'metrics-owner-pw', 'owner-brf': 'metrics-brf-pw' };
const TOKEN = 'metrics-test-token-4f1d9a7c2b8e';
const dirs: string[] = [];
let gw: Gateway;
let off: Gateway;

function gateway(o: { demo: boolean; metricsToken?: string }): Gateway {
  const dir = mkdtempSync(join(tmpdir(), 'sp-metrics-'));
  dirs.push(dir);
  return new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: o.demo,
    ...(o.demo ? { demoPasswords: PASSWORDS } : {}),
    ...(o.metricsToken !== undefined ? { metricsToken: o.metricsToken } : {}),
    env: {},
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
}

beforeAll(async () => {
  gw = gateway({ demo: true, metricsToken: TOKEN });
  off = gateway({ demo: false });
  await Promise.all([gw.start(), off.start()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([gw.stop(), off.stop()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function api(path: string, o: { token?: string; body?: unknown; method?: string } = {}) {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & { error?: { code: string } } };
}

async function login(username: keyof typeof PASSWORDS): Promise<string> {
  const r = await api('/api/v1/auth/login', { body: { username, password: PASSWORDS[username] } });
  expect(r.status).toBe(200);
  return r.body.accessToken as string;
}

const until = async (cond: () => Promise<boolean> | boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format 0.0.4, strictly: every line a comment, a blank, or a sample. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    const raw = m[2] ?? '';
    const pair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let p: RegExpExecArray | null;
    let consumed = 0;
    while ((p = pair.exec(raw)) !== null) {
      labels[p[1]!] = p[2]!;
      consumed = pair.lastIndex;
    }
    if (consumed !== raw.length) throw new Error(`bad labels: ${line}`);
    // Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes `Nan`).
    const word = m[3]!.toLowerCase();
    const value = word === '+inf' || word === 'inf' ? Infinity : word === '-inf' ? -Infinity : word === 'nan' ? NaN : Number(m[3]);
    if (Number.isNaN(value) && word !== 'nan') throw new Error(`bad value: ${line}`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { samples, types };
}

async function scrape() {
  const res = await fetch(`${gw.httpUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const parsed = parseExposition(text);
  const value = (name: string, labels: Record<string, string> = {}) =>
    parsed.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
  return { text, ...parsed, value };
}

describe('GET /metrics', () => {
  it('is off (404) without SP_METRICS_TOKEN, whatever the request carries', async () => {
    for (const headers of [{}, { authorization: `Bearer ${TOKEN}` }] as Record<string, string>[]) {
      const res = await fetch(`${off.httpUrl}/metrics`, { headers });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not-found');
    }
    expect(off.prometheus).toBeUndefined();
  });

  it('answers 401 without the right bearer token', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-000000000000', `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
      const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
      const res = await fetch(`${gw.httpUrl}/metrics`, { headers });
      expect(res.status, authorization).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      const body = await res.text();
      expect(body).not.toContain('sp_');
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'unauthenticated' } });
    }
    // The scheme is case-insensitive (RFC 7235 §2.1); the token is not.
    expect((await fetch(`${gw.httpUrl}/metrics`, { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${gw.httpUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN.toUpperCase()}` } })).status).toBe(401);
    // Not under the API, so not in its document either.
    expect((await fetch(`${gw.httpUrl}/api/v1/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
  });

  it('moves with a grant flow: grants, deliveries, latency, events, rejected messages, presence, sockets, audit, HTTP', async () => {
    const before = await scrape();
    expect(before.types.get('sp_grants_total')).toBe('counter');
    expect(before.types.get('sp_grant_delivery_latency_seconds')).toBe('histogram');
    expect(before.types.get('sp_controllers_online')).toBe('gauge');
    expect(before.types.has('process_cpu_user_seconds_total')).toBe(true);

    const token = await login('dispatch');
    const socket: Socket = io(gw.httpUrl, { auth: { token }, transports: ['websocket'], reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('snapshot', () => resolve());
      socket.once('connect_error', reject);
    });
    await until(async () => (await gw.store.list('controllerLive', { limit: 100 })).filter((l) => l.online).length === 15);

    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 }, address: 'Götgatan 78' } });
    expect(inc.status).toBe(201);
    const created = await api(`/api/v1/incidents/${String(inc.body.id)}/grants`, {
      token,
      body: { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2', 'door-01-3', 'door-01-4'], unitIds: ['unit-rtj-2310'], pin: true, minutes: 20 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const pin = created.body.pin as string;
    const grant = created.body.grant as { id: string };
    await until(async () => (await api(`/api/v1/grants/${grant.id}`, { token })).body.status === 'active');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'granted' });
    expect((await api(`/api/v1/grants/${grant.id}/extend`, { token, body: { minutes: 5 } })).status).toBe(200);

    // Dropped on purpose (PROTOCOL §9): not JSON on a registered controller's topic, and a topic
    // of no registered controller. The gateway's own account may publish under the root.
    await gw.client.publishAsync(controllerTopic('ctl-sofa-01', 'evt'), `not json ${PASSWORDS.dispatch}`, { qos: 1 });
    await gw.client.publishAsync(controllerTopic('ctl-nobody-here', 'evt'), '{}', { qos: 1 });
    // A URL no route has: counted as `unmatched`, never by its path.
    expect((await api('/api/v1/no-such-route/secret-looking-path')).status).toBe(404);

    let after = await scrape();
    await until(async () => {
      after = await scrape();
      return (
        after.value('sp_mqtt_messages_rejected_total', { code: 'malformed' }) >= 1 &&
        after.value('sp_mqtt_messages_rejected_total', { code: 'unknown-controller' }) >= 1 &&
        after.value('sp_controller_events_total', { kind: 'access' }) >= 1 &&
        after.value('sp_grant_deliveries_confirmed_total') >= 4
      );
    });

    expect(after.value('sp_grants_total', { kind: 'created' })).toBeGreaterThanOrEqual(1);
    expect(after.value('sp_grants_total', { kind: 'extended' })).toBeGreaterThanOrEqual(1);
    // Two controllers hold the route: the creation's two deliveries are timed, the extension's two
    // re-deliveries only counted (their latency is not the grant's first).
    expect(after.value('sp_grant_deliveries_confirmed_total')).toBe(4);
    expect(after.value('sp_grant_delivery_latency_seconds_count')).toBe(2);
    expect(after.value('sp_grant_delivery_latency_seconds_sum')).toBeGreaterThan(0);
    expect(after.value('sp_grant_delivery_latency_seconds_bucket', { le: '10' })).toBe(after.value('sp_grant_delivery_latency_seconds_count'));
    expect(after.value('sp_controllers_online')).toBe(15);
    expect(after.value('sp_socket_connections')).toBe(1);
    expect(after.value('sp_audit_entries_appended_total')).toBeGreaterThan(before.value('sp_audit_entries_appended_total'));
    expect(after.value('sp_http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/incidents/{id}/grants', status_class: '2xx' })).toBe(1);
    expect(after.value('sp_http_request_duration_seconds_count', { route: 'unmatched', status_class: '4xx' })).toBeGreaterThanOrEqual(1);
    expect(after.value('sp_http_request_duration_seconds_count', { route: '/metrics', status_class: '4xx' })).toBeGreaterThanOrEqual(1);

    // No secret, id or URL in any label: label values come from fixed lists and route templates.
    const secrets = [...Object.values(PASSWORDS), TOKEN, pin, grant.id, String(inc.body.id), 'ctl-', 'secret-looking-path', 'F1231001'];
    for (const s of after.samples) {
      for (const v of Object.values(s.labels)) for (const secret of secrets) expect(v, `${s.name} ${v}`).not.toContain(secret);
    }
    for (const secret of [...Object.values(PASSWORDS), TOKEN]) expect(after.text).not.toContain(secret);
    const routes = new Set(after.samples.filter((s) => s.name === 'sp_http_request_duration_seconds_count').map((s) => s.labels.route));
    for (const r of routes) expect(r === 'unmatched' || r === 'static' || r === '/metrics' || r?.startsWith('/api/v1/'), r).toBe(true);

    socket.close();
    expect((await api(`/api/v1/grants/${grant.id}/revoke`, { token, method: 'POST' })).status).toBe(200);
    expect((await scrape()).value('sp_grants_total', { kind: 'revoked' })).toBeGreaterThanOrEqual(1);
  });
});
