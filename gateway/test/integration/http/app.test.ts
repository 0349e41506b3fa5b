// The HTTP framework against a real server on an ephemeral port, spoken to with fetch.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import type { Logger, LogFields } from '@smart-passage/protocol';
import { ROLES, type Role } from '../../../src/domain/types.js';
import { AppError } from '../../../src/errors.js';
import { createHttpApp, type Readiness } from '../../../src/http/app.js';
import { RawReply, route, type AuthRequest, type Principal } from '../../../src/http/routes.js';

const TOKEN_SECRET = 'tok-s3cr3t-never-logged';
const ALLOWED = 'https://dispatch.example.org';

/** Test auth: `Authorization: Bearer tok-s3cr3t-never-logged role user [org]`. */
function authenticate(req: AuthRequest): Promise<Principal> {
  const h = req.headers.authorization;
  if (h === `Bearer ${TOKEN_SECRET} expired`) return Promise.reject(AppError.tokenExpired());
  const m = h?.match(/^Bearer (\S+) (\S+) (\S+)(?: (\S+))?$/);
  if (!m || m[1] !== TOKEN_SECRET || !ROLES.includes(m[2] as Role)) return Promise.reject(AppError.unauthenticated());
  return Promise.resolve({ role: m[2] as Role, userId: m[3]!, ...(m[4] ? { orgId: m[4] } : {}) });
}
const as = (role: Role, user = 'u1', org?: string) => ({ authorization: `Bearer ${TOKEN_SECRET} ${role} ${user}${org ? ` ${org}` : ''}` });

const LatLng = Type.Object({ lat: Type.Number({ minimum: -90, maximum: 90 }), lng: Type.Number({ minimum: -180, maximum: 180 }) });

const routes = [
  route({
    method: 'get',
    path: '/api/v1/things',
    summary: 'Public list with a typed query',
    auth: 'public',
    query: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })), id: Type.Optional(Type.Array(Type.String())) }),
    responses: { 200: Type.Object({ limit: Type.Integer(), ids: Type.Array(Type.String()), principal: Type.Boolean() }) },
    handler: ({ query, principal }) => Promise.resolve({ limit: query.limit ?? 0, ids: query.id ?? [], principal: principal !== undefined }),
  }),
  route({
    method: 'get',
    path: '/api/v1/incidents',
    summary: 'Dispatcher-only',
    auth: ['admin', 'dispatcher'],
    responses: { 200: Type.Object({ by: Type.String(), role: Type.String() }) },
    handler: ({ principal, log }) => {
      log.info('listing incidents', { userId: principal.userId });
      return Promise.resolve({ by: principal.userId, role: principal.role });
    },
  }),
  route({
    method: 'get',
    path: '/api/v1/buildings/{buildingId}',
    summary: 'Owner-only, with a path parameter',
    auth: ['owner'],
    params: Type.Object({ buildingId: Type.String({ pattern: '^b-[a-z0-9]{1,8}$' }) }),
    responses: { 200: Type.Object({ id: Type.String(), orgId: Type.String() }) },
    errors: ['not-found'],
    handler: ({ params, principal }) => {
      if (params.buildingId === 'b-missing') throw AppError.notFound('building');
      return Promise.resolve({ id: params.buildingId, orgId: principal.orgId ?? '' });
    },
  }),
  route({
    method: 'post',
    path: '/api/v1/incidents',
    summary: 'Open an incident (a body)',
    auth: ['dispatcher'],
    body: Type.Object({
      kind: Type.String({ minLength: 1, maxLength: 40 }),
      location: LatLng,
      note: Type.Optional(Type.String({ maxLength: 200_000 })),
      priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 3, default: 2 })),
    }),
    responses: { 201: Type.Object({ id: Type.String(), kind: Type.String(), priority: Type.Integer() }) },
    handler: ({ body, setHeader }) => {
      setHeader('Location', '/api/v1/incidents/i-1');
      return Promise.resolve({ id: 'i-1', kind: body.kind, priority: body.priority ?? 0 });
    },
  }),
  route({
    method: 'delete',
    path: '/api/v1/incidents/{id}',
    summary: 'No content',
    auth: ['dispatcher'],
    params: Type.Object({ id: Type.String() }),
    responses: { 204: null },
    handler: () => Promise.resolve(),
  }),
  route({
    method: 'get',
    path: '/api/v1/export.csv',
    summary: 'A raw reply',
    auth: ['admin'],
    responses: { 200: Type.String() },
    handler: () => Promise.resolve(new RawReply('text/csv', 'a,b\n1,2\n', { 'Content-Disposition': 'attachment; filename="x.csv"' })),
  }),
  route({
    method: 'get',
    path: '/api/v1/boom/store',
    summary: 'Store down',
    auth: 'public',
    responses: { 200: Type.Object({}) },
    handler: () => {
      const err = new Error('store unavailable: connect ECONNREFUSED 127.0.0.1:6379');
      err.name = 'StoreUnavailableError';
      return Promise.reject(err);
    },
  }),
  route({
    method: 'get',
    path: '/api/v1/boom/conflict',
    summary: 'Duplicate',
    auth: 'public',
    responses: { 200: Type.Object({}) },
    handler: () => Promise.reject(Object.assign(new Error('users: username already taken'), { name: 'StoreConflictError', collection: 'users', field: 'username' })),
  }),
  route({
    method: 'get',
    path: '/api/v1/leaky',
    summary: 'Returns more than its closed schema allows',
    auth: 'public',
    responses: { 200: Type.Object({ id: Type.String() }, { additionalProperties: false }) },
    handler: () => Promise.resolve({ id: 'u1', passwordHash: 'scrypt$leak' } as { id: string }),
  }),
  route({
    method: 'get',
    path: '/api/v1/boom/bug',
    summary: 'A bug',
    auth: 'public',
    responses: { 200: Type.Object({}) },
    handler: () => Promise.reject(new TypeError('db password hunter2 in a message')),
  }),
];

