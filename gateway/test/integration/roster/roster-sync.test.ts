// Issue 8 roster sync end to end on the assembled demo gateway (embedded aedes, SQLite, the demo's
// reference controllers): a CSV import makes units, members and tags; a member's tag opens a
// granted door; a sync import without them (or a SCIM delete/suspend) blocks their tags, audited,
// and the controller's desired set no longer holds them; dry runs and bad files change nothing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import type { ReferenceController } from '@smart-passage/protocol/controller';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { Gateway } from '../../../src/gateway.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', owner: 'owner-pw-1' };
type Who = keyof typeof PASSWORDS;
const dir = mkdtempSync(join(tmpdir(), 'sp-roster-'));
let gw: Gateway;
const tokens = {} as Record<Who, string>;
const FIRE = 'ag-fire';
const SCIM = `/api/v1/agencies/${FIRE}/scim/v2/Users`;
const EXT = 'urn:smartpassage:params:scim:schemas:extension:responder:2.0:User';

interface Reply {
  status: number;
  type: string;
  body: Record<string, unknown>;
}

async function call(path: string, o: { who?: Who; method?: string; body?: string; type?: string } = {}): Promise<Reply> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.who ? { authorization: `Bearer ${tokens[o.who]}` } : {}), ...(o.body !== undefined ? { 'content-type': o.type ?? 'application/json' } : {}) },
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}
const importCsv = (csv: string, query: string, who: Who = 'admin') => call(`/api/v1/agencies/${FIRE}/roster?${query}`, { who, body: csv, type: 'text/csv' });
const scim = (path: string, method: string, body?: unknown, who: Who = 'admin') =>
  call(`${SCIM}${path}`, { who, method, ...(body !== undefined ? { body: JSON.stringify(body), type: 'application/scim+json' } : {}) });

const tagByUid = async (uid: string) => (await gw.store.list('tags', { where: { field: 'uid', value: uid }, limit: 1 }))[0];
const members = async () => gw.store.list('rosterMembers', { where: { field: 'agencyId', value: FIRE } });

const until = async (cond: () => Promise<boolean> | boolean, what: string) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > 10_000) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

// A BOM, CRLF line ends, a quoted name holding a comma, lower-case hex, several uids in one cell.
const ROSTER = '\uFEFFexternalId,name,unitCallSign,tagUids\r\nE1,"Svensson, Anna",RTJ 2310,A1B2C3D4\r\nE2,Per Berg,RTJ 2310,a1b2c3d5;A1B2C3D6\r\nE3,Nils Nyberg,NEW 77,\r\n';

let door: { ref: string; ctrl: ReferenceController };
const present = (uid: string) => door.ctrl.presentTag(door.ref, uid).result;

