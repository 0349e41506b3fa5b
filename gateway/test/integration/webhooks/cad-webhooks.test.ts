// Issue 8 end to end on the assembled demo gateway: a CAD integration with an API key opens
// incidents (our body and NENA EIDO JSON, idempotently), may do nothing else, and is refused once
// revoked; a grant and a PIN entered at a demo controller reach the owner's webhook exactly once,
// signed, and the CAD's webhook; a receiver failing twice is retried with backoff, visible in the
// delivery log; a delivery pending across a gateway restart is delivered after it. Receivers are
// real HTTP servers (node:http) on free ports; no secret reaches the log.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io } from 'socket.io-client';
import type { Logger } from '@smart-passage/protocol';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { Gateway, type GatewayOptions } from '../../../src/gateway.js';

const PASSWORDS = { admin: 'admin-pw-1', dispatch: 'dispatch-pw-1', responder: 'responder-pw-1', amb3010: 'amb-pw-1', owner: 'owner-pw-1', 'owner-brf': 'brf-pw-1' };
type Who = keyof typeof PASSWORDS;
const dir = mkdtempSync(join(tmpdir(), 'sp-webhooks-'));
const logLines: string[] = [];
const capture: Logger = {
  debug: (msg, f) => void logLines.push(`${msg} ${JSON.stringify(f ?? {})}`),
  info: (msg, f) => void logLines.push(`${msg} ${JSON.stringify(f ?? {})}`),
  warn: (msg, f) => void logLines.push(`${msg} ${JSON.stringify(f ?? {})}`),
  error: (msg, f) => void logLines.push(`${msg} ${JSON.stringify(f ?? {})}`),
};
const options: GatewayOptions = {
  dataDir: dir,
  http: { host: '127.0.0.1', port: 0 },
  mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
  demo: true,
  demoPasswords: PASSWORDS,
  env: {},
  logger: capture,
  hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
  tickMs: 100,
  webhooks: { backoffMs: 150, pollMs: 50, allowHttp: true, maxAttempts: 6, timeoutMs: 5000 },
};
let gw: Gateway;
const tokens = {} as Record<Who, string>;
/** Everything that must never be logged: API keys, webhook secrets, PINs. */
const secrets: string[] = [];

