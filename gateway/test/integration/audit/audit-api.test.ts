// The audit trail as its users meet it (issue 4): the demo gateway (embedded store and broker)
// records an incident end to end; owners read only their buildings' log; an owner downloads an
// export over HTTP and verifies it offline with the CLI; the live feed resumes with no gap and no
// duplicate.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, trustedKeys, verifyAuditSignature, type AuditCheckpoint, type AuditItem } from '@smart-passage/protocol';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { Gateway } from '../../../src/gateway.js';

const VERIFY_CLI = fileURLToPath(new URL('../../../../protocol/dist/cli/audit-verify.js', import.meta.url));
const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
const dir = mkdtempSync(join(tmpdir(), 'sp-audit-'));
let gw: Gateway;

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
    audit: { checkpointEvery: 7, checkpointMs: 300 },
  });
  await gw.start();
}, 60_000);
afterAll(async () => {
  await gw.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Body = Record<string, unknown> & { error?: { code: string } };
async function api(path: string, o: { token?: string; body?: unknown; method?: string } = {}): Promise<{ status: number; body: Body; text: string; headers: Headers }> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  let body: Body = {};
  try {
    body = JSON.parse(text) as Body;
  } catch {
    // not JSON (an export)
  }
  return { status: res.status, body, text, headers: res.headers };
}
const tokens = new Map<string, string>();
/** One login per user for the whole file (the login limiter counts attempts). */
async function login(username: keyof typeof PASSWORDS): Promise<string> {
  const cached = tokens.get(username);
  if (cached) return cached;
  const r = await api('/api/v1/auth/login', { body: { username, password: PASSWORDS[username] } });
  expect(r.status, r.text).toBe(200);
  tokens.set(username, r.body.accessToken as string);
  return r.body.accessToken as string;
}
const until = async (cond: () => Promise<boolean> | boolean, ms = 8000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
};
/** Every entry the caller can see with these filters, following `next`. */
async function all(token: string, query = ''): Promise<AuditItem[]> {
  const out: AuditItem[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const r = await api(`/api/v1/audit?limit=1000${query}${cursor ? `&cursor=${cursor}` : ''}`, { token });
    expect(r.status, r.text).toBe(200);
    out.push(...(r.body.items as AuditItem[]));
    cursor = r.body.next as string | undefined;
    if (!cursor) return out;
  }
  throw new Error('too many pages');
}
const run = promisify(execFile);
async function verifyCli(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run(process.execPath, [VERIFY_CLI, ...args], { timeout: 30_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

let grantId = '';
let incidentId = '';

describe('the audit trail on the demo gateway', () => {
  it('records an incident end to end in the building chain: opened, granted, delivered, used, revoked, closed', async () => {
    const token = await login('dispatch');
    await until(async () => (await gw.store.list('controllerLive', { limit: 100 })).filter((l) => l.online).length === 15);
    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 }, address: 'Götgatan 78' } });
    expect(inc.status, inc.text).toBe(201);
    incidentId = String(inc.body.id);
    const created = await api(`/api/v1/incidents/${incidentId}/grants`, {
      token,
      body: { buildingId: 'bld-01', doorIds: ['door-01-1', 'door-01-2'], unitIds: ['unit-rtj-2310'], pin: true, minutes: 20 },
    });
    expect(created.status, created.text).toBe(201);
    const pin = String(created.body.pin);
    grantId = (created.body.grant as { id: string }).id;
    await until(async () => (await api(`/api/v1/grants/${grantId}`, { token })).body.status === 'active');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    expect(street?.presentTag('entre', 'F1231001')).toMatchObject({ result: 'granted' });
    expect(street?.presentTag('entre', 'FFFFFFFF')).toMatchObject({ result: 'denied' });
    await api(`/api/v1/grants/${grantId}/revoke`, { token, method: 'POST' });
    await api(`/api/v1/incidents/${incidentId}/close`, { token, method: 'POST' });

    let items: AuditItem[] = [];
    await until(async () => {
      items = await all(token, `&incidentId=${incidentId}`);
      return items.some((i) => i.type === 'incident.closed');
    });
    const types = items.map((i) => i.type);
    for (const t of ['grant.created', 'grant.delivered', 'grant.revoked', 'incident.closed'] as const) expect(types, t).toContain(t);
    const building = await all(token, '&buildingId=bld-01');
    // The tag is named by our id, the door by ours; an unknown card by the uid the reader saw.
    const used = building.find((i) => i.type === 'access.granted' && i.grantId === grantId);
    expect(used).toMatchObject({ actor: { kind: 'controller', id: 'ctl-sofa-01' }, doorId: 'door-01-1', unitId: 'unit-rtj-2310' });
    expect(used?.tagId).toMatch(/^tag-/);
    const denied = building.find((i) => i.type === 'access.denied' && i.controllerId === 'ctl-sofa-01');
    expect(denied?.data).toMatchObject({ uid: 'FFFFFFFF' });
    // Chain order and actor.
    const created1 = building.find((i) => i.type === 'grant.created' && i.grantId === grantId);
    expect(created1?.actor).toMatchObject({ kind: 'user', id: 'user-dispatch' });
    expect(created1?.chain).toBe('building:bld-01');
    // No PIN anywhere in the trail.
    expect(JSON.stringify(await all(await login('admin')))).not.toContain(pin);
  });

  it('records logins and failed logins (system chain) without the password', async () => {
    await api('/api/v1/auth/login', { body: { username: 'dispatch', password: 'wrong-password-xyz' } });
    const admin = await login('admin');
    const failed = await all(admin, '&type=auth.login-failed');
    expect(failed.some((i) => i.chain === 'system' && i.data?.username === 'dispatch')).toBe(true);
    expect(JSON.stringify(await all(admin, '&type=auth.login,auth.login-failed'))).not.toContain('wrong-password-xyz');
  });

  it('scopes the log: an owner sees only its buildings; another organisation\'s building is not found', async () => {
    const owner = await login('owner');
    const mine = await all(owner);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((i) => i.chain.startsWith('building:'))).toBe(true);
    expect(mine.some((i) => i.grantId === grantId)).toBe(true);
    const brf = await login('owner-brf');
    const theirs = await all(brf);
    expect(theirs.some((i) => i.grantId === grantId || i.buildingId === 'bld-01')).toBe(false);
    expect((await api('/api/v1/audit?buildingId=bld-01', { token: brf })).status).toBe(404);
    expect((await api('/api/v1/audit/export?buildingId=bld-01', { token: brf })).status).toBe(404);
    expect((await api('/api/v1/audit/checkpoints?buildingId=bld-01', { token: brf })).status).toBe(404);
    // Responders read no log; nobody without a token does.
    expect((await api('/api/v1/audit', { token: await login('responder') })).status).toBe(403);
    expect((await api('/api/v1/audit')).status).toBe(401);
    // Bad filters are refused with a code.
    expect((await api('/api/v1/audit?type=nope', { token: owner })).body.error?.code).toBe('validation-failed');
    expect((await api('/api/v1/audit?from=yesterday', { token: owner })).body.error?.code).toBe('validation-failed');
    expect((await api('/api/v1/audit?cursor=abc', { token: owner })).body.error?.code).toBe('validation-failed');
  });

  it('filters by type, time range and incident, and pages with a cursor', async () => {
    const token = await login('admin');
    const everything = await all(token);
    expect(everything.length).toBeGreaterThan(20);
    // (at, id) order.
    for (let i = 1; i < everything.length; i++) {
      const a = everything[i - 1]!;
      const b = everything[i]!;
      expect(a.at < b.at || (a.at === b.at && Number(a.id) < Number(b.id))).toBe(true);
    }
    const small: AuditItem[] = [];
    let cursor: string | undefined;
    do {
      const r = await api(`/api/v1/audit?limit=3${cursor ? `&cursor=${cursor}` : ''}`, { token });
      small.push(...(r.body.items as AuditItem[]));
      cursor = r.body.next as string | undefined;
    } while (cursor);
    expect(small.map((i) => i.id)).toEqual(everything.map((i) => i.id));
    const mid = everything[Math.floor(everything.length / 2)]!;
    const from = new Date(mid.at).toISOString();
    const later = await all(token, `&from=${encodeURIComponent(from)}`);
    expect(later.every((i) => i.at >= mid.at)).toBe(true);
    expect(later.length).toBe(everything.filter((i) => i.at >= mid.at).length);
    const grants = await all(token, '&type=grant.created,grant.revoked');
    expect(grants.every((i) => i.type === 'grant.created' || i.type === 'grant.revoked')).toBe(true);
  });

  it('newest first: order=desc pages, followed backwards to the end, are the oldest-first list reversed', async () => {
    const pages = async (token: string, query: string, limit: number): Promise<AuditItem[]> => {
      const out: AuditItem[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 1000; i++) {
        const r = await api(`/api/v1/audit?order=desc&limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`, { token });
        expect(r.status, r.text).toBe(200);
        expect((r.body.items as AuditItem[]).length).toBeLessThanOrEqual(limit);
        out.push(...(r.body.items as AuditItem[]));
        cursor = r.body.next as string | undefined;
        if (!cursor) return out;
      }
      throw new Error('too many pages');
    };
    const admin = await login('admin');
    const owner = await login('owner');
    // A fixed upper bound, so entries recorded meanwhile (logins, the live demo) do not shift the
    // lists; after a pause, so none stamped before it is still on its way into the store.
    const to = `&to=${encodeURIComponent(new Date(Date.now()).toISOString())}`;
    await new Promise((r) => setTimeout(r, 300));
    for (const [token, query] of [
      [admin, to],
      [admin, `${to}&type=grant.created,access.granted,access.denied`],
      [owner, to],
      [owner, `${to}&buildingId=bld-01`],
    ] as const) {
      const asc = await all(token, query);
      expect(asc.length, query).toBeGreaterThan(1);
      const reversed = asc.map((i) => i.id).reverse();
      for (const limit of [1, 3, 1000]) expect((await pages(token, query, limit)).map((i) => i.id), `${query} limit ${limit}`).toEqual(reversed);
    }
    // The first desc page starts at the newest entry; asc is still the default, and a bad order is refused.
    const newest = await api(`/api/v1/audit?order=desc&limit=2${to}`, { token: admin });
    const everything = await all(admin, to);
    expect((newest.body.items as AuditItem[]).map((i) => i.id)).toEqual(everything.slice(-2).reverse().map((i) => i.id));
    const dflt = await api(`/api/v1/audit?limit=2${to}`, { token: admin });
    expect((dflt.body.items as AuditItem[]).map((i) => i.id)).toEqual(everything.slice(0, 2).map((i) => i.id));
    expect((await api('/api/v1/audit?order=newest', { token: admin })).body.error?.code).toBe('validation-failed');
  });

  it('signs checkpoints with the audit key; an owner exports (JSONL and CSV) and the CLI verifies the files offline', async () => {
    const owner = await login('owner');
    const keys = await api('/api/v1/audit/keys', { token: owner });
    expect(keys.status).toBe(200);
    const keyList = keys.body.keys as { kid: string; publicKey: string }[];
    expect(keyList[0]?.publicKey).not.toBe(gw.keys.gateway.current.publicKey);
    await until(async () => ((await api('/api/v1/audit/checkpoints?buildingId=bld-01', { token: owner })).body.items as unknown[]).length > 0);
    const cps = await api('/api/v1/audit/checkpoints?buildingId=bld-01', { token: owner });

    const keysFile = join(dir, 'audit-keys.json');
    writeFileSync(keysFile, keys.text);
    const cpsFile = join(dir, 'checkpoints.json');
    writeFileSync(cpsFile, cps.text);
    for (const format of ['jsonl', 'csv'] as const) {
      const res = await api(`/api/v1/audit/export?buildingId=bld-01&format=${format}`, { token: owner });
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get('content-disposition')).toContain(`.${format}`);
      const file = join(dir, `bld-01.${format}`);
      writeFileSync(file, res.text);
      const ok = await verifyCli([file, '--keys', keysFile, '--checkpoints', cpsFile]);
      expect(ok.code, ok.out).toBe(0);
      expect(ok.out).toMatch(/OK/);
    }
    // The export itself is recorded.
    await until(async () => (await all(owner, '&type=audit.exported')).length >= 2);

    // An altered copy of the downloaded export fails, naming the entry.
    const text = readFileSync(join(dir, 'bld-01.jsonl'), 'utf8');
    const lines = text.trimEnd().split('\n');
    const idx = lines.findIndex((l) => l.includes('"grant.created"'));
    const altered = [...lines];
    altered[idx] = altered[idx]!.replace('"user-dispatch"', '"user-admin"');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${altered.join('\n')}\n`);
    const r = await verifyCli([bad, '--keys', keysFile]);
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/FAILED/);
    expect(r.out).toContain(String((JSON.parse(lines[idx]!) as { seq: number }).seq));
  });

  it('verifies the stored chains on request (the integrity badge)', async () => {
    const owner = await login('owner');
    const v = await api('/api/v1/audit/verify?buildingId=bld-01', { token: owner });
    expect(v.status, v.text).toBe(200);
    expect(v.body.ok).toBe(true);
    expect(v.body.entries as number).toBeGreaterThan(5);
  });

  it('live feed: audit entries reach dispatch and the owning organisation only; a reconnect resumes with no gap and no duplicate', async () => {
    const connect = async (user: keyof typeof PASSWORDS, lastAuditId?: string) => {
      const got: AuditItem[] = [];
      const s: Socket = io(gw.httpUrl, { auth: { token: await login(user), ...(lastAuditId ? { lastAuditId } : {}) }, transports: ['websocket'], reconnection: false });
      s.on('audit', (a: AuditItem) => got.push(a));
      await new Promise<void>((resolve, reject) => {
        s.once('snapshot', () => resolve());
        s.once('connect_error', reject);
      });
      return { s, got };
    };
    const owner = await connect('owner');
    const brf = await connect('owner-brf');
    const token = await login('dispatch');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    street?.presentTag('entre', 'EEEEEEE1');
    await until(() => owner.got.some((a) => a.type === 'access.denied'));
    const lastSeen = owner.got[owner.got.length - 1]!.id;
    owner.s.close();
    // While the owner is away: entries on its building.
    for (let i = 0; i < 5; i++) street?.presentTag('entre', `EEEEEEE${i + 2}`);
    const inc = await api('/api/v1/incidents', { token, body: { kind: 'fire', location: { lat: 59.3146, lng: 18.0745 } } });
    await api(`/api/v1/incidents/${String(inc.body.id)}/grants`, { token, body: { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], minutes: 5 } });
    const expected = async () => (await all(await login('owner'))).filter((i) => Number(i.id) > Number(lastSeen));
    await until(async () => (await expected()).filter((i) => i.type === 'access.denied').length >= 5 && (await expected()).some((i) => i.type === 'grant.created'));
    // Entries keep coming while it reconnects.
    const back = await connect('owner', lastSeen);
    const more = setInterval(() => street?.presentTag('entre', 'EEEEEEF0'), 20);
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(more);
    await new Promise((r) => setTimeout(r, 500));
    const want = (await expected()).map((i) => i.id).sort((a, b) => Number(a) - Number(b));
    await until(() => back.got.length >= want.length);
    const ids = back.got.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length); // no duplicate
    expect(ids).toEqual(want); // no gap, in order
    expect(brf.got.some((a) => a.buildingId === 'bld-01')).toBe(false);
    back.s.close();
    brf.s.close();
  });

  it('pushes newly signed checkpoints to the owning organisation (to keep), not to others', async () => {
    const sockets: Socket[] = [];
    const got = { owner: [] as AuditCheckpoint[], brf: [] as AuditCheckpoint[] };
    for (const who of ['owner', 'owner-brf'] as const) {
      const s: Socket = io(gw.httpUrl, { auth: { token: await login(who) }, transports: ['websocket'], reconnection: false });
      s.on('checkpoint', (cp: AuditCheckpoint) => got[who === 'owner' ? 'owner' : 'brf'].push(cp));
      await new Promise<void>((resolve, reject) => {
        s.once('snapshot', () => resolve());
        s.once('connect_error', reject);
      });
      sockets.push(s);
    }
    gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01')?.presentTag('entre', 'EEEEEEF1');
    await until(() => got.owner.some((cp) => cp.chain === 'building:bld-01'));
    const keys = trustedKeys([{ kid: gw.keys.audit.kid, publicKey: gw.keys.audit.publicKey }]);
    for (const cp of got.owner) expect(verifyAuditSignature({ ...cp }, keys)).toBe('ok');
    expect(got.brf.some((cp) => cp.chain === 'building:bld-01')).toBe(false);
    for (const s of sockets) s.close();
  });

  it("sends a building's live entries to its new owner as soon as it moves to another organisation (the fan-out's owner cache, issue 7)", async () => {
    const connect = async (user: keyof typeof PASSWORDS) => {
      const got: AuditItem[] = [];
      const s: Socket = io(gw.httpUrl, { auth: { token: await login(user) }, transports: ['websocket'], reconnection: false });
      s.on('audit', (a: AuditItem) => got.push(a));
      await new Promise<void>((resolve, reject) => {
        s.once('snapshot', () => resolve());
        s.once('connect_error', reject);
      });
      return { s, got };
    };
    const admin = await login('admin');
    const owner = await connect('owner');
    const brf = await connect('owner-brf');
    const street = gw.demo?.controllers.find((c) => c.id === 'ctl-sofa-01');
    const denied = (got: AuditItem[], from = 0) => got.slice(from).some((a) => a.buildingId === 'bld-01' && a.type === 'access.denied');
    // An entry on bld-01 reaches its owner: the gateway now holds bld-01 → that organisation.
    street?.presentTag('entre', 'EEEEEEF2');
    await until(() => denied(owner.got));
    const before = (await api('/api/v1/buildings/bld-01', { token: admin })).body.orgId as string;
    const moved = await api('/api/v1/buildings/bld-01', { token: admin, method: 'PATCH', body: { orgId: 'org-brf-nytorgsvinkeln' } });
    expect(moved.status, moved.text).toBe(200);
    try {
      const seen = owner.got.length;
      street?.presentTag('entre', 'EEEEEEF3');
      // Well within the cache's TTL: only the invalidation on the change can make this pass.
      await until(() => denied(brf.got));
      await new Promise((r) => setTimeout(r, 300));
      expect(denied(owner.got, seen)).toBe(false);
    } finally {
      const back = await api('/api/v1/buildings/bld-01', { token: admin, method: 'PATCH', body: { orgId: before } });
      expect(back.status, back.text).toBe(200);
      owner.s.close();
      brf.s.close();
    }
  });
});
