// The real-time channel (DESIGN §6, §7) on a real HTTP server on an ephemeral port, spoken to by
// socket.io-client, with access tokens from the real TokenService (keys generated in a temp dir,
// sessions in the embedded store).
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { silentLogger, type LogFields, type Logger } from '@smart-passage/protocol';
import { Realtime } from '../../../src/adapters/realtime.js';
import type { ControllerLive, Grant, Incident, User } from '../../../src/domain/types.js';
import { TokenService } from '../../../src/features/auth/tokens.js';
import type {
  AuditItem,
  AuthRefreshResult,
  ClientToServerEvents,
  ConnectErrorData,
  RealtimePrincipal,
  ServerToClientEvents,
} from '../../../src/features/realtime/events.js';
import { loadOrCreateKeys } from '../../../src/keys/key-store.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import { StoreUnavailableError } from '../../../src/store/port.js';

type Client = ClientSocket<ServerToClientEvents, ClientToServerEvents>;
interface Received {
  event: string;
  payload: unknown;
}

const ISSUER = 'smart-passage';
const AUDIENCE = 'smart-passage-api';
const PIN = '734901';

const user = (id: string, role: User['role'], extra: Partial<User> = {}): User => ({
  id, username: id, displayName: id, role, passwordHash: 'scrypt$x', disabled: false, createdAt: 0, ...extra,
});
const USERS = {
  dispatcher: user('u-disp', 'dispatcher', { orgId: 'org-ops' }),
  slow: user('u-slow', 'dispatcher'),
  ownerA: user('u-owner-a', 'owner', { orgId: 'org-a' }),
  ownerB: user('u-owner-b', 'owner', { orgId: 'org-b' }),
  responder: user('u-resp', 'responder', { unitId: 'unit-1' }),
  responder2: user('u-resp-2', 'responder', { unitId: 'unit-2' }),
  orphanOwner: user('u-orphan', 'owner'),
  storeDown: user('u-store-down', 'dispatcher'),
};

const BUILDING_ORG: Record<string, string> = { 'b-a': 'org-a', 'b-b': 'org-b' };

function grant(id: string, buildingId: string, unitIds: string[], pin?: string): Grant {
  return {
    id, incidentId: 'i-1', buildingId, doorIds: ['d-1', 'd-2'], unitIds, notBefore: 1, notAfter: 2, status: 'active',
    createdBy: 'u-disp', createdAt: 1, deliveries: [{ controllerId: 'c-1', version: 3, state: 'delivered', deliveredAt: 2 }],
    ...(pin === undefined ? {} : { pin }),
  };
}
const INCIDENT: Incident = { id: 'i-1', kind: 'fire', location: { lat: 59.33, lng: 18.06 }, status: 'open', buildingIds: ['b-a'], openedBy: 'u-disp', openedAt: 1 };
const CONTROLLER: ControllerLive = { id: 'c-1', online: true, appliedVersion: 3, lastSeq: 9, clockSafe: true, doors: [] };
const GRANTS = [grant('g-a', 'b-a', ['unit-1'], PIN), grant('g-b', 'b-b', ['unit-2'], PIN)];
/** An audit entry as the channel carries it; only `id` matters to these tests. */
const audit = (id: string, seq = 1): AuditItem => ({ id, hash: '0'.repeat(64), v: 1, chain: 'system', seq, at: 1, type: 'auth.login', actor: { kind: 'system' } });
const AUDIT: AuditItem[] = [audit('a-1', 1), audit('a-2', 2), audit('a-3', 3), audit('a-4', 4)];

