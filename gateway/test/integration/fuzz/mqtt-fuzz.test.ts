// Issue 6 "Hostile input", MQTT side: a controller registered for this test (its provisioning
// bundle from POST /api/v1/controllers) publishes, through a real mqtt.js client on the gateway's
// embedded broker, what fast-check makes of its own topics — arbitrary bytes, hostile envelopes,
// messages signed with a wrong key or naming an unknown key, for another controller, expired,
// with a bad body, oversized — and replays; then tries another controller's topics. The gateway
// keeps running, no grant or incident changes, every drop is audited as `security.rejected`
// (rate-limited per (controller, code): at least one entry per code tried), the broker's
// refusals too, and a replayed event is recorded once (PROTOCOL §7.8, §9; DESIGN §10).
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildMessage,
  controllerTopic,
  generateRawKeyPair,
  MAX_PAYLOAD_BYTES,
  newId,
  openMessage,
  privateKeyFromSeed,
  rawPublicKey,
  trustedKeys,
  TYPES_BY_TOPIC,
  type ProvisioningBundle,
  type SigningKey,
} from '@smart-passage/protocol';
import { connectMqtt } from '@smart-passage/protocol/controller';
import { oddString, PASSWORDS, startHarness, until, wrongValue, type Harness } from './support.js';

let h: Harness;
let admin = '';
const A = 'ctl-fz-a';
const B = 'ctl-fz-b';
const bundles = {} as Record<string, ProvisioningBundle>;
const keys = {} as Record<string, SigningKey>;
const clients: MqttClient[] = [];
const BOOT = 'fuzzboot-0001';
/** Event seqs of the replay test (the first test's events use seq 1). */
let seqs = 100;
/** Controller-side leaves a controller may publish on. */
type Leaf = 'state' | 'reply' | 'evt';
const LEAVES: Leaf[] = ['state', 'reply', 'evt'];

async function connectAs(b: ProvisioningBundle, clientId = b.controllerId): Promise<MqttClient> {
  const client = connectMqtt({ url: h.gw.mqttUrl, clientId, username: b.mqtt.username, password: b.mqtt.password, clean: true, reconnectPeriod: 0 });
  clients.push(client);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  client.on('error', () => undefined);
  return client;
}

beforeAll(async () => {
  h = await startHarness('sp-fuzz-mqtt-');
  admin = await h.login('admin', PASSWORDS.admin);
  for (const id of [A, B]) {
    const r = await h.api('/api/v1/controllers', { token: admin, body: { id, buildingId: 'bld-01', vendor: 'fuzz', doors: [{ ref: 'd1' }] } });
    if (r.status !== 201) throw new Error(`register ${id}: ${r.status} ${r.text}`);
    const b = r.body as unknown as ProvisioningBundle;
    bundles[id] = b;
    keys[id] = { kid: b.controllerKid, key: privateKeyFromSeed(b.controllerKey!.privateKey) };
  }
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => undefined);
  await h?.stop();
});

interface AuditRow {
  type: string;
  controllerId?: string;
  reason?: string;
  data?: Record<string, unknown>;
}