let base = '';
let server: Server | undefined;
let readiness: Readiness = { store: true, broker: true };
let probe: () => Promise<Readiness> = () => Promise.resolve(readiness);
const lines: string[] = [];
const record =
  (level: string) =>
  (msg: string, fields?: LogFields): void => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
  };
const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
const staticDir = mkdtempSync(join(tmpdir(), 'sp-http-'));

beforeAll(async () => {
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>Smart Passage</title>');
  mkdirSync(join(staticDir, 'assets'));
  writeFileSync(join(staticDir, 'assets', 'app-abc123.js'), 'console.log(1)');
  const app = createHttpApp({
    routes,
    authenticate,
    ready: () => probe(),
    readyTimeoutMs: 200,
    checkResponses: true,
    logger,
    corsOrigins: [ALLOWED],
    staticDir,
    mapTileHosts: ['https://tile.openstreetmap.org'],
    trustProxy: 'loopback',
  });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  if (server !== undefined) await new Promise<void>((resolve, reject) => server!.close((err) => (err ? reject(err) : resolve())));
  rmSync(staticDir, { recursive: true, force: true });
});

interface ErrorJson {
  error: { code: string; message: string; details?: { in: string; path: string; message: string }[] & Record<string, unknown> };
}
async function call(path: string, init: RequestInit = {}): Promise<{ res: Response; json: ErrorJson & Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  return { res, json: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : { text }) as ErrorJson & Record<string, unknown> };
}
const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  call(path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...as('dispatcher'), ...headers } });
const fields = (json: ErrorJson) => (json.error.details ?? []).map((d) => `${d.in}:${d.path}`).sort();

