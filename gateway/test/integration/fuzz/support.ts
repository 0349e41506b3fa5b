/**
 * Shared by the fuzz tests (issue 6 "Hostile input"): an in-process demo gateway on its own ports
 * and temp data dir, an HTTP helper that never throws on an odd answer, a snapshot of every
 * domain collection, and the fast-check arbitraries for hostile values.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { LogFields, Logger } from '@smart-passage/protocol';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { Gateway } from '../../../src/gateway.js';
import type { CollectionName } from '../../../src/store/port.js';

export const PASSWORDS = { admin: 'admin-pw-fz', dispatch: 'dispatch-pw-fz', responder: 'responder-pw-fz', amb3010: 'amb-pw-fz', owner: 'owner-pw-fz', 'owner-brf': 'brf-pw-fz' };
export type Who = keyof typeof PASSWORDS;

export interface Reply {
  status: number;
  text: string;
  body: (Record<string, unknown> & { error?: { code?: unknown; message?: unknown } }) | undefined;
}

export interface LogLine {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

export interface Harness {
  gw: Gateway;
  dir: string;
  logLines: LogLine[];
  /** `contentType` is for `raw` (default application/json). */
  api: (path: string, o?: { token?: string; body?: unknown; raw?: string; method?: string; contentType?: string }) => Promise<Reply>;
  login: (username: string, password: string) => Promise<string>;
  snapshot: () => Promise<Record<string, number | string>>;
  stop: () => Promise<void>;
}

/** Every collection a request could change (the audit trail and sessions are not among them). */
export const COLLECTIONS: CollectionName[] = [
  'organisations', 'users', 'buildings', 'doors', 'controllers', 'agencies', 'units', 'tags', 'incidents', 'grants',
  // Issue 8 (drills, their schedules and webhook deliveries also move on by themselves).
  'integrations', 'cadLinks', 'orgWebhooks', 'rosterMembers',
];

export async function startHarness(prefix: string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const logLines: LogLine[] = [];
  const rec = (level: string) => (msg: string, fields?: LogFields) => void logLines.push({ level, msg, fields });
  const logger: Logger = { debug: () => undefined, info: rec('info'), warn: rec('warn'), error: rec('error') };
  const gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    env: {},
    logger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
  await gw.start();

  const api: Harness['api'] = async (path, o = {}) => {
    const payload = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
    const res = await fetch(`${gw.httpUrl}${path}`, {
      method: o.method ?? (payload === undefined ? 'GET' : 'POST'),
      headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(payload === undefined ? {} : { 'content-type': o.contentType ?? 'application/json' }) },
      ...(payload === undefined ? {} : { body: payload }),
    });
    const text = await res.text();
    let body: Reply['body'];
    try {
      body = text ? (JSON.parse(text) as Reply['body']) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, text, body };
  };

  const login: Harness['login'] = async (username, password) => {
    const r = await api('/api/v1/auth/login', { body: { username, password } });
    if (r.status !== 200) throw new Error(`login ${username}: ${r.status} ${r.text.slice(0, 200)}`);
    return r.body?.['accessToken'] as string;
  };

  const snapshot: Harness['snapshot'] = async () => {
    const out: Record<string, number | string> = {};
    for (const c of COLLECTIONS) {
      const rows = await gw.store.list(c, { limit: 10_000 });
      out[c] = rows.length;
    }
    // What a request could change in a grant (its status moves with deliveries on its own).
    out['grantTerms'] = JSON.stringify((await gw.store.list('grants', { limit: 10_000 })).map((g) => [g.id, g.notAfter, g.unitIds, g.doorIds, g.status === 'revoked']));
    return out;
  };

  const stop = async () => {
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { gw, dir, logLines, api, login, snapshot, stop };
}

export const until = async (cond: () => boolean | Promise<boolean>, ms = 8000, what = 'condition'): Promise<void> => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

// ── Hostile values ───────────────────────────────────────────────────────────────────────────

/** A lone UTF-16 surrogate half (fast-check's own string units never make one). */
export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));

/** Text that makes validators, stores and logs work: controls, bidi, BOM, surrogates, emoji, long runs. */
export const oddString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 15 }),
  fc.string({ unit: fc.oneof(loneSurrogate, fc.constantFrom('\u0000', '\u0007', '\u001b', '\u202e', '\ufeff', '\u2028', '\uffff', '\u{1f525}', '"', '\\', '%', '<', '$')), minLength: 1, maxLength: 20 }),
  fc.constantFrom('', ' ', '__proto__', 'constructor', '../../etc/passwd', '<script>alert(1)</script>', "' OR 1=1 --", '{"$gt":""}', 'null', 'NaN'),
);

/** A string near or over the size every text field must bound (bodies themselves are limited). */
export const hugeString = fc.integer({ min: 300, max: 60_000 }).map((n) => 'x'.repeat(n));