async function audit(types: string): Promise<AuditRow[]> {
  const out: AuditRow[] = [];
  let cursor: string | undefined;
  for (;;) {
    const r = await h.api(`/api/v1/audit?type=${types}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
    expect(r.status, r.text.slice(0, 200)).toBe(200);
    out.push(...(r.body?.['items'] as AuditRow[]));
    cursor = r.body?.['next'] as string | undefined;
    if (!cursor) return out;
  }
}

/** What the gateway should answer a payload on A's `leaf`, by the protocol's own checks (PROTOCOL §9). */
function expectedCode(leaf: Leaf, payload: Buffer): string {
  const r = openMessage(payload, { types: TYPES_BY_TOPIC[leaf], keys: trustedKeys([{ kid: bundles[A]!.controllerKid, publicKey: publicOf(A) }]), maxBytes: MAX_PAYLOAD_BYTES[leaf], ctrl: A, now: Date.now() });
  return r.ok ? 'ok' : r.code;
}
const publics = new Map<string, string>();
function publicOf(id: string): string {
  return publics.get(id) ?? '';
}

/** A well-formed message from A on `leaf`, signed with `key` (A's own by default). */
function fromA(leaf: Leaf, o: { key?: SigningKey; ctrl?: string; exp?: number; body?: unknown; seq?: number } = {}): Record<string, unknown> {
  const now = Date.now();
  const body =
    o.body ??
    (leaf === 'evt'
      ? { kind: 'tamper', at: now }
      : leaf === 'reply'
        ? { ref: newId(), status: 'done' }
        : { online: true, fw: 'fuzz', vendor: 'fuzz', appliedVersion: 0, lastSeq: 0, clock: now, clockSynced: true, doors: [] });
  const type = leaf;
  return buildMessage({ type, ctrl: o.ctrl ?? A, seq: o.seq ?? 1, boot: BOOT, body: body as never, key: o.key ?? keys[A]!, iat: now, ...(o.exp !== undefined ? { exp: o.exp } : {}) });
}

describe('MQTT fuzzing: a registered controller publishing hostile messages on its own topics', () => {
  it('arbitrary and forged payloads: dropped, audited per code, no grant or incident changes, the gateway serves on', async () => {
    // The public key the gateway registered for A, as the bundle's private half gives it.
    publics.set(A, rawPublicKey(keys[A]!.key));
    const before = await h.snapshot();
    const client = await connectAs(bundles[A]!);
    const stranger = generateRawKeyPair();
    const tried = new Map<string, number>();

    const payload: fc.Arbitrary<{ what: string; leaf: Leaf; bytes: Buffer }> = fc.oneof(
      fc.tuple(fc.constantFrom(...LEAVES), fc.uint8Array({ minLength: 1, maxLength: 600 })).map(([leaf, b]) => ({ what: 'random bytes', leaf, bytes: Buffer.from(b) })),
      fc.tuple(fc.constantFrom(...LEAVES), fc.json({ maxDepth: 4 })).map(([leaf, j]) => ({ what: 'random JSON', leaf, bytes: Buffer.from(j) })),
      // A genuine message with one envelope member replaced by anything.
      fc
        .tuple(fc.constantFrom(...LEAVES), fc.constantFrom('v', 'id', 'type', 'ctrl', 'seq', 'boot', 'iat', 'exp', 'body', 'kid', 'sig'), wrongValue)
        .map(([leaf, field, v]) => ({ what: `${field} replaced`, leaf, bytes: Buffer.from(JSON.stringify({ ...fromA(leaf), [field]: v }) ?? 'null') })),
      // Signed with a key the gateway does not have for A, under A's kid; or naming a kid it does not know.
      fc.constantFrom(...LEAVES).map((leaf) => ({ what: 'wrong key', leaf, bytes: Buffer.from(JSON.stringify(fromA(leaf, { key: { kid: keys[A]!.kid, key: privateKeyFromSeed(stranger.privateKey) } }))) })),
      fc.tuple(fc.constantFrom(...LEAVES), fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/)).filter(([, kid]) => kid !== keys[A]!.kid).map(([leaf, kid]) => ({ what: 'unknown kid', leaf, bytes: Buffer.from(JSON.stringify(fromA(leaf, { key: { kid, key: keys[A]!.key } }))) })),
      // Genuinely signed by A, but naming B (or anyone) as its origin: a message cannot be passed off as another's.
      fc.constantFrom(...LEAVES).map((leaf) => ({ what: 'for another controller', leaf, bytes: Buffer.from(JSON.stringify(fromA(leaf, { ctrl: B }))) })),
      // Genuine, signed, and expired.
      fc.tuple(fc.constantFrom<Leaf>('state', 'reply'), fc.integer({ min: 1, max: 10_000_000 })).map(([leaf, ago]) => ({ what: 'expired', leaf, bytes: Buffer.from(JSON.stringify(fromA(leaf, { exp: Date.now() - ago }))) })),
      // Genuine, signed, with a hostile body.
      fc.tuple(fc.constantFrom(...LEAVES), fc.oneof(wrongValue.filter((v) => typeof v === 'object' && v !== null && !Array.isArray(v)), oddString.map((s) => ({ kind: 'tamper', at: 1, note: s })))).map(([leaf, body]) => ({ what: 'bad body', leaf, bytes: safeStringify(() => fromA(leaf, { body })) })),
      // A genuine message of one type on another type's topic.
      fc.tuple(fc.constantFrom(...LEAVES), fc.constantFrom(...LEAVES)).filter(([a, b]) => a !== b).map(([leaf, other]) => ({ what: 'type not for this topic', leaf, bytes: Buffer.from(JSON.stringify(fromA(other))) })),
      // Over the topic's limit (PROTOCOL §8).
      fc.tuple(fc.constantFrom(...LEAVES), fc.integer({ min: 1, max: 300_000 })).map(([leaf, extra]) => ({ what: 'oversized', leaf, bytes: Buffer.alloc(MAX_PAYLOAD_BYTES[leaf] + extra, 0x7b) })),
      fc.constantFrom(...LEAVES).map((leaf) => ({ what: 'version 2', leaf, bytes: Buffer.from(JSON.stringify({ ...fromA(leaf), v: 2 })) })),
    );

    await fc.assert(
      fc.asyncProperty(payload, async (p) => {
        const code = expectedCode(p.leaf, p.bytes);
        // A payload that would pass every check is not hostile (a JSON mutation can land on a valid one): not sent.
        if (code === 'ok' || p.bytes.length === 0) return;
        tried.set(code, (tried.get(code) ?? 0) + 1);
        await client.publishAsync(controllerTopic(A, p.leaf), p.bytes, { qos: 1, retain: false });
        expect(client.connected, `${p.what} on ${p.leaf}: the broker kept the connection`).toBe(true);
      }),
      { numRuns: 250 },
    );
    // Every code tried has at least one entry (more are folded into `suppressed` by the rate limit).
    const wanted = [...tried.keys()].sort();
    expect(wanted.length).toBeGreaterThanOrEqual(8);
    let rows: AuditRow[] = [];
    await until(async () => {
      rows = (await audit('security.rejected,controller.rejected')).filter((e) => e.controllerId === A);
      return wanted.every((c) => rows.some((e) => e.reason === c));
    }, 10_000, `security.rejected entries for ${wanted.join(', ')}`);
    expect(new Set(rows.map((e) => e.reason))).toEqual(new Set(wanted));
    // Rate-limited: far fewer entries than messages.
    const sent = [...tried.values()].reduce((a, b) => a + b, 0);
    expect(rows.length).toBeLessThan(sent);

    expect(await h.snapshot()).toEqual(before);
    expect((await h.api('/api/v1/health')).status).toBe(200);
    expect(h.logLines.filter((l) => l.level === 'error')).toEqual([]);
    console.info(`MQTT fuzz: ${sent} hostile messages from ${A}; by code: ${JSON.stringify(Object.fromEntries(tried))}; ${rows.length} audit entries`);
  });

  it('a genuine event delivered again and again (replays) is recorded once', async () => {
    const client = clients[0]!.connected ? clients[0]! : await connectAs(bundles[A]!);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 5 }), async (times) => {
        const seq = (seqs += 1);
        const m = Buffer.from(JSON.stringify(fromA('evt', { seq, body: { kind: 'door', door: 'd1', state: seq % 2 === 0 ? 'open' : 'closed', at: Date.now() } })));
        for (let i = 0; i < times; i++) await client.publishAsync(controllerTopic(A, 'evt'), m, { qos: 1, retain: false });
      }),
      { numRuns: 5 },
    );
    await until(async () => (await audit('door.state')).filter((e) => e.controllerId === A).length >= 5, 8000, 'door events recorded');
    await new Promise((r) => setTimeout(r, 300));
    expect((await audit('door.state')).filter((e) => e.controllerId === A)).toHaveLength(5);
  });

  it("another controller's topics: the broker refuses publish and subscribe, audits it, and nothing reaches the gateway as B", async () => {
    const before = await h.snapshot();
    const rejectedBefore = (await audit('security.rejected')).filter((e) => e.data?.['via'] === 'mqtt' && e.controllerId === A).length;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('evt', 'state', 'reply', 'sync', 'cmd'), fc.constantFrom<'sub' | 'pub'>('sub', 'pub'), async (leaf, action) => {
        const client = await connectAs(bundles[A]!);
        const topic = `sp/v1/c/${B}/${leaf}`;
        if (action === 'sub') {
          // mqtt.js turns a SUBACK of 0x80 (refused, MQTT 3.1.1 §3.9.3) into an error carrying the packet.
          const granted = await client.subscribeAsync(topic, { qos: 1 }).then(
            (g) => g.map((x) => x.qos),
            (err: unknown) => (err as { packet?: { granted?: number[] } }).packet?.granted ?? [],
          );
          expect(granted).toEqual([128]);
        } else {
          // Signed with B's real key: only the broker's ACL stands between A and passing it off as B.
          const m = buildMessage({ type: 'evt', ctrl: B, seq: 1, boot: BOOT, body: { kind: 'tamper', at: Date.now() }, key: keys[B]!, iat: Date.now() });
          const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
          client.publish(topic, JSON.stringify(m), { qos: 1 });
          await closed; // MQTT 3.1.1 has no negative PUBACK: a refused publish ends the connection
        }
        await client.endAsync(true);
      }),
      { numRuns: 10 },
    );
    await until(async () => (await audit('security.rejected')).filter((e) => e.data?.['via'] === 'mqtt' && e.controllerId === A).length > rejectedBefore, 5000, 'broker refusal audited');
    const refusals = (await audit('security.rejected')).filter((e) => e.data?.['via'] === 'mqtt' && e.controllerId === A);
    expect(refusals.every((e) => e.reason === 'topic')).toBe(true);
    expect((await audit('tamper')).filter((e) => e.controllerId === B)).toEqual([]);
    expect(await h.snapshot()).toEqual(before);
    expect((await h.api('/api/v1/health')).status).toBe(200);
  });
});

/** JSON of a message that signing may refuse (a lone surrogate cannot be canonicalised): then plain garbage. */
function safeStringify(make: () => Record<string, unknown>): Buffer {
  try {
    return Buffer.from(JSON.stringify(make()));
  } catch {
    return Buffer.from('{"unsignable":true}');
  }
}