describe('built-in routes', () => {
  it('answers health, readiness and the OpenAPI document', async () => {
    const health = await call('/api/v1/health');
    expect(health.res.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });

    expect((await call('/api/v1/ready')).json).toEqual({ status: 'ready', store: true, broker: true });
    readiness = { store: false, broker: true };
    const down = await call('/api/v1/ready');
    readiness = { store: true, broker: true };
    expect(down.res.status).toBe(503);
    expect(down.res.headers.get('retry-after')).toBe('5');
    expect(down.json.error).toEqual({ code: 'unavailable', message: 'not ready', details: { store: false, broker: true } });

    probe = () => Promise.reject(new Error('redis down'));
    expect((await call('/api/v1/ready')).json.error.details).toEqual({ store: false, broker: false });
    probe = () => new Promise<Readiness>(() => undefined); // never answers
    const hung = await call('/api/v1/ready');
    probe = () => Promise.resolve(readiness);
    expect([hung.res.status, hung.json.error.code]).toEqual([503, 'unavailable']);

    const doc = await call('/api/v1/openapi.json');
    expect(doc.res.status).toBe(200);
    expect(doc.json['openapi']).toBe('3.1.0');
    const paths = doc.json['paths'] as Record<string, Record<string, unknown>>;
    for (const r of routes) expect(paths[r.path]?.[r.method], r.path).toBeDefined();
    expect(paths['/api/v1/health']?.['get']).toBeDefined();
  });
});

describe('authentication and roles', () => {
  it('401 without or with a bad token, token-expired, 403 for a wrong role', async () => {
    const none = await call('/api/v1/incidents');
    expect(none.res.status).toBe(401);
    expect(none.json.error.code).toBe('unauthenticated');
    expect((await call('/api/v1/incidents', { headers: { authorization: 'Bearer nope dispatcher u1' } })).res.status).toBe(401);
    const expired = await call('/api/v1/incidents', { headers: { authorization: `Bearer ${TOKEN_SECRET} expired` } });
    expect([expired.res.status, expired.json.error.code]).toEqual([401, 'token-expired']);
    const wrong = await call('/api/v1/incidents', { headers: as('owner') });
    expect([wrong.res.status, wrong.json.error.code]).toEqual([403, 'forbidden']);
    const ok = await call('/api/v1/incidents', { headers: as('dispatcher', 'd7') });
    expect(ok.json).toEqual({ by: 'd7', role: 'dispatcher' });
  });

  it('checks the role before validating, so strangers learn nothing of the schema', async () => {
    const r = await call('/api/v1/buildings/NOT_VALID');
    expect(r.res.status).toBe(401);
    const r2 = await post('/api/v1/incidents', '{"bad":1}', as('responder'));
    expect(r2.res.status).toBe(403);
  });

  it('passes params to an owner-only route; 404 from the handler and for unknown API routes', async () => {
    const ok = await call('/api/v1/buildings/b-42', { headers: as('owner', 'o1', 'org-a') });
    expect(ok.json).toEqual({ id: 'b-42', orgId: 'org-a' });
    const missing = await call('/api/v1/buildings/b-missing', { headers: as('owner', 'o1', 'org-a') });
    expect([missing.res.status, missing.json.error]).toEqual([404, { code: 'not-found', message: 'building not found' }]);
    for (const path of ['/api/v1/nope', '/api/v2/things', '/api', '/api/v1/things/extra']) {
      const r = await call(path);
      expect([path, r.res.status, r.json.error.code]).toEqual([path, 404, 'not-found']);
    }
    expect((await call('/api/v1/health', { method: 'DELETE' })).res.status).toBe(404);
  });
});

