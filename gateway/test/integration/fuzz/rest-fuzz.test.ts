// Issue 6 "Hostile input", REST side: property-based fuzzing (fast-check) of every operation in
// the served OpenAPI document, on the assembled demo gateway (embedded store and broker, its own
// ports and data dir). api-security.test.ts pins a fixed list of bad bodies per operation and the
// role matrix; here fast-check generates mostly invalid bodies (random JSON, malformed text, the
// valid body with one value replaced or one member added) and asserts, for each: the answer is
// 2xx, or a 4xx whose `{error:{code}}` is one of API_ERROR_CODES and matches the status — never
// 5xx — and a refused request changed no collection. Then every operation with another
// organisation's ids, as an owner: 403/404, never their data.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_ERROR_CODES } from '@smart-passage/protocol';
import type { OpenApiDocument } from '../../../src/http/openapi.js';
import { edgeNumber, hostileBody, oddString, PASSWORDS, startHarness, type Harness, type Reply, type Who } from './support.js';

let h: Harness;
const tokens = {} as Record<Who, string>;
let doc: OpenApiDocument;
/** Ids made for this file: the fuzzed operations act on these, never on the demo district's. */
const made = { incident: '', grant: '', brfIncident: '', brfGrant: '', member: '', integration: '', integrationKey: '', cadIncident: '' };
/** Another organisation's objects, by kind, for the scope test. */
const theirs = { soder: {} as Record<string, string[]>, brf: {} as Record<string, string[]> };

/** Runs per operation: ~60 operations × this ≈ the requests of the fuzz test. */
const RUNS_PER_OPERATION = 10;