/** A deferred the slow user's snapshot waits on, to publish while a handshake is in progress. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Records every log line, to prove no token or PIN is ever logged. */
class CapturingLogger implements Logger {
  readonly lines: string[] = [];
  #log(level: string, msg: string, fields?: LogFields): void {
    this.lines.push(JSON.stringify({ level, msg, ...fields }));
  }
  debug(msg: string, fields?: LogFields): void { this.#log('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.#log('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.#log('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.#log('error', msg, fields); }
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('realtime channel', () => {
  let dir: string;
  let store: EmbeddedStore;
  let tokens: TokenService;
  let shortTokens: TokenService;
  let publicKeyPem: string;
  let server: Server;
  let url: string;
  let realtime: Realtime;
  const logger = new CapturingLogger();
  const clients: Client[] = [];
  const issued: string[] = [];
  let slowGate = deferred();
  let slowStarted = false;

  const token = (u: User, svc = tokens): string => {
    const t = svc.issueAccess(u).token;
    issued.push(t);
    return t;
  };

  /** A client that records every event it receives, in order. */
  function open(auth: Record<string, unknown> | undefined, extra: { query?: Record<string, string> } = {}): { socket: Client; got: Received[] } {
    const socket: Client = connectClient(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      ...(auth === undefined ? {} : { auth }),
      ...extra,
    });
    const got: Received[] = [];
    socket.onAny((event: string, payload: unknown) => got.push({ event, payload }));
    clients.push(socket);
    return { socket, got };
  }

  function connected(socket: Client): Promise<void> {
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
  }

  async function refusal(auth: Record<string, unknown> | undefined, extra: { query?: Record<string, string> } = {}): Promise<{ message: string; data: ConnectErrorData }> {
    const { socket } = open(auth, extra);
    const err = await new Promise<Error & { data?: ConnectErrorData }>((resolve, reject) => {
      socket.once('connect', () => reject(new Error('connected, expected a refusal')));
      socket.once('connect_error', resolve);
    });
    socket.close();
    expect(err.data).toBeDefined();
    return { message: err.message, data: err.data as ConnectErrorData };
  }

  async function enter(u: User, auth: Record<string, unknown> = {}): Promise<{ socket: Client; got: Received[] }> {
    const c = open({ token: token(u), ...auth });
    await connected(c.socket);
    await until(() => c.got.some((r) => r.event === 'snapshot'), `${u.id} snapshot`);
    return c;
  }

  const events = (got: Received[], event: string) => got.filter((r) => r.event === event).map((r) => r.payload);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sp-realtime-'));
    const keys = await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: silentLogger });
    publicKeyPem = keys.jwt.publicKeyPem;
    store = new EmbeddedStore({ path: ':memory:' });
    await store.start();
    tokens = new TokenService({ ...keys.jwt, issuer: ISSUER, audience: AUDIENCE, store });
    shortTokens = new TokenService({ ...keys.jwt, issuer: ISSUER, audience: AUDIENCE, store, accessTtlSec: 2 });

    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('api');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // The caller's scoping, as the gateway's composition root will do it from the store.
    const snapshot = async (p: RealtimePrincipal) => {
      if (p.sub === USERS.storeDown.id) throw new StoreUnavailableError(new Error('connection refused'));
      if (p.sub === USERS.slow.id) {
        slowStarted = true;
        await slowGate.promise;
      }
      const dispatch = p.role === 'admin' || p.role === 'dispatcher';
      const grants = GRANTS.filter((g) => dispatch || (p.role === 'owner' ? BUILDING_ORG[g.buildingId] === p.orgId : g.unitIds.includes(p.unitId ?? '')));
      return { incidents: dispatch ? [INCIDENT] : [], grants: structuredClone(grants), controllers: dispatch ? [CONTROLLER] : [] };
    };
    const auditSince = (_p: RealtimePrincipal, lastId: string) => Promise.resolve(AUDIT.slice(AUDIT.findIndex((a) => a.id === lastId) + 1));

    realtime = new Realtime({
      httpServer: server,
      verify: (t) => tokens.verifyAccess(t),
      snapshot,
      auditSince,
      logger,
      corsOrigins: ['https://dispatch.example.org'],
    });
    realtime.start();
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await realtime.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await store.stop();
    rmSync(dir, { recursive: true, force: true });
    // Nothing secret in any log line.
    const log = logger.lines.join('\n');
    expect(log).not.toContain(PIN);
    for (const t of issued) expect(log).not.toContain(t);
  });

  describe('handshake', () => {
    const claims = () => ({ sub: 'u-disp', role: 'admin', jti: 'j1', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, iss: ISSUER, aud: AUDIENCE });

    it('refuses a connection without a token: unauthenticated', async () => {
      expect((await refusal(undefined)).data.code).toBe('unauthenticated');
      expect((await refusal({})).data.code).toBe('unauthenticated');
      expect((await refusal({ token: 42 })).data.code).toBe('unauthenticated');
    });

    it('ignores a token in the query string (URLs end up in logs)', async () => {
      expect((await refusal(undefined, { query: { token: token(USERS.dispatcher) } })).data.code).toBe('unauthenticated');
    });

    it('refuses garbage, alg none, HS256 keyed with the public key, and another key: unauthenticated', async () => {
      const signingInput = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims())}`;
      const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const other = new TokenService({
        privateKeyPem: otherKey.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        publicKeyPem: otherKey.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        issuer: ISSUER,
        audience: AUDIENCE,
        store,
      });
      const forged: [string, string][] = [
        ['garbage', 'not-a-jwt'],
        ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
        ['HS256 keyed with the public key', `${signingInput}.${createHmac('sha256', publicKeyPem).update(signingInput).digest('base64url')}`],
        ['ES256 from another key', other.issueAccess(USERS.dispatcher).token],
      ];
      for (const [name, t] of forged) {
        const r = await refusal({ token: t });
        expect(r.data.code, name).toBe('unauthenticated');
        expect(r.message, name).not.toContain(t);
      }
    });

    it('refuses an expired token: token-expired', async () => {
      const past = new TokenService({ ...(await keysOf()), issuer: ISSUER, audience: AUDIENCE, store, accessTtlSec: 60, now: () => Date.now() - 3_600_000 });
      expect((await refusal({ token: token(USERS.dispatcher, past) })).data).toEqual({ code: 'token-expired', message: 'access token expired' });
    });

    it('refuses a revoked token (logout): unauthenticated', async () => {
      const issuedAccess = tokens.issueAccess(USERS.ownerA);
      await tokens.logout({ access: issuedAccess.claims });
      expect((await refusal({ token: issuedAccess.token })).data.code).toBe('unauthenticated');
    });

    it('refuses a user with no scope (an owner without an organisation): forbidden', async () => {
      expect((await refusal({ token: token(USERS.orphanOwner) })).data.code).toBe('forbidden');
    });

    it('refuses with unavailable when the snapshot cannot be read', async () => {
      expect((await refusal({ token: token(USERS.storeDown) })).data.code).toBe('unavailable');
    });

    it('refuses a malformed lastAuditId: validation-failed', async () => {
      expect((await refusal({ token: token(USERS.dispatcher), lastAuditId: 7 })).data.code).toBe('validation-failed');
    });

    /** The JWT key pair of this test's data dir (loadOrCreateKeys reads what it generated). */
    async function keysOf() {
      return (await loadOrCreateKeys({ dataDir: dir, env: {}, generate: false, logger: silentLogger })).jwt;
    }
  });

  describe('rooms and snapshot', () => {
    it('gives each principal a snapshot of its scope first, with the PIN for dispatch only', async () => {
      const disp = await enter(USERS.dispatcher);
      const ownerA = await enter(USERS.ownerA);
      const resp = await enter(USERS.responder);
      for (const c of [disp, ownerA, resp]) expect(c.got[0]?.event).toBe('snapshot');

      const [dSnap] = events(disp.got, 'snapshot') as { grants: Grant[]; incidents: Incident[]; at: number }[];
      expect(dSnap?.grants.map((g) => [g.id, g.pin])).toEqual([['g-a', PIN], ['g-b', PIN]]);
      expect(dSnap?.incidents).toEqual([INCIDENT]);
      expect(typeof dSnap?.at).toBe('number');
      const [aSnap] = events(ownerA.got, 'snapshot') as { grants: Grant[] }[];
      expect(aSnap?.grants.map((g) => g.id)).toEqual(['g-a']);
      expect(aSnap?.grants[0]).not.toHaveProperty('pin');
      const [rSnap] = events(resp.got, 'snapshot') as { grants: Grant[] }[];
      expect(rSnap?.grants.map((g) => g.id)).toEqual(['g-a']);
      expect(JSON.stringify(ownerA.got) + JSON.stringify(resp.got)).not.toContain(PIN);
      for (const c of [disp, ownerA, resp]) c.socket.close();
    });

    it('publish reaches dispatch always, the building owner organisation and the units given — no one else', async () => {
      const disp = await enter(USERS.dispatcher);
      const ownerA = await enter(USERS.ownerA);
      const ownerB = await enter(USERS.ownerB);
      const resp = await enter(USERS.responder);
      const resp2 = await enter(USERS.responder2);
      const all = [disp, ownerA, ownerB, resp, resp2];
      expect(realtime.connections).toBeGreaterThanOrEqual(5);

      realtime.publish('grant', grant('g-new', 'b-a', ['unit-1'], PIN), { buildingOrgId: 'org-a', unitIds: ['unit-1'] });
      realtime.publish('incident', INCIDENT, {});
      realtime.publish('controller', { ...CONTROLLER, id: 'c-b' }, { buildingOrgId: 'org-b' });
      realtime.publish('audit', audit('a-unit-2'), { unitIds: ['unit-2'] });
      // Markers after the deltas: once every client has its marker, it has had every delta meant for it.
      realtime.publish('audit', audit('marker'), { buildingOrgId: 'org-a', unitIds: ['unit-1', 'unit-2'] });
      realtime.publish('audit', audit('marker'), { buildingOrgId: 'org-b' });
      for (const c of all) await until(() => events(c.got, 'audit').some((a) => (a as AuditItem).id === 'marker'), 'marker');

      const grants = (c: { got: Received[] }) => (events(c.got, 'grant') as Grant[]).map((g) => g.id);
      expect(grants(disp)).toEqual(['g-new']);
      expect((events(disp.got, 'grant')[0] as Grant).pin).toBe(PIN);
      expect(grants(ownerA)).toEqual(['g-new']);
      expect(grants(resp)).toEqual(['g-new']);
      expect(grants(ownerB)).toEqual([]);
      expect(grants(resp2)).toEqual([]);

      expect(events(disp.got, 'incident')).toEqual([INCIDENT]);
      for (const c of [ownerA, ownerB, resp, resp2]) expect(events(c.got, 'incident')).toEqual([]);

      const ctrls = (c: { got: Received[] }) => (events(c.got, 'controller') as ControllerLive[]).map((x) => x.id);
      expect(ctrls(disp)).toEqual(['c-b']);
      expect(ctrls(ownerB)).toEqual(['c-b']);
      for (const c of [ownerA, resp, resp2]) expect(ctrls(c)).toEqual([]);

      const audits = (c: { got: Received[] }) => (events(c.got, 'audit') as AuditItem[]).map((x) => x.id).filter((id) => id !== 'marker');
      expect(audits(disp)).toEqual(['a-unit-2']);
      expect(audits(resp2)).toEqual(['a-unit-2']);
      for (const c of [ownerA, ownerB, resp]) expect(audits(c)).toEqual([]);

      // No PIN outside dispatch, in any payload.
      for (const c of [ownerA, ownerB, resp, resp2]) expect(JSON.stringify(c.got)).not.toContain(PIN);
      for (const c of all) c.socket.close();
    });

    it('sends the snapshot, then the audit entries after lastAuditId, then deltas published during the handshake', async () => {
      slowGate = deferred();
      slowStarted = false;
      const c = open({ token: token(USERS.slow), lastAuditId: 'a-2' });
      await until(() => slowStarted, 'the slow snapshot to start');
      // Published while the snapshot is being read: held, then sent after it.
      realtime.publish('grant', grant('g-during', 'b-b', ['unit-2'], PIN), { buildingOrgId: 'org-b' });
      realtime.publish('incident', { ...INCIDENT, id: 'i-during' });
      slowGate.resolve();
      await connected(c.socket);
      realtime.publish('incident', { ...INCIDENT, id: 'i-after' });
      await until(() => c.got.length >= 6, 'six events');
      expect(c.got.map((r) => `${r.event}:${(r.payload as { id?: string }).id ?? ''}`)).toEqual([
        'snapshot:',
        'audit:a-3',
        'audit:a-4',
        'grant:g-during',
        'incident:i-during',
        'incident:i-after',
      ]);
      expect((c.got[3]?.payload as Grant).pin).toBe(PIN);
      c.socket.close();
    });
  });

  describe('token expiry', () => {
    it('disconnects a socket when its token expires; the same token is then refused', async () => {
      const t = token(USERS.responder, shortTokens);
      const c = open({ token: t });
      await connected(c.socket);
      const reason = await new Promise<string>((resolve) => c.socket.once('disconnect', resolve));
      expect(reason).toBe('io server disconnect');
      expect(events(c.got, 'auth:expired')).toEqual([{ code: 'token-expired', message: 'access token expired; reconnect with a fresh token' }]);
      expect((await refusal({ token: t })).data.code).toBe('token-expired');
    });

    it('auth:refresh with a fresh token of the same user extends the connection; others are refused', async () => {
      const c = open({ token: token(USERS.responder, shortTokens) });
      await connected(c.socket);
      const refresh = (t: unknown) => c.socket.timeout(3000).emitWithAck('auth:refresh', t as string) as Promise<AuthRefreshResult>;

      await expect(refresh('not-a-jwt')).resolves.toMatchObject({ ok: false, error: { code: 'unauthenticated' } });
      await expect(refresh(42)).resolves.toMatchObject({ ok: false, error: { code: 'validation-failed' } });
      await expect(refresh(token(USERS.responder2))).resolves.toMatchObject({ ok: false, error: { code: 'forbidden' } });
      const moved = { ...USERS.responder, unitId: 'unit-2' };
      await expect(refresh(token(moved))).resolves.toMatchObject({ ok: false, error: { code: 'forbidden' } });

      const fresh = tokens.issueAccess(USERS.responder);
      issued.push(fresh.token);
      await expect(refresh(fresh.token)).resolves.toEqual({ ok: true, exp: fresh.claims.exp });

      // Past the first token's expiry: still connected, still in its room.
      await new Promise((r) => setTimeout(r, 2600));
      expect(c.socket.connected).toBe(true);
      expect(events(c.got, 'auth:expired')).toEqual([]);
      realtime.publish('grant', grant('g-late', 'b-a', ['unit-1'], PIN), { unitIds: ['unit-1'] });
      await until(() => events(c.got, 'grant').length === 1, 'the late grant');
      expect(events(c.got, 'grant')[0]).not.toHaveProperty('pin');
      c.socket.close();
    }, 15_000);
  });

  describe('disconnectUser', () => {
    it("cuts every socket of that user (logout) and no one else's", async () => {
      const a1 = await enter(USERS.ownerA);
      const a2 = await enter(USERS.ownerA);
      const b = await enter(USERS.ownerB);
      const gone = Promise.all([a1, a2].map((c) => new Promise<string>((resolve) => c.socket.once('disconnect', resolve))));
      realtime.disconnectUser(USERS.ownerA.id);
      await expect(gone).resolves.toEqual(['io server disconnect', 'io server disconnect']);
      expect(b.socket.connected).toBe(true);
      b.socket.close();
    });
  });

  describe('stop', () => {
    it('closes every socket, refuses new ones, and leaves the HTTP server serving the API', async () => {
      const disp = await enter(USERS.dispatcher);
      const owner = await enter(USERS.ownerA);
      const gone = Promise.all([disp, owner].map((c) => new Promise<string>((resolve) => c.socket.once('disconnect', resolve))));
      await realtime.stop();
      await expect(gone).resolves.toHaveLength(2);
      expect(realtime.connections).toBe(0);
      realtime.publish('incident', INCIDENT); // a no-op once stopped

      const late = open({ token: token(USERS.dispatcher) });
      await expect(connected(late.socket)).rejects.toBeInstanceOf(Error);
      const res = await fetch(`${url}/api/v1/health`);
      expect(await res.text()).toBe('api');
      const sio = await fetch(`${url}/socket.io/?EIO=4&transport=polling`);
      expect(await sio.text()).toBe('api');
      expect(server.listeners('request')).toHaveLength(1);
      expect(server.listeners('upgrade')).toHaveLength(0);
    });
  });
});