describe('validation', () => {
  it('coerces the query and reports bad or unknown query fields', async () => {
    expect((await call('/api/v1/things?limit=5&id=a&id=b')).json).toEqual({ limit: 5, ids: ['a', 'b'], principal: false });
    expect((await call('/api/v1/things')).json).toEqual({ limit: 20, ids: [], principal: false });
    const bad = await call('/api/v1/things?limit=abc&color=red');
    expect(bad.res.status).toBe(400);
    expect(bad.json.error.code).toBe('validation-failed');
    expect(fields(bad.json)).toEqual(['query:/color', 'query:/limit']);
    expect(fields((await call('/api/v1/things?limit=500')).json)).toEqual(['query:/limit']);
    expect(fields((await call('/api/v1/incidents?x=1', { headers: as('dispatcher') })).json)).toEqual(['query:/x']);
  });

  it('reports a path parameter that fails its pattern', async () => {
    const r = await call('/api/v1/buildings/B-UPPER', { headers: as('owner') });
    expect(r.res.status).toBe(400);
    expect(fields(r.json)).toEqual(['params:/buildingId']);
  });

  it('accepts a good body with 201, defaults applied and Location set', async () => {
    const r = await post('/api/v1/incidents', JSON.stringify({ kind: 'fire', location: { lat: 60.17, lng: 24.94 } }));
    expect(r.res.status).toBe(201);
    expect(r.res.headers.get('location')).toBe('/api/v1/incidents/i-1');
    expect(r.json).toEqual({ id: 'i-1', kind: 'fire', priority: 2 });
  });

  it('lists every wrong, missing and unknown body field with a JSON pointer', async () => {
    const r = await post('/api/v1/incidents', JSON.stringify({ kind: 7, location: { lat: 'north', extra: 1 }, priority: 9, admin: true }));
    expect(r.res.status).toBe(400);
    expect(r.json.error.code).toBe('validation-failed');
    expect(fields(r.json)).toEqual(['body:/admin', 'body:/kind', 'body:/location/extra', 'body:/location/lat', 'body:/location/lng', 'body:/priority']);
    for (const d of r.json.error.details ?? []) expect(d.message).toMatch(/\w/);

    const empty = await post('/api/v1/incidents', '{}');
    expect(fields(empty.json)).toEqual(['body:/kind', 'body:/location']);
    const notObject = await post('/api/v1/incidents', '[1,2]');
    expect(fields(notObject.json)).toEqual(['body:']);
  });

  it('refuses odd unicode: lone surrogates and control characters', async () => {
    const lone = await post('/api/v1/incidents', '{"kind":"fire\\ud83d","location":{"lat":1,"lng":2}}');
    expect(lone.res.status).toBe(400);
    expect(fields(lone.json)).toEqual(['body:/kind']);
    const nul = await post('/api/v1/incidents', '{"kind":"fi\\u0000re","location":{"lat":1,"lng":2},"note":"bell\\u0007"}');
    expect(fields(nul.json)).toEqual(['body:/kind', 'body:/note']);
    const key = await post('/api/v1/incidents', '{"kind":"x","location":{"lat":1,"lng":2},"\\u001b[31m":1}');
    expect(key.res.status).toBe(400);
    const emoji = await post('/api/v1/incidents', JSON.stringify({ kind: '🚒 Paloasema', location: { lat: 1, lng: 2 }, note: 'line 1\nline 2\tRTL: שלום' }));
    expect(emoji.res.status).toBe(201);
  });

  it('400 for malformed JSON, a non-JSON content type, or a body where none is taken', async () => {
    const bad = await post('/api/v1/incidents', '{"kind": "fire", ');
    expect([bad.res.status, bad.json.error.code, bad.json.error.message]).toEqual([400, 'validation-failed', 'malformed JSON body']);
    const text = await post('/api/v1/incidents', 'kind=fire', { 'content-type': 'text/plain' });
    expect([text.res.status, text.json.error.code]).toEqual([400, 'validation-failed']);
    expect(fields(text.json)).toEqual(['body:']);
    const extra = await call('/api/v1/incidents/i-1', { method: 'DELETE', body: '{}', headers: { 'content-type': 'application/json', ...as('dispatcher') } });
    expect(extra.res.status).toBe(400);
    expect((await call('/api/v1/incidents/i-1', { method: 'DELETE', headers: as('dispatcher') })).res.status).toBe(204);
  });

  it('413 for a body over the limit (64 kB by default)', async () => {
    const big = JSON.stringify({ kind: 'fire', location: { lat: 1, lng: 2 }, note: 'x'.repeat(70 * 1024) });
    const r = await post('/api/v1/incidents', big);
    expect(r.res.status).toBe(413);
    expect(r.json.error.code).toBe('payload-too-large');
    const under = JSON.stringify({ kind: 'fire', location: { lat: 1, lng: 2 }, note: 'x'.repeat(60 * 1024) });
    expect((await post('/api/v1/incidents', under)).res.status).toBe(201);
  });
});