beforeAll(async () => {
  gw = new Gateway({
    dataDir: dir,
    http: { host: '127.0.0.1', port: 0 },
    mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
    demo: true,
    demoPasswords: PASSWORDS,
    env: {},
    logger: silentLogger,
    hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    tickMs: 100,
  });
  await gw.start();
  for (const who of Object.keys(PASSWORDS) as Who[]) {
    const r = await call('/api/v1/auth/login', { body: JSON.stringify({ username: who, password: PASSWORDS[who] }) });
    expect(r.status).toBe(200);
    tokens[who] = r.body['accessToken'] as string;
  }
  const d = (await gw.store.get('doors', 'door-01-1'))!;
  const ctrl = gw.demo!.controllers.find((c) => c.id === d.controllerId)!;
  door = { ref: d.ref, ctrl };
  await until(() => gw.bridge !== undefined && ctrl.connected, 'demo controller online');
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('roster CSV import', () => {
  it('refuses every role but admin', async () => {
    for (const who of ['dispatch', 'owner', 'responder'] as const) {
      expect((await importCsv(ROSTER, 'mode=merge&dryRun=true', who)).status, who).toBe(403);
      expect((await call(`/api/v1/agencies/${FIRE}/roster`, { who })).status, who).toBe(403);
    }
    expect((await call(`/api/v1/agencies/${FIRE}/roster?mode=merge`, { body: ROSTER, type: 'text/csv' })).status).toBe(401);
    expect((await call('/api/v1/agencies/ag-nope/roster?mode=merge', { who: 'admin', body: ROSTER, type: 'text/csv' })).status).toBe(404);
  });

  it('a dry run answers the plan and changes nothing', async () => {
    const before = await members();
    const r = await importCsv(ROSTER, 'mode=sync&dryRun=true');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body['applied']).toBe(false);
    expect(r.body['errors']).toEqual([]);
    expect(await members()).toEqual(before);
  });

  it('a file with a bad line changes nothing: 422 with every bad line by number', async () => {
    const before = { members: await members(), tags: await gw.store.list('tags', { limit: 1000 }), units: await gw.store.list('units', { limit: 1000 }) };
    const bad = 'externalId,name,unitCallSign,tagUids\nX1,Ok Person,NEW 99,B1B2B3B4\nX2,,RTJ 2310,\nX3,Bad Tag,RTJ 2310,XYZ\nX4,Other agency,RTJ 2310,A3301001\nX1,Twice,RTJ 2310,\n';
    const r = await importCsv(bad, 'mode=sync');
    expect(r.status).toBe(422);
    expect((r.body['error'] as { code: string }).code).toBe('policy-violation');
    const errors = (r.body['error'] as { details: { errors: { line: number; field?: string }[] } }).details.errors;
    expect(errors.map((e) => [e.line, e.field])).toEqual([
      [3, 'name'],
      [4, 'tagUids'],
      [6, 'externalId'],
    ]);
    // The other agency's uid is found by the plan (after the file parsed cleanly).
    const r2 = await importCsv('externalId,name,unitCallSign,tagUids\nX4,Other agency,RTJ 2310,A3301001\n', 'mode=merge');
    expect(r2.status).toBe(422);
    expect(JSON.stringify(r2.body)).toMatch(/line":2.*another agency/);
    // And the dry run shows the same errors with 200.
    const dry = await importCsv(bad, 'mode=sync&dryRun=true');
    expect(dry.status).toBe(200);
    expect((dry.body['errors'] as { line: number }[]).map((e) => e.line)).toEqual([3, 4, 5, 6]);
    expect({ members: await members(), tags: await gw.store.list('tags', { limit: 1000 }), units: await gw.store.list('units', { limit: 1000 }) }).toEqual(before);
    expect((await importCsv('name\nA\n', 'mode=merge')).status).toBe(422);
    expect((await call(`/api/v1/agencies/${FIRE}/roster?mode=merge`, { who: 'admin', body: '{}', type: 'application/json' })).status).toBe(400);
  });
});

describe('roster sync end to end', () => {
  it('imports, opens a door with a member tag, and a sync without the member blocks it everywhere', async () => {
    const r = await importCsv(ROSTER, 'mode=sync');
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body['applied']).toBe(true);
    const ms = await members();
    expect(ms.map((m) => m.externalId).sort()).toEqual(['E1', 'E2', 'E3']);
    expect(ms.find((m) => m.externalId === 'E1')?.name).toBe('Svensson, Anna');
    expect((await tagByUid('A1B2C3D4'))?.unitId).toBe('unit-rtj-2310');
    expect((await tagByUid('A1B2C3D5'))?.status).toBe('active');
    expect((await gw.store.list('units', { where: { field: 'agencyId', value: FIRE } })).some((u) => u.callSign === 'NEW 77')).toBe(true);
    // Importing the same file again changes nothing.
    const again = await importCsv(ROSTER, 'mode=sync');
    expect(again.body['counts']).toEqual({ create: 0, update: 0, remove: 0, unchanged: 3 });

    // A live grant for the unit: the member's tag opens the door.
    const inc = await call('/api/v1/incidents', { who: 'dispatch', body: JSON.stringify({ kind: 'fire', location: { lat: 59.3135, lng: 18.0718 }, address: 'Götgatan 78' }) });
    expect(inc.status).toBe(201);
    const g = await call(`/api/v1/incidents/${String(inc.body['id'])}/grants`, {
      who: 'dispatch',
      body: JSON.stringify({ minutes: 20, buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'] }),
    });
    expect(g.status, JSON.stringify(g.body)).toBe(201);
    await until(() => present('A1B2C3D4') === 'granted', 'the member tag opens the door');
    expect(present('A1B2C3D5')).toBe('granted');

    // Sync without E1: their tag is blocked, audited, and leaves the controller's set.
    const dry = await importCsv('externalId,name,unitCallSign,tagUids\nE2,Per Berg,RTJ 2310,A1B2C3D5;A1B2C3D6\nE3,Nils Nyberg,NEW 77,\n', 'mode=sync&dryRun=true');
    expect(dry.body['counts']).toEqual({ create: 0, update: 0, remove: 1, unchanged: 2 });
    expect(dry.body['tagsToBlock']).toEqual(['A1B2C3D4']);
    expect((await tagByUid('A1B2C3D4'))?.status).toBe('active');
    const sync = await importCsv('externalId,name,unitCallSign,tagUids\nE2,Per Berg,RTJ 2310,A1B2C3D5;A1B2C3D6\nE3,Nils Nyberg,NEW 77,\n', 'mode=sync');
    expect(sync.status, JSON.stringify(sync.body)).toBe(200);
    expect((await tagByUid('A1B2C3D4'))?.status).toBe('blocked');
    expect((await members()).map((m) => m.externalId).sort()).toEqual(['E2', 'E3']);
    await until(() => present('A1B2C3D4') === 'denied', 'the removed member tag no longer opens');
    expect(present('A1B2C3D5')).toBe('granted');
    expect(present('F1231001')).toBe('granted'); // the unit's own (non-roster) tag is untouched
    const audit = await gw.store.auditQuery({ types: ['tag.blocked'], limit: 100 });
    const admin = (await gw.store.list('users', { where: { field: 'username', value: 'admin' } }))[0]!;
    const removedTag = (await tagByUid('A1B2C3D4'))!;
    const entry = audit.items.find((e) => e.tagId === removedTag.id);
    expect(entry?.reason).toBe('roster-removed');
    expect(entry?.actor).toEqual({ kind: 'user', id: admin.id });
    expect(entry?.data?.['externalId']).toBe('E1');

    // A merge never removes anyone.
    const merge = await importCsv('externalId,name,unitCallSign,tagUids\nE4,New Person,RTJ 2310,A1B2C3D7\n', 'mode=merge');
    expect(merge.body['counts']).toEqual({ create: 1, update: 0, remove: 0, unchanged: 0 });
    expect((await members()).length).toBe(3);
    await until(() => present('A1B2C3D7') === 'granted', 'a new member tag reaches the controller');
  });

  it('SCIM: create, list, filter, suspend (tags blocked), delete; errors in the SCIM shape', async () => {
    for (const who of ['dispatch', 'owner', 'responder'] as const) expect((await scim('', 'GET', undefined, who)).status, who).toBe(403);
    const created = await scim('', 'POST', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'S1', name: { formatted: 'Sara Scim' }, active: true, [EXT]: { unitCallSign: 'RTJ 2310', tagUids: ['C1C2C3C4'] } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.type).toMatch(/application\/scim\+json/);
    expect(created.body['externalId']).toBe('S1');
    const id = String(created.body['id']);
    await until(() => present('C1C2C3C4') === 'granted', 'the SCIM member tag opens');

    const dup = await scim('', 'POST', { userName: 'S1', name: { formatted: 'Again' } });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '409', scimType: 'uniqueness' });
    const taken = await scim('', 'POST', { userName: 'S2', name: { formatted: 'Taker' }, [EXT]: { unitCallSign: 'RTJ 2310', tagUids: ['C1C2C3C4'] } });
    expect(taken.status).toBe(409);

    const list = await scim(`?filter=${encodeURIComponent('externalId eq "S1"')}`, 'GET');
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'], totalResults: 1 });
    expect((list.body['Resources'] as { id: string }[])[0]?.id).toBe(id);
    const all = await scim('', 'GET');
    expect(all.body['totalResults']).toBe(4);
    const badFilter = await scim(`?filter=${encodeURIComponent('name co "x"')}`, 'GET');
    expect(badFilter.status).toBe(400);
    expect(badFilter.body).toMatchObject({ status: '400', scimType: 'invalidFilter' });
    const badBody = await scim('', 'POST', { userName: 'S3' });
    expect(badBody.body).toMatchObject({ status: '400', scimType: 'invalidValue' });
    expect((await scim('/rm-nope', 'GET')).body).toMatchObject({ status: '404' });
    // Bad path and query input, and bad tokens, answer in the SCIM shape too.
    expect((await scim(`/${'a'.repeat(300)}`, 'GET')).body).toMatchObject({ status: '400', scimType: 'invalidValue' });
    expect((await scim('?bogus=1', 'GET')).body).toMatchObject({ status: '400' });
    const anon = await call(SCIM);
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    expect((await scim(`/${id}`, 'PATCH', { Operations: [{ op: 'replace', path: 'emails', value: [] }] })).body).toMatchObject({ status: '400', scimType: 'invalidPath' });
    expect((await scim(`/${id}`, 'PUT', { userName: 'OTHER', name: { formatted: 'X' } })).body).toMatchObject({ status: '400', scimType: 'mutability' });

    const suspended = await scim(`/${id}`, 'PATCH', { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
    expect(suspended.status, JSON.stringify(suspended.body)).toBe(200);
    expect(suspended.body['active']).toBe(false);
    expect((await tagByUid('C1C2C3C4'))?.status).toBe('blocked');
    await until(() => present('C1C2C3C4') === 'denied', 'the suspended member tag no longer opens');
    const blocked = (await gw.store.auditQuery({ types: ['tag.blocked'], limit: 100 })).items.filter((e) => e.data?.['externalId'] === 'S1');
    expect(blocked.map((e) => e.reason)).toEqual(['roster-removed']);

    // DELETE: E2 over SCIM; their two tags go.
    const e2 = (await members()).find((m) => m.externalId === 'E2')!;
    expect((await scim(`/${e2.id}`, 'DELETE')).status).toBe(204);
    expect((await tagByUid('A1B2C3D5'))?.status).toBe('blocked');
    expect((await tagByUid('A1B2C3D6'))?.status).toBe('blocked');
    await until(() => present('A1B2C3D5') === 'denied', 'the deleted member tag no longer opens');
    expect(present('A1B2C3D7')).toBe('granted');
    expect((await scim(`/${e2.id}`, 'GET')).status).toBe(404);
  });
});