async function post(path: string, token: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await h.api(path, { token, body });
  if (r.status !== 201) throw new Error(`${path} ${JSON.stringify(body)}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.body ?? {};
}

beforeAll(async () => {
  h = await startHarness('sp-fuzz-rest-');
  for (const who of Object.keys(PASSWORDS) as Who[]) tokens[who] = await h.login(who, PASSWORDS[who]);
  const admin = tokens.admin;
  await post('/api/v1/organisations', admin, { id: 'org-fz', name: 'Fuzz org', kind: 'owner' });
  // Logout is fuzzed with sessions of these users (login is rate-limited per user).
  for (let i = 1; i <= RUNS_PER_OPERATION; i++) {
    await post('/api/v1/users', admin, { id: `usr-fz-session-${i}`, username: `fz-session-${i}`, displayName: 'Fuzz sessions', password: 'fz-session-pw-1', role: 'dispatcher', orgId: 'org-operator' });
  }
  await post('/api/v1/users', admin, { id: 'usr-fz', username: 'fz-user', displayName: 'Fuzz user', password: 'fz-user-pw-1', role: 'dispatcher', orgId: 'org-operator' });
  await post('/api/v1/buildings', admin, { id: 'bld-fz', orgId: 'org-fz', name: 'Fuzz building', address: 'Fuzzgatan 1, Stockholm', location: { lat: 59.31, lng: 18.07 } });
  await post('/api/v1/controllers', admin, { id: 'ctl-fz', buildingId: 'bld-fz', vendor: 'test', doors: [{ ref: 'd1' }, { ref: 'd2' }] });
  await post('/api/v1/buildings/bld-fz/doors', admin, { id: 'door-fz', name: 'Fuzz door', kind: 'entrance', routeOrder: 1, controllerId: 'ctl-fz', ref: 'd1' });
  await post('/api/v1/agencies', admin, { id: 'ag-fz', name: 'Fuzz agency', kind: 'fire' });
  await post('/api/v1/units', admin, { id: 'unit-fz', agencyId: 'ag-fz', callSign: 'FZ 1' });
  await post('/api/v1/tags', admin, { id: 'tag-fz', uid: 'F2F2F2F2', label: 'Fuzz tag', unitId: 'unit-fz' });
  // Issue 8: a roster member (SCIM), and a CAD integration whose key calls the integration-only routes.
  made.member = String((await post('/api/v1/agencies/ag-fz/scim/v2/Users', admin, { userName: 'fz-member', name: { formatted: 'Fuzz Member' } }))['id']);
  const cad = await post('/api/v1/integrations', admin, { name: 'Fuzz CAD', kind: 'cad' });
  made.integration = (cad['integration'] as { id: string }).id;
  made.integrationKey = cad['apiKey'] as string;
  const opened = await h.api('/api/v1/cad/incidents', { token: made.integrationKey, body: { cadId: 'FZ-0', kind: 'fire', location: { lat: 59.31, lng: 18.07 } } });
  if (opened.status !== 200) throw new Error(`CAD incident: ${opened.status} ${opened.text.slice(0, 300)}`);
  made.cadIncident = String((opened.body?.['incident'] as { id: string } | undefined)?.id);
  const dispatch = tokens.dispatch;
  made.incident = String((await post('/api/v1/incidents', dispatch, { kind: 'fire', location: { lat: 59.3135, lng: 18.0718 } }))['id']);
  made.grant = ((await post(`/api/v1/incidents/${made.incident}/grants`, dispatch, { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], pin: true, minutes: 10 }))['grant'] as { id: string }).id;

  // Each owner organisation's objects, from the store (the district is data, not hard-coded here).
  const buildings = await h.gw.store.list('buildings', { limit: 1000 });
  const doors = await h.gw.store.list('doors', { limit: 1000 });
  const controllers = await h.gw.store.list('controllers', { limit: 1000 });
  const brfBuilding = buildings.find((b) => b.orgId === 'org-brf-nytorgsvinkeln' && doors.some((d) => d.buildingId === b.id));
  if (!brfBuilding) throw new Error('no brf building with doors in the demo district');
  const brfDoor = doors.find((d) => d.buildingId === brfBuilding.id)!;
  made.brfIncident = String((await post('/api/v1/incidents', dispatch, { kind: 'fire', location: { lat: 59.3135, lng: 18.0718 } }))['id']);
  made.brfGrant = ((await post(`/api/v1/incidents/${made.brfIncident}/grants`, dispatch, { buildingId: brfBuilding.id, doorIds: [brfDoor.id], unitIds: ['unit-rtj-2310'], minutes: 10 }))['grant'] as { id: string }).id;
  for (const [org, into, grant, incident] of [
    ['org-soderporten', theirs.soder, made.grant, made.incident],
    ['org-brf-nytorgsvinkeln', theirs.brf, made.brfGrant, made.brfIncident],
  ] as const) {
    const mine = buildings.filter((b) => b.orgId === org).map((b) => b.id);
    into['building'] = mine;
    into['door'] = doors.filter((d) => mine.includes(d.buildingId)).map((d) => d.id);
    into['doorPair'] = doors.filter((d) => mine.includes(d.buildingId)).map((d) => `${d.buildingId}/${d.id}`);
    into['controller'] = controllers.filter((c) => mine.includes(c.buildingId)).map((c) => c.id);
    into['grant'] = [grant];
    into['incident'] = [incident];
    into['organisation'] = [org];
  }
  const r = await h.api('/api/v1/openapi.json');
  doc = r.body as unknown as OpenApiDocument;
}, 60_000);

afterAll(async () => {
  await h?.stop();
});

interface Operation {
  key: string;
  method: string;
  path: string;
  hasBody: boolean;
  /** The body is `text/csv` (the roster import). */
  csv: boolean;
  roles: string[];
  queryNames: string[];
}

function operations(): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (op) out.push({ key: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, hasBody: op.requestBody !== undefined, csv: op.requestBody?.content['text/csv'] !== undefined, roles: op['x-roles'] ?? [], queryNames: (op.parameters ?? []).filter((x) => x.in === 'query').map((x) => x.name) });
    }
  }
  return out;
}

/** Path parameter values (this file's fixtures) and a valid body per operation that takes one. */
function plan(key: string): { params: Record<string, string>; body?: unknown; query?: string } {
  const grantBody = { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: 10 };
  const plans: Record<string, { params?: Record<string, string>; body?: unknown; query?: string }> = {
    'POST /api/v1/auth/login': { body: { username: 'fz-nobody', password: 'not-the-password' } },
    'POST /api/v1/auth/refresh': { body: { refreshToken: 'AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' } },
    'POST /api/v1/auth/logout': { body: {} },
    'POST /api/v1/organisations': { body: { name: 'New owner', kind: 'owner' } },
    'PATCH /api/v1/organisations/{id}': { body: { name: 'Renamed org' } },
    'POST /api/v1/users': { body: { username: 'fz-new', displayName: 'New user', password: 'fz-new-pw-1', role: 'owner', orgId: 'org-fz' } },
    'PATCH /api/v1/users/{id}': { body: { displayName: 'Renamed user' } },
    'POST /api/v1/buildings': { body: { orgId: 'org-fz', name: 'New building', address: 'Fuzzgatan 2, Stockholm', location: { lat: 59.3, lng: 18.1 } } },
    'PATCH /api/v1/buildings/{id}': { body: { name: 'Renamed building' } },
    'PUT /api/v1/buildings/{id}/policy': { body: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] } },
    'PUT /api/v1/buildings/{id}/drill-schedule': { body: { enabled: true, everyDays: 7, hour: 3, timeZone: 'UTC' } },
    'POST /api/v1/buildings/{id}/doors': { body: { name: 'New door', kind: 'floor', routeOrder: 3, controllerId: 'ctl-fz', ref: 'd2' } },
    'PATCH /api/v1/buildings/{id}/doors/{doorId}': { body: { name: 'Renamed door' } },
    'POST /api/v1/agencies': { body: { name: 'New agency', kind: 'rescue' } },
    'PATCH /api/v1/agencies/{id}': { body: { name: 'Renamed agency' } },
    'POST /api/v1/units': { body: { agencyId: 'ag-fz', callSign: 'FZ 77' } },
    'PATCH /api/v1/units/{id}': { body: { callSign: 'FZ 99' } },
    'POST /api/v1/tags': { body: { uid: 'F2F2F2F3', label: 'New tag', unitId: 'unit-fz' } },
    'PATCH /api/v1/tags/{id}': { body: { label: 'Renamed tag' } },
    'POST /api/v1/controllers': { body: { buildingId: 'bld-fz', vendor: 'test', doors: [{ ref: 'x1' }] } },
    'POST /api/v1/incidents': { body: { kind: 'fire', location: { lat: 59.31, lng: 18.07 } } },
    'POST /api/v1/incidents/{id}/grants': { body: grantBody },
    'POST /api/v1/grants/{id}/extend': { body: { minutes: 15 } },
    'POST /api/v1/doors/{id}/pulse': { body: { seconds: 3, incidentId: made.incident } },
    'POST /api/v1/me/doors/{id}/open': { body: { grantId: made.grant } },
    // Issue 8: CAD integrations (the CAD routes are called with this file's integration key) and owner webhooks.
    'POST /api/v1/integrations': { body: { name: 'Fuzz CAD', kind: 'cad' } },
    'POST /api/v1/cad/incidents': { body: { cadId: 'FZ-1', kind: 'fire', location: { lat: 59.31, lng: 18.07 } } },
    'PUT /api/v1/organisations/{id}/webhook': { body: { url: 'https://hooks.example.org/fz' } },
    // Issue 8 roster import: CSV (fuzzed as CSV text below), merged so a taken file removes nobody.
    'POST /api/v1/agencies/{id}/roster': { query: 'mode=merge', body: 'externalId,name\nfz-csv-1,Fuzz Member\n' },
    'POST /api/v1/agencies/{agencyId}/scim/v2/Users': { body: { userName: 'fz-member-2', name: { formatted: 'Second Member' } } },
    'PUT /api/v1/agencies/{agencyId}/scim/v2/Users/{id}': { body: { userName: 'fz-member', name: { formatted: 'Fuzz Member Two' } } },
    'PATCH /api/v1/agencies/{agencyId}/scim/v2/Users/{id}': { body: { Operations: [{ op: 'replace', path: 'active', value: false }] } },
  };
  const p = plans[key] ?? {};
  // Path parameters: what the path names, from this file's own fixtures.
  const [, path = ''] = key.split(' ');
  const params: Record<string, string> = {};
  const base = path.split('/')[3] ?? '';
  const ID_OF: Record<string, string> = {
    organisations: 'org-fz',
    users: 'usr-fz',
    buildings: 'bld-fz',
    agencies: 'ag-fz',
    units: 'unit-fz',
    tags: 'tag-fz',
    controllers: 'ctl-fz',
    incidents: made.incident,
    grants: made.grant,
    doors: 'door-fz',
    me: 'door-01-1',
    integrations: made.integration,
    cad: made.cadIncident,
  };
  if (path.includes('{id}')) params['id'] = ID_OF[base] ?? 'unknown';
  // SCIM (issue 8): /agencies/{agencyId}/scim/v2/Users/{id}, a member of this file's agency.
  if (path.includes('{agencyId}')) {
    params['agencyId'] = 'ag-fz';
    if (path.includes('{id}')) params['id'] = made.member;
  }
  if (path.includes('{doorId}')) params['doorId'] = 'door-fz';
  return { params, ...(p.body !== undefined ? { body: p.body } : {}), ...(p.query !== undefined ? { query: p.query } : {}) };
}

/** Who calls: the admin, or for the routes only an integration's API key opens (issue 8), this file's CAD key. */
const callerOf = (o: Operation): string => (o.roles.length === 1 && o.roles[0] === 'integration' ? made.integrationKey : tokens.admin);

const urlOf = (o: Operation, params: Record<string, string>) => o.path.replace(/\{(\w+)\}/g, (_m, n: string) => encodeURIComponent(params[n] ?? ''));

/** The answer is 2xx, or a 4xx with a known code that matches its status (SCIM: an RFC 7644 error of that status); never 5xx. */
function wellFormedAnswer(r: Reply): string | undefined {
  if (r.status >= 200 && r.status < 300) return undefined;
  const code = r.body?.error?.code;
  if (r.status >= 500) return `server error ${r.status}`;
  const scim = r.body as { schemas?: unknown; status?: unknown } | undefined;
  if (Array.isArray(scim?.schemas) && scim.schemas.includes('urn:ietf:params:scim:api:messages:2.0:Error')) {
    return scim.status === String(r.status) ? undefined : `SCIM error status ${String(scim.status)} with ${r.status}`;
  }
  if (typeof code !== 'string' || !Object.hasOwn(API_ERROR_CODES, code)) return `no known error code: ${r.text.slice(0, 200)}`;
  if (API_ERROR_CODES[code as keyof typeof API_ERROR_CODES] !== r.status) return `code ${code} with status ${r.status}`;
  return undefined;
}

describe('REST fuzzing: every operation of the OpenAPI document, as admin (an integration-only route with a CAD key)', () => {
  it('mostly invalid bodies: 2xx or a coded 4xx, never 5xx; a refused request changes nothing', async () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThan(50);
    const tally = { requests: 0, accepted: 0, refused: 0 };
    const accepted: string[] = [];
    let session = '';
    let sessions = 0;
    const failures: string[] = [];
    let before = await h.snapshot();
    for (const o of ops) {
      const p = plan(o.key);
      // An operation that takes no body is sent one anyway: it must refuse it.
      const valid = o.hasBody ? p.body : { unexpected: true };
      expect(valid, `${o.key}: a valid body is planned`).toBeDefined();
      const url = p.query === undefined ? urlOf(o, p.params) : `${urlOf(o, p.params)}?${p.query}`;
      if (o.method === 'GET') {
        // No body on a GET: its query string is fuzzed instead.
        await fc.assert(
          fc.asyncProperty(hostileQuery([...o.queryNames, 'limit', 'cursor', 'bogus']), async (q) => {
            const r = await h.api(`${url}?${q}`, { token: callerOf(o) });
            tally.requests += 1;
            const problem = wellFormedAnswer(r);
            if (problem) failures.push(`${o.key} ?${q.slice(0, 120)}: ${problem}`);
            if (r.status >= 300) tally.refused += 1;
            else tally.accepted += 1;
          }),
          { numRuns: RUNS_PER_OPERATION },
        );
        if (JSON.stringify(await h.snapshot()) !== JSON.stringify(before)) failures.push(`${o.key}: a GET changed the store`);
        continue;
      }
      await fc.assert(
        fc.asyncProperty(
          o.csv ? hostileCsv(valid as string) : hostileBody(valid),
          async (b: { what: string; raw?: string; value?: unknown; contentType?: string }) => {
            // Logout, when it takes the body, ends the session it is called with: a session of its own each time.
            const isLogout = o.key === 'POST /api/v1/auth/logout';
            if (isLogout && session === '') session = await h.login(`fz-session-${++sessions}`, 'fz-session-pw-1');
            const r = await h.api(url, { method: o.method, token: isLogout ? session : callerOf(o), raw: b.raw ?? JSON.stringify(b.value) ?? 'undefined', ...(b.contentType !== undefined ? { contentType: b.contentType } : {}) });
            if (isLogout && r.status < 300) session = '';
            if (r.status < 300) accepted.push(`${o.key} ${b.what}: ${(b.raw ?? JSON.stringify(b.value) ?? '').slice(0, 100)}`);
            tally.requests += 1;
            const problem = wellFormedAnswer(r);
            if (problem) failures.push(`${o.key} ${b.what}: ${problem}`);
            const after = await h.snapshot();
            if (r.status < 300) {
              // A hostile-looking body that is valid after all (odd but legal text): taken, so move on from here.
              tally.accepted += 1;
              before = after;
            } else {
              tally.refused += 1;
              if (JSON.stringify(after) !== JSON.stringify(before)) failures.push(`${o.key} ${b.what}: refused with ${r.status} but the store changed`);
            }
          },
        ),
        { numRuns: RUNS_PER_OPERATION },
      );
    }
    expect(failures).toEqual([]);
    // The process is still up and the admin's session with it.
    expect((await h.api('/api/v1/health')).status).toBe(200);
    expect((await h.api('/api/v1/incidents', { token: tokens.admin })).status).toBe(200);
    expect(h.logLines.filter((l) => l.level === 'error').map((l) => `${l.msg} ${JSON.stringify(l.fields)}`)).toEqual([]);
    expect(tally.refused).toBeGreaterThan(tally.accepted);
    console.info(`REST fuzz: ${ops.length} operations, ${tally.requests} requests, ${tally.refused} refused, ${tally.accepted} accepted:\n  ${accepted.join('\n  ')}`);
  });
});

/** Hostile CSV for a CSV body: random text, the valid file with an odd line or header, broken quoting, or JSON where CSV belongs. */
function hostileCsv(valid: string): fc.Arbitrary<{ what: string; raw: string; contentType: string }> {
  const csv = (what: string) => (raw: string) => ({ what, raw, contentType: 'text/csv' });
  const rest = valid.split('\n').slice(1).join('\n');
  return fc.oneof(
    fc.string({ maxLength: 200 }).map(csv('random text')),
    fc.array(oddString, { minLength: 1, maxLength: 5 }).map((cells) => csv('an odd line')(`${valid}${cells.join(',')}\n`)),
    fc.array(oddString, { minLength: 1, maxLength: 5 }).map((cells) => csv('an odd header')(`${cells.join(',')}\n${rest}`)),
    fc.constantFrom('externalId,name\n"fz-open,Unterminated\n', 'externalId,name,externalId\nfz-1,A,fz-2\n', 'externalId,name\nfz-1,A\nfz-1,B\n', '\ufeffexternalId,name\r\nfz-bom,"Quoted, name"\r\n', 'externalId,name\nfz-x,A,extra,cells\n', '\0\0\0').map(csv('odd CSV')),
    fc.json().map((raw) => ({ what: 'JSON where CSV belongs', raw, contentType: 'application/json' })),
  );
}

/** Percent-encode the UTF-8 bytes of any string (encodeURIComponent throws on a lone surrogate). */
const pct = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

/** A hostile query string: known and unknown names, odd, long, edge-number and broken-encoding values, repeats. */
function hostileQuery(names: string[]): fc.Arbitrary<string> {
  const value = fc.oneof(
    oddString.map(pct),
    fc.integer({ min: 100, max: 2000 }).map((n) => 'x'.repeat(n)),
    edgeNumber.map((n) => pct(String(n))),
    fc.constantFrom('%', '%E0%A4%A', '%ZZ', '%00', 'a%00b', '%ED%A0%80', '..%2F..%2F', '1e3', '-1', '0x10', 'true', ''),
  );
  const name = fc.oneof(fc.constantFrom(...names), oddString.map(pct), fc.constantFrom('__proto__', 'constructor', 'a[b]', 'a[]'));
  return fc.array(fc.tuple(name, value), { minLength: 1, maxLength: 4 }).map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));
}


describe('another organisation\'s ids, as an owner', () => {
  /** Which kind of id each path parameter takes, by the collection the path names. */
  const KIND_OF: Record<string, string> = { buildings: 'building', controllers: 'controller', grants: 'grant', incidents: 'incident', doors: 'door', me: 'door', organisations: 'organisation' };

  it('every operation with the other owner\'s ids in its path or query: 403 or 404, never their data; nothing changes', async () => {
    const ops = operations();
    const before = await h.snapshot();
    const failures: string[] = [];
    let calls = 0;
    for (const [who, other] of [
      ['owner-brf', theirs.soder],
      ['owner', theirs.brf],
    ] as const) {
      const foreign = Object.values(other).flat().flatMap((v) => v.split('/'));
      for (const o of ops) {
        const base = o.path.split('/')[3] ?? '';
        const kind = KIND_OF[base];
        const pathParams = [...o.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
        const queryable = o.method === 'GET' && pathParams.length === 0 && o.roles.includes('owner');
        if (pathParams.length === 0 && !queryable) continue;
        const ids = pathParams.includes('doorId') ? other['doorPair'] ?? [] : kind !== undefined ? other[kind] ?? [] : [];
        if (pathParams.length > 0 && ids.length === 0) continue; // ids an owner has no other organisation's of (users, tags …): the role test covers them
        const body = o.hasBody ? plan(o.key).body : undefined;
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...(ids.length > 0 ? ids : ['-'])), fc.constantFrom('buildingId', 'orgId', 'controllerId', 'incidentId'), async (id, q) => {
            calls += 1;
            let url: string;
            if (pathParams.length > 0) {
              const [first, second] = id.split('/');
              url = o.path.replace('{id}', encodeURIComponent(first!)).replace('{doorId}', encodeURIComponent(second ?? ''));
            } else {
              // A list an owner may read, asked for the other organisation's objects by query.
              const value = q === 'orgId' ? other['organisation']![0]! : q === 'controllerId' ? other['controller']![0]! : q === 'incidentId' ? other['incident']![0]! : other['building']![0]!;
              url = `${o.path}?${q}=${encodeURIComponent(value)}`;
            }
            const r = await h.api(url, { method: o.method, token: tokens[who], ...(body !== undefined ? { body } : {}) });
            if (r.status >= 200 && r.status < 300) {
              // Only a list may answer, and with none of the other organisation's objects in it.
              const leaked = foreign.filter((f) => r.text.includes(`"${f}"`));
              if (pathParams.length > 0 || leaked.length > 0) failures.push(`${who} ${o.method} ${url}: ${r.status} ${leaked.join(',')} ${r.text.slice(0, 200)}`);
            } else if (pathParams.length > 0 && r.status !== 403 && r.status !== 404) {
              failures.push(`${who} ${o.method} ${url}: ${r.status} ${r.text.slice(0, 200)}`);
            } else if (r.status >= 500) {
              failures.push(`${who} ${o.method} ${url}: ${r.status}`);
            }
          }),
          { numRuns: 4 },
        );
      }
    }
    expect(failures).toEqual([]);
    expect(calls).toBeGreaterThan(50);
    expect(await h.snapshot()).toEqual(before);
  });
});