describe('failures', () => {
  it('503 for a store outage, with Retry-After and without the cause', async () => {
    const r = await call('/api/v1/boom/store');
    expect(r.res.status).toBe(503);
    expect(r.res.headers.get('retry-after')).toBe('5');
    expect(r.json).toEqual({ error: { code: 'unavailable', message: 'storage unavailable' } });
  });

  it('500 hides the message and stack from the client but logs them with the request id', async () => {
    const r = await call('/api/v1/boom/bug');
    expect(r.res.status).toBe(500);
    expect(r.json).toEqual({ error: { code: 'internal', message: 'internal error' } });
    const id = r.res.headers.get('x-request-id');
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['level'] === 'error' && l['requestId'] === id);
    expect(logged?.['message']).toBe('db password hunter2 in a message');
    expect(String(logged?.['stack'])).toContain('TypeError');
  });

  it('409 for a store conflict, naming the field', async () => {
    const r = await call('/api/v1/boom/conflict');
    expect([r.res.status, r.json.error]).toEqual([409, { code: 'conflict', message: 'already exists', details: { field: 'username' } }]);
  });

  it('400 for broken percent-encoding in the path, not 500', async () => {
    const r = await call('/api/v1/buildings/%E0%A4%A', { headers: as('owner') });
    expect([r.res.status, r.json.error.code]).toEqual([400, 'validation-failed']);
  });

  it('with checkResponses, an answer with a field its closed schema lacks is a logged 500', async () => {
    const r = await call('/api/v1/leaky');
    expect(r.res.status).toBe(500);
    expect(JSON.stringify(r.json)).not.toContain('scrypt');
    expect(lines.some((l) => l.includes('does not match its schema') && l.includes('/passwordHash'))).toBe(true);
  });

  it('serves a raw reply with its content type', async () => {
    const r = await call('/api/v1/export.csv', { headers: as('admin') });
    expect(r.res.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(r.res.headers.get('content-disposition')).toBe('attachment; filename="x.csv"');
    expect(r.json['text']).toBe('a,b\n1,2\n');
  });
});