/** Numbers at the edges of every integer and coordinate field. */
export const edgeNumber = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER + 2, Number.MIN_SAFE_INTEGER, 1e308, -1e308, Number.MIN_VALUE, 91, -181),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
);

/** Arrays or objects nested deeper than any request schema (and than MAX_DEPTH). */
export const deepValue = fc.oneof(
  fc.integer({ min: 30, max: 3000 }).map((d) => JSON.parse(`${'['.repeat(d)}${']'.repeat(d)}`) as unknown),
  fc.integer({ min: 30, max: 1500 }).map((d) => JSON.parse(`${'{"a":'.repeat(d)}1${'}'.repeat(d)}`) as unknown),
);

/** Anything at all where a field's value goes. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 3 },
  { arbitrary: oddString, weight: 3 },
  { arbitrary: hugeString, weight: 1 },
  { arbitrary: edgeNumber, weight: 2 },
  { arbitrary: deepValue, weight: 1 },
  { arbitrary: fc.constantFrom(null, true, false, [], {}, [null], { id: 'x' }), weight: 2 },
);

/** Paths to every value in a JSON value (objects, arrays and leaves; not the root). */
export function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const here = at.length > 0 ? [at] : [];
  if (Array.isArray(v)) return [...here, ...v.flatMap((x, i) => pathsOf(x, [...at, i]))];
  if (typeof v === 'object' && v !== null) return [...here, ...Object.entries(v).flatMap(([k, x]) => pathsOf(x, [...at, k]))];
  return here;
}

/** Paths to every object in a JSON value, the root included. */
export function objectPathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => objectPathsOf(x, [...at, i]));
  if (typeof v === 'object' && v !== null) return [at, ...Object.entries(v).flatMap(([k, x]) => objectPathsOf(x, [...at, k]))];
  return [];
}

export function getAt(v: unknown, path: readonly (string | number)[]): unknown {
  let cur = v;
  for (const k of path) cur = (cur as Record<string | number, unknown> | undefined)?.[k];
  return cur;
}

/** A copy of `v` with the value at `path` replaced (or, with `extra`, a member added to the object there). */
export function setAt(v: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  if (Array.isArray(v)) return (v as unknown[]).map((x, i) => (i === head ? setAt(x, rest, value) : x));
  const o = v as Record<string, unknown>;
  const copy: Record<string, unknown> = { ...o };
  // defineProperty, so a generated "__proto__" key is a plain member as it would be in parsed JSON.
  Object.defineProperty(copy, head, { value: setAt(o[head], rest, value), enumerable: true, writable: true, configurable: true });
  return copy;
}

/**
 * Mostly invalid variants of a valid body: a random JSON value, malformed JSON text, or the
 * valid body with one value replaced (wrong type, huge or odd string, edge number, deep nesting)
 * or one unknown member added at some depth. `raw` is sent as it is; `value` as JSON.
 */
export function hostileBody(valid: unknown): fc.Arbitrary<{ what: string; raw?: string; value?: unknown }> {
  const paths = pathsOf(valid);
  const objects = objectPathsOf(valid);
  const variants: fc.Arbitrary<{ what: string; raw?: string; value?: unknown }>[] = [
    fc.jsonValue({ maxDepth: 4 }).map((value) => ({ what: 'random JSON', value })),
    fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('{', '{"a":1,', '[1,]', '{"a":01}', 'nul', '\ufeff{}', '{"a":"\\ud800"}', '{"a":"\\u0000"}'), fc.json().map((j) => j.slice(0, -1))).map((raw) => ({ what: 'malformed JSON', raw })),
  ];
  if (paths.length > 0) {
    variants.push(
      fc.tuple(fc.constantFrom(...paths), wrongValue).map(([p, v]) => ({ what: `/${p.join('/')} replaced`, value: setAt(valid, p, v) })),
      fc.tuple(fc.constantFrom(...paths), fc.constantFrom('string', 'number', 'boolean', 'null', 'array', 'object')).map(([p, t]) => {
        const cur = getAt(valid, p);
        const swapped: Record<string, unknown> = { string: 7, number: 'seven', boolean: 'true', null: 0, array: { 0: 1 }, object: [1] };
        const kind = cur === null ? 'null' : Array.isArray(cur) ? 'array' : typeof cur;
        return { what: `/${p.join('/')} as another type`, value: setAt(valid, p, kind === t ? swapped[t] : t === 'null' ? null : swapped[kind] ?? null) };
      }),
    );
  }
  if (objects.length > 0) {
    variants.push(
      fc.tuple(fc.constantFrom(...objects), fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'isAdmin', 'role', 'orgId', 'id')), wrongValue).map(([p, k, v]) => {
        const target = getAt(valid, p) as Record<string, unknown>;
        const key = Object.hasOwn(target, k) ? `${k}-extra` : k;
        return { what: `unknown member /${[...p, key].join('/')}`, value: setAt(valid, [...p, key], v) };
      }),
    );
  }
  return fc.oneof(...variants);
}