// ── A webhook receiver: answers from a script (then 200), keeps every request ────────────────────
interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; type: string; building: { id: string } | null; door: { id: string } | null; incident: { id: string; ref?: string } | null; unit: { id: string } | null; grant: { id: string } | null };
}
class Receiver {
  readonly got: Received[] = [];
  script: number[] = [];
  always: number | undefined;
  #server: Server;
  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.got.push({ headers: req.headers, body, json: JSON.parse(body) as Received['json'] });
        res.statusCode = this.script.shift() ?? this.always ?? 200;
        res.end();
      });
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', () => r()));
    return this;
  }
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook?token=abc`;
  }
  of(type: string): Received[] {
    return this.got.filter((g) => g.json.type === type);
  }
  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

interface Reply {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}
async function api(path: string, o: { token?: string; key?: string; xApiKey?: string; body?: unknown; method?: string } = {}): Promise<Reply> {
  const auth = o.token ?? o.key;
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(auth ? { authorization: `Bearer ${auth}` } : {}),
      ...(o.xApiKey ? { 'x-api-key': o.xApiKey } : {}),
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Reply['body'] };
}

/** A receiver's check, written from the documentation (not the gateway's code): t=<unix>,v1=hex(HMAC-SHA256(secret, t + "." + body)). */
function verifySignature(secret: string, body: string, header: string, nowMs: number): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m || Math.abs(nowMs / 1000 - Number(m[1])) > 300) return false;
  const want = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
}

const until = async (cond: () => Promise<boolean> | boolean, what: string, ms = 15_000) => {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

async function login(): Promise<void> {
  for (const who of Object.keys(PASSWORDS) as Who[]) {
    const r = await api('/api/v1/auth/login', { body: { username: who, password: PASSWORDS[who] } });
    expect(r.status).toBe(200);
    tokens[who] = r.body['accessToken'] as string;
  }
}

const owner = new Receiver();
const cad = new Receiver();
/** The organisation of bld-01 and the owner user of it / of the other owner organisation. */
let orgId = '';
let me: Who = 'owner';
let other: Who = 'owner-brf';
let apiKey = '';
let integrationId = '';
let webhookSecret = '';
let ownerSecret = '';

beforeAll(async () => {
  await owner.start();
  await cad.start();
  gw = new Gateway(options);
  await gw.start();
  await login();
  orgId = (await gw.store.get('buildings', 'bld-01'))!.orgId;
  if (orgId !== 'org-soderporten') [me, other] = ['owner-brf', 'owner'];
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  await owner.stop();
  await cad.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A PIN grant on bld-01's street door for an incident, and the PIN typed at its demo controller. */
async function entryThroughGrant(incidentId: string): Promise<{ grantId: string; pin: string }> {
  const r = await api(`/api/v1/incidents/${incidentId}/grants`, { token: tokens.dispatch, body: { buildingId: 'bld-01', doorIds: ['door-01-1'], unitIds: ['unit-rtj-2310'], pin: true, minutes: 20 } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const grantId = (r.body['grant'] as { id: string }).id;
  const pin = r.body['pin'] as string;
  secrets.push(pin);
  const door = (await gw.store.get('doors', 'door-01-1'))!;
  const ctrl = gw.demo!.controllers.find((c) => c.id === door.controllerId)!;
  await until(async () => (await gw.store.get('grants', grantId))?.status === 'active', 'the grant to reach its controller');
  expect(ctrl.enterPin(door.ref, pin).result).toBe('granted');
  return { grantId, pin };
}

describe('integrations and API keys', () => {
  it('an admin creates a CAD integration: the key (sp_int_…) and webhook secret are shown once, stored only hashed', async () => {
    const r = await api('/api/v1/integrations', { token: tokens.admin, body: { name: 'SOS CAD', kind: 'cad', webhookUrl: cad.url } });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    apiKey = r.body['apiKey'] as string;
    webhookSecret = r.body['webhookSecret'] as string;
    secrets.push(apiKey, webhookSecret);
    expect(apiKey).toMatch(/^sp_int_[A-Za-z0-9_-]{43}$/);
    integrationId = (r.body['integration'] as { id: string }).id;
    const list = await api('/api/v1/integrations', { token: tokens.admin });
    expect(JSON.stringify(list.body)).not.toContain(apiKey);
    expect(JSON.stringify(list.body)).not.toContain(webhookSecret);
    expect(JSON.stringify(await gw.store.get('integrations', integrationId))).not.toContain(apiKey);
    // Only admins.
    expect((await api('/api/v1/integrations', { token: tokens.dispatch, body: { name: 'x', kind: 'cad' } })).status).toBe(403);
    // https only unless allowed; here http is allowed, but a URL with credentials is not.
    const bad = await api('/api/v1/integrations', { token: tokens.admin, body: { name: 'x', kind: 'cad', webhookUrl: 'http://u:p@127.0.0.1/' } });
    expect(bad.status).toBe(400);
  });

  it('opens an incident at the caller position, idempotently by the CAD id; dispatch sees it live and audited as the integration', async () => {
    const socket = io(gw.httpUrl, { auth: { token: tokens.dispatch }, transports: ['websocket'], reconnection: false });
    const live: { id: string; ref?: string }[] = [];
    socket.on('incident', (i: { id: string; ref?: string }) => live.push(i));
    await new Promise<void>((resolve, reject) => {
      socket.once('snapshot', () => resolve());
      socket.once('connect_error', reject);
    });
    try {
      const body = { cadId: 'SOS-2026-0001', kind: 'fire', location: { lat: 59.3135, lng: 18.0718 }, address: 'Götgatan 78', note: 'caller: Anna, 070-1234567' };
      const first = await api('/api/v1/cad/incidents', { key: apiKey, body });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expect(first.body['created']).toBe(true);
      const inc = first.body['incident'] as { id: string; ref: string; location: { lat: number }; openedBy: string };
      expect(inc.ref).toBe('SOS-2026-0001');
      expect(inc.openedBy).toBe(integrationId);
      const again = await api('/api/v1/cad/incidents', { xApiKey: apiKey, body });
      expect(again.status).toBe(200);
      expect(again.body['created']).toBe(false);
      expect((again.body['incident'] as { id: string }).id).toBe(inc.id);
      await until(() => live.some((i) => i.id === inc.id), 'the socket incident event');
      expect(live.filter((i) => i.id === inc.id)).toHaveLength(1);
      const seen = await api(`/api/v1/incidents/${inc.id}`, { token: tokens.dispatch });
      expect(seen.status).toBe(200);
      const audit = await api(`/api/v1/audit?incidentId=${inc.id}`, { token: tokens.admin });
      const opened = (audit.body['items'] as { type: string; actor: { kind: string; id: string }; data: Record<string, unknown> }[]).filter((e) => e.type === 'incident.opened');
      expect(opened).toHaveLength(1);
      expect(opened[0]!.actor).toEqual({ kind: 'integration', id: integrationId });
      expect(JSON.stringify(opened[0])).not.toContain('070-1234567'); // caller data stays out of the trail
      const mine = await api(`/api/v1/cad/incidents/${inc.id}`, { key: apiKey });
      expect(mine.status).toBe(200);
      expect(mine.body['note']).toBe('caller: Anna, 070-1234567');
    } finally {
      socket.close();
    }
  });

  it('maps a NENA EIDO document (PIDF-LO point and civic address, caller), idempotently', async () => {
    const eido = {
      eidoMessageIdentifier: 'urn:uuid:6f1c7c1e-0000-4000-8000-000000000001',
      lastUpdateTimeStamp: '2026-11-28T21:00:00+01:00',
      sendingSystemIdentifier: 'sos.example',
      incidentComponent: [
        {
          componentIdentifier: 'inc-1',
          incidentTrackingIdentifier: 'EIDO-778899',
          incidentTypeCommonRegistryText: ['Structure Fire'],
          incidentCreationTimeStamp: '2026-11-28T20:58:00Z',
          locationReference: { $ref: 'loc-2' },
        },
      ],
      locationComponent: [
        { $id: 'loc-1', locationByValue: { latitude: 1, longitude: 1 } },
        {
          $id: 'loc-2',
          locationByValue:
            '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gml="http://www.opengis.net/gml" xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"><tuple><status><geopriv><location-info><gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>59.3129 18.0735</gml:pos></gml:Point><ca:civicAddress><ca:A3>Stockholm</ca:A3><ca:RD>Götgatan</ca:RD><ca:HNO>71</ca:HNO><ca:PC>118 30</ca:PC></ca:civicAddress></location-info></geopriv></status></tuple></presence>',
        },
      ],
      personComponent: [{ personRole: 'Caller', personName: 'Bertil B', personPhone: '+46701112233' }],
      agencyComponent: [{ agencyIdentifier: 'ignored' }],
    };
    const r = await api('/api/v1/cad/incidents', { key: apiKey, body: eido });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const inc = r.body['incident'] as { id: string; ref: string; kind: string; location: { lat: number; lng: number }; address: string };
    expect(inc).toMatchObject({ ref: 'EIDO-778899', kind: 'Structure Fire', location: { lat: 59.3129, lng: 18.0735 }, address: 'Götgatan 71, 118 30 Stockholm' });
    expect(r.body['note']).toContain('+46701112233');
    const again = await api('/api/v1/cad/incidents', { key: apiKey, body: eido });
    expect(again.body['created']).toBe(false);
    expect((again.body['incident'] as { id: string }).id).toBe(inc.id);
    // No position: 400 naming the part, nothing opened.
    const before = (await gw.store.list('incidents', { limit: 1000 })).length;
    const bad = await api('/api/v1/cad/incidents', { key: apiKey, body: { ...eido, incidentComponent: [{ incidentTrackingIdentifier: 'EIDO-1' }], locationComponent: [{ locationByValue: '<ca:RD>Götgatan</ca:RD>' }] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe('validation-failed');
    expect((await gw.store.list('incidents', { limit: 1000 })).length).toBe(before);
  });

  it('an API key may call nothing else (403 forbidden), only what its scopes allow, and only its own incidents; a revoked key is 401', async () => {
    for (const [path, body] of [
      ['/api/v1/incidents', undefined],
      ['/api/v1/incidents', { kind: 'fire', location: { lat: 59.3, lng: 18.07 } }],
      ['/api/v1/integrations', undefined],
      ['/api/v1/audit', undefined],
      [`/api/v1/organisations/${orgId}/webhook`, undefined],
    ] as const) {
      const r = await api(path, { key: apiKey, ...(body ? { body } : {}) });
      expect(r.status, path).toBe(403);
      expect(r.body.error?.code).toBe('forbidden');
    }
    const ro = await api('/api/v1/integrations', { token: tokens.admin, body: { name: 'read only', kind: 'cad', scopes: ['incidents:read'] } });
    const roKey = ro.body['apiKey'] as string;
    secrets.push(roKey, ro.body['webhookSecret'] as string);
    const w = await api('/api/v1/cad/incidents', { key: roKey, body: { cadId: 'x1', kind: 'fire', location: { lat: 59.3, lng: 18.07 } } });
    expect(w.status).toBe(403);
    expect(w.body.error?.code).toBe('forbidden');
    // Another integration's incident is not there for it.
    const someone = (await gw.store.list('cadLinks', { limit: 10 }))[0]!;
    expect((await api(`/api/v1/cad/incidents/${someone.incidentId}`, { key: roKey })).status).toBe(404);
    // Users cannot call the CAD routes; a malformed key is 401.
    expect((await api('/api/v1/cad/incidents', { token: tokens.dispatch, body: { cadId: 'x', kind: 'f', location: { lat: 1, lng: 1 } } })).status).toBe(403);
    expect((await api(`/api/v1/cad/incidents/${someone.incidentId}`, { key: 'sp_int_short' })).status).toBe(401);
    // Revoked.
    const rev = await api(`/api/v1/integrations/${(ro.body['integration'] as { id: string }).id}/revoke`, { token: tokens.admin, body: undefined, method: 'POST' });
    expect(rev.status).toBe(200);
    const after = await api(`/api/v1/cad/incidents/${someone.incidentId}`, { key: roKey });
    expect(after.status).toBe(401);
    expect(after.body.error?.code).toBe('unauthenticated');
  });
});

describe('webhooks', () => {
  it("only the organisation's owner (or an admin) sees or sets its webhook: another owner gets 404", async () => {
    for (const [method, path, body] of [
      ['GET', `/api/v1/organisations/${orgId}/webhook`, undefined],
      ['PUT', `/api/v1/organisations/${orgId}/webhook`, { url: owner.url }],
      ['DELETE', `/api/v1/organisations/${orgId}/webhook`, undefined],
      ['GET', `/api/v1/organisations/${orgId}/webhook/deliveries`, undefined],
    ] as const) {
      const r = await api(path, { token: tokens[other], method, ...(body ? { body } : {}) });
      expect(r.status, `${method} ${path}`).toBe(404);
    }
    expect((await api(`/api/v1/organisations/${orgId}/webhook`, { token: tokens.dispatch })).status).toBe(403);
    expect((await api(`/api/v1/organisations/${orgId}/webhook`, { token: tokens[me] })).body).toEqual({ orgId, configured: false });
    const set = await api(`/api/v1/organisations/${orgId}/webhook`, { token: tokens[me], method: 'PUT', body: { url: owner.url } });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    ownerSecret = set.body['secret'] as string;
    secrets.push(ownerSecret);
    expect(ownerSecret).toMatch(/^whsec_/);
    const read = await api(`/api/v1/organisations/${orgId}/webhook`, { token: tokens[me] });
    expect(read.body).toMatchObject({ orgId, configured: true, url: owner.url });
    expect(read.body['secret']).toBeUndefined();
    // Changing the URL keeps the secret (no new one shown).
    const same = await api(`/api/v1/organisations/${orgId}/webhook`, { token: tokens[me], method: 'PUT', body: { url: owner.url } });
    expect(same.body['secret']).toBeUndefined();
  });

  it('an emergency entry through a grant: exactly one signed webhook to the owner; the CAD gets grant.created, grant.delivered and access.granted', async () => {
    const opened = await api('/api/v1/cad/incidents', { key: apiKey, body: { cadId: 'SOS-2026-0002', kind: 'fire', location: { lat: 59.3135, lng: 18.0718 } } });
    const incidentId = (opened.body['incident'] as { id: string }).id;
    const { grantId, pin } = await entryThroughGrant(incidentId);
    await until(() => owner.of('access.granted').some((g) => g.json.grant?.id === grantId), 'the owner webhook');
    await until(() => cad.of('access.granted').some((g) => g.json.grant?.id === grantId), 'the CAD access webhook');
    expect(cad.of('grant.created').some((g) => g.json.grant?.id === grantId)).toBe(true);
    await until(() => cad.of('grant.delivered').some((g) => g.json.grant?.id === grantId), 'the CAD delivered webhook');

    // Give any duplicate time to show up (one poll period several times over), then count.
    await new Promise((r) => setTimeout(r, 500));
    const mine = owner.got.filter((g) => g.json.grant?.id === grantId);
    expect(mine).toHaveLength(1);
    const hook = mine[0]!;
    expect(hook.headers['x-sp-event']).toBe('access.granted');
    expect(verifySignature(ownerSecret, hook.body, String(hook.headers['x-sp-signature']), Date.now())).toBe(true);
    expect(verifySignature(ownerSecret, `${hook.body} `, String(hook.headers['x-sp-signature']), Date.now())).toBe(false);
    expect(verifySignature(webhookSecret, hook.body, String(hook.headers['x-sp-signature']), Date.now())).toBe(false);
    expect(hook.json).toMatchObject({ type: 'access.granted', building: { id: 'bld-01' }, door: { id: 'door-01-1' }, incident: { id: incidentId, ref: 'SOS-2026-0002' } });
    expect(hook.body).not.toContain(pin);
    for (const g of cad.got) {
      expect(verifySignature(webhookSecret, g.body, String(g.headers['x-sp-signature']), Date.now())).toBe(true);
      expect(g.body).not.toContain(pin);
    }
    // The grant.created and access.granted webhooks went to the CAD once each.
    expect(cad.got.filter((g) => g.json.grant?.id === grantId && g.json.type === 'access.granted')).toHaveLength(1);
    expect(cad.got.filter((g) => g.json.grant?.id === grantId && g.json.type === 'grant.created')).toHaveLength(1);
    const log = await api(`/api/v1/organisations/${orgId}/webhook/deliveries`, { token: tokens[me] });
    const items = log.body['items'] as { state: string; attempts: { status?: number }[] }[];
    expect(items[0]).toMatchObject({ state: 'delivered', attempts: [{ status: 200 }] });
    const cadLog = await api(`/api/v1/integrations/${integrationId}/deliveries`, { token: tokens.admin });
    expect((cadLog.body['items'] as unknown[]).length).toBeGreaterThanOrEqual(3);
  });

  it('a receiver answering 500 twice then 200: three attempts with growing backoff, in the delivery log', async () => {
    const r = await api('/api/v1/incidents', { token: tokens.dispatch, body: { kind: 'fire', location: { lat: 59.3135, lng: 18.0718 } } });
    const incidentId = String(r.body['id']);
    owner.script = [500, 500];
    const { grantId } = await entryThroughGrant(incidentId);
    type Log = { items: { id: string; state: string; nextAt?: number; attempts: { at: number; status?: number }[] }[] };
    let entry: Log['items'][number] | undefined;
    await until(async () => {
      const log = (await api(`/api/v1/organisations/${orgId}/webhook/deliveries`, { token: tokens[me] })).body as unknown as Log;
      entry = log.items.find((d) => owner.got.some((g) => g.json.grant?.id === grantId && g.headers['x-sp-delivery'] === d.id));
      return entry?.state === 'delivered';
    }, 'the third attempt');
    expect(entry!.attempts.map((a) => a.status)).toEqual([500, 500, 200]);
    const [a, b, c] = entry!.attempts as [{ at: number }, { at: number }, { at: number }];
    expect(b.at - a.at).toBeGreaterThanOrEqual(150);
    expect(c.at - b.at).toBeGreaterThanOrEqual(300);
    expect(entry!.nextAt).toBeUndefined();
    expect(owner.got.filter((g) => g.json.grant?.id === grantId)).toHaveLength(3);
    // An incident a dispatcher opened, not the CAD: nothing of it goes to the CAD.
    expect(cad.got.some((g) => g.json.grant?.id === grantId)).toBe(false);
  });

  it('a delivery pending when the gateway stops is delivered after it starts again', async () => {
    const r = await api('/api/v1/incidents', { token: tokens.dispatch, body: { kind: 'fire', location: { lat: 59.3135, lng: 18.0718 } } });
    owner.always = 503;
    const { grantId } = await entryThroughGrant(String(r.body['id']));
    await until(() => owner.got.some((g) => g.json.grant?.id === grantId), 'a first failed attempt');
    await gw.stop();
    const pending = owner.got.filter((g) => g.json.grant?.id === grantId).length;
    owner.always = undefined;
    gw = new Gateway(options);
    await gw.start();
    await login();
    await until(() => owner.got.filter((g) => g.json.grant?.id === grantId).length > pending, 'the delivery after the restart');
    const last = owner.got.filter((g) => g.json.grant?.id === grantId).at(-1)!;
    type Item = { id: string; state: string; attempts: { status?: number }[] };
    let item: Item | undefined;
    await until(async () => {
      const items = (await api(`/api/v1/organisations/${orgId}/webhook/deliveries`, { token: tokens[me] })).body['items'] as Item[];
      item = items.find((d) => d.id === last.headers['x-sp-delivery']);
      return item?.state === 'delivered';
    }, 'the log to say delivered');
    expect(item!.attempts[0]!.status).toBe(503);
    expect(item!.attempts.at(-1)!.status).toBe(200);
    expect(owner.got.filter((g) => g.json.grant?.id === grantId).every((g) => g.headers['x-sp-delivery'] === last.headers['x-sp-delivery'])).toBe(true);
  }, 60_000);

  it('the OpenAPI document has the new routes', async () => {
    const doc = (await api('/api/v1/openapi.json')).body as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/api/v1/cad/incidents'] ?? {})).toContain('post');
    expect(Object.keys(doc.paths['/api/v1/organisations/{id}/webhook'] ?? {}).sort()).toEqual(['delete', 'get', 'put']);
    expect(doc.paths['/api/v1/organisations/{id}/webhook/deliveries']).toBeDefined();
    expect(doc.paths['/api/v1/integrations/{id}/revoke']).toBeDefined();
  });

  it('no API key, webhook secret or PIN in any log line', () => {
    expect(secrets.length).toBeGreaterThanOrEqual(5);
    const all = logLines.join('\n');
    expect(all).toContain('webhook delivered'); // the log is real
    for (const s of secrets) expect(all).not.toContain(s);
    expect(all).not.toContain('token=abc'); // a webhook URL's query may carry a token
  });
});