describe('headers', () => {
  it('sets security headers; HSTS only when the (trusted) proxy says https', async () => {
    const r = await call('/api/v1/health');
    expect(r.res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(r.res.headers.get('x-frame-options')).toBe('DENY');
    expect(r.res.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(r.res.headers.get('cache-control')).toBe('no-store');
    expect(r.res.headers.get('x-powered-by')).toBeNull();
    expect(r.res.headers.get('strict-transport-security')).toBeNull();
    const https = await call('/api/v1/health', { headers: { 'x-forwarded-proto': 'https' } });
    expect(https.res.headers.get('strict-transport-security')).toBe('max-age=31536000; includeSubDomains');
  });

  it('gives each request an id, keeping a sane one from a proxy', async () => {
    const a = (await call('/api/v1/health')).res.headers.get('x-request-id');
    const b = (await call('/api/v1/health')).res.headers.get('x-request-id');
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(a).not.toBe(b);
    expect((await call('/api/v1/health', { headers: { 'x-request-id': 'edge-123' } })).res.headers.get('x-request-id')).toBe('edge-123');
    // Replaced by an id of our own (a UUID: hex may spell "bad", so the check is the shape, not a word).
    expect((await call('/api/v1/health', { headers: { 'x-request-id': 'bad id\twith junk' } })).res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('allows CORS for configured origins only', async () => {
    const ok = await call('/api/v1/health', { headers: { origin: ALLOWED } });
    expect(ok.res.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(ok.res.headers.get('vary')).toContain('Origin');
    const evil = await call('/api/v1/health', { headers: { origin: 'https://evil.example' } });
    expect(evil.res.headers.get('access-control-allow-origin')).toBeNull();

    const pre = await call('/api/v1/incidents', { method: 'OPTIONS', headers: { origin: ALLOWED, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    expect(pre.res.status).toBe(204);
    expect(pre.res.headers.get('access-control-allow-origin')).toBe(ALLOWED);
    expect(pre.res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(pre.res.headers.get('access-control-allow-headers')).toContain('Authorization');
    const blocked = await call('/api/v1/incidents', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(blocked.res.status).toBe(403);
    expect(blocked.res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a wildcard or malformed CORS origin at start', () => {
    const base = { routes: [], authenticate, ready: () => Promise.resolve(readiness), logger };
    expect(() => createHttpApp({ ...base, corsOrigins: ['*'] })).toThrow(/wildcard/);
    expect(() => createHttpApp({ ...base, corsOrigins: ['https://x.org/'] })).toThrow(/exact origin/);
    expect(() => createHttpApp({ ...base, corsOrigins: [], mapTileHosts: ["'unsafe-inline'"] })).toThrow(/tile host/);
  });
});

describe('static UI', () => {
  it('serves the SPA with its CSP, index.html for client routes, immutable assets, 404 for missing files', async () => {
    const root = await call('/');
    expect(root.res.status).toBe(200);
    expect(root.json['text']).toContain('Smart Passage');
    const csp = root.res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("img-src 'self' data: blob: https://tile.openstreetmap.org");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(root.res.headers.get('cache-control')).toBe('no-cache');
    expect((await call('/incidents/i-1/map')).json['text']).toContain('Smart Passage');
    const asset = await call('/assets/app-abc123.js');
    expect(asset.res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await call('/assets/missing.js')).res.status).toBe(404);
    for (const sneaky of ['/assets/..%2f..%2f..%2f..%2fetc%2fpasswd', '/..%2f..%2f..%2fetc%2fpasswd', '/%2e%2e/%2e%2e/etc/passwd']) {
      expect(JSON.stringify((await call(sneaky)).json)).not.toContain('root:');
    }
    const apiGet = await call('/api/v1/unknown-thing');
    expect(apiGet.json.error.code).toBe('not-found'); // no SPA fallback under /api
  });
});

describe('access log', () => {
  it('one line per request with method, path without query, status, ms, id; never the token or the query', async () => {
    const before = lines.length;
    const r = await call('/api/v1/incidents?token=query-s3cr3t', { headers: as('dispatcher', 'd9') });
    expect(r.res.status).toBe(400);
    await post('/api/v1/incidents', JSON.stringify({ kind: 'body-s3cr3t', location: { lat: 1, lng: 2 } }));
    await new Promise((resolve) => setTimeout(resolve, 20)); // 'close' fires after the client has the answer
    const mine = lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'http');
    expect(mine).toHaveLength(2);
    expect(mine[0]).toMatchObject({ level: 'info', method: 'GET', path: '/api/v1/incidents', status: 400, requestId: r.res.headers.get('x-request-id'), route: '/api/v1/incidents', userId: 'd9' });
    expect(typeof mine[0]?.['ms']).toBe('number');
    expect(mine[1]).toMatchObject({ method: 'POST', status: 201 });
    const all = lines.join('\n');
    expect(all).not.toContain(TOKEN_SECRET);
    expect(all).not.toContain('query-s3cr3t');
    expect(all).not.toContain('body-s3cr3t');
    expect(all).not.toMatch(/authorization/i);
  });

  it('handler log lines carry the request id', async () => {
    const r = await call('/api/v1/incidents', { headers: as('dispatcher', 'd3') });
    const id = r.res.headers.get('x-request-id');
    expect(lines.some((l) => l.includes('listing incidents') && l.includes(`"requestId":"${id}"`))).toBe(true);
  });
});
