// The reference controller over real brokers: the machine's Mosquitto and an embedded aedes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileStateStore, hasNoDelay, ReferenceController, type ReferenceControllerOptions } from '../../src/controller/index.js';
import { generateRawKeyPair, MAX_PAYLOAD_BYTES, privateKeyFromSeed, type BodyOf, type GrantsSyncBody, type Message } from '../../src/index.js';
import { MOSQUITTO_URL, startAedes, type TestBroker } from '../support/brokers.js';
import { makeFixture } from '../support/fixtures.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const TAG = '04A1B2C3D4';
const dirs: string[] = [];
const running: { ctl: ReferenceController; gw: GatewayHarness }[] = [];

function grantBody(version: number, o: { notAfter?: number; doors?: string[]; pin?: string } = {}): GrantsSyncBody {
  const now = Date.now();
  return {
    version,
    grants: [
      {
        grantId: `g-${version}`,
        incident: 'inc-1',
        doors: o.doors ?? ['street', 'stair-a'],
        credentials: [{ kind: 'tag', uid: TAG }, ...(o.pin ? [{ kind: 'pin' as const, pin: o.pin }] : [])],
        notBefore: now - 1000,
        notAfter: o.notAfter ?? now + 120_000,
      },
    ],
  };
}

async function setup(url: string, o: Partial<ReferenceControllerOptions> = {}) {
  const fx = makeFixture(url);
  const dir = mkdtempSync(join(tmpdir(), 'sp-ctl-'));
  dirs.push(dir);
  const stateFile = join(dir, 'state.json');
  const gw = new GatewayHarness(fx, url);
  await gw.start();
  const make = () => new ReferenceController({ bundle: fx.bundle, store: new FileStateStore(stateFile), ...o });
  const ctl = make();
  await ctl.start();
  running.push({ ctl, gw });
  return { fx, gw, ctl, make, stateFile };
}

async function applied(gw: GatewayHarness, body: GrantsSyncBody) {
  const { message, payload } = await gw.send('grants.sync', body);
  expect(await gw.reply(message.id)).toMatchObject({ status: 'applied', appliedVersion: body.version });
  return { message, payload };
}

async function check(gw: GatewayHarness, door: string, uid = TAG) {
  const { message } = await gw.send('access.check', { door, credential: { kind: 'tag', uid } });
  return (await gw.reply(message.id)).decision;
}

function rejectedCode(gw: GatewayHarness, ref: string | undefined, after: number) {
  return gw.waitFor(
    (r) =>
      r
        .slice(after)
        .map((x) => x.message)
        .find((m): m is Message<'evt'> => m.type === 'evt' && m.body.kind === 'rejected' && (ref === undefined || m.body.ref === ref))?.body,
    5000,
    `rejected evt${ref ? ` for ${ref}` : ''}`,
  ) as Promise<Extract<BodyOf<'evt'>, { kind: 'rejected' }>>;
}

let aedes: TestBroker;
beforeAll(async () => {
  aedes = await startAedes();
});
afterEach(async () => {
  for (const { ctl, gw } of running.splice(0)) {
    await ctl.stop();
    await gw.stop();
  }
});
afterAll(async () => {
  await aedes.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe.each([
  ['mosquitto', () => MOSQUITTO_URL],
  ['aedes', () => aedes.url],
])('reference controller on %s', (_name, url) => {
  it('sets TCP_NODELAY on its socket (and the embedded broker on its side)', async () => {
    const { ctl } = await setup(url());
    expect(hasNoDelay(ctl.mqttClient?.stream)).toBe(true);
    if (_name === 'aedes') {
      expect(aedes.sockets.size).toBeGreaterThan(0);
      for (const s of aedes.sockets) expect(hasNoDelay(s)).toBe(true);
    }
  });

  it('publishes a signed retained birth, applies a sync, and reports a granted tag in order', async () => {
    const { gw, ctl } = await setup(url());
    const birth = await gw.waitFor((r) => r.find((x) => x.message.type === 'state' && x.message.boot === ctl.boot));
    expect(birth.message.body).toMatchObject({ online: true, appliedVersion: 0, lastSeq: 0, clockSynced: true });
    await applied(gw, grantBody(gw.nextVersion()));
    expect(ctl.presentTag('street', TAG)).toMatchObject({ result: 'granted', reason: 'grant' });
    expect(ctl.presentTag('floor-3', TAG)).toMatchObject({ result: 'denied', reason: 'wrong-door' });
    await gw.waitFor((r) => (r.filter((x) => x.message.type === 'evt').length >= 3 ? true : undefined));
    const evts = gw.events();
    expect(evts.map((e) => e.body.kind)).toEqual(['access', 'door', 'access']);
    expect(evts.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(evts[0]?.body).toMatchObject({ kind: 'access', result: 'granted', credential: { kind: 'tag', uid: TAG }, grantId: 'g-1' });
    expect(evts[1]?.body).toMatchObject({ kind: 'door', state: 'unlocked', cause: 'credential' });
    expect(gw.received.every((x) => x.message.type === 'state' || !x.retained)).toBe(true);
  });

  it('never puts a PIN in an event', async () => {
    const { gw, ctl } = await setup(url());
    await applied(gw, grantBody(gw.nextVersion(), { pin: '482913' }));
    expect(ctl.enterPin('stair-a', '482913')).toMatchObject({ result: 'granted' });
    const ev = await gw.waitFor((r) => r.find((x) => x.message.type === 'evt'));
    expect(ev.message.body).toMatchObject({ kind: 'access', credential: { kind: 'pin' } });
    expect(JSON.stringify(gw.received)).not.toContain('482913');
  });

  it('rejects every kind of bad message with its code and changes nothing', async () => {
    const { gw, ctl, fx } = await setup(url());
    const { message: good, payload: goodPayload } = await applied(gw, grantBody(gw.nextVersion(), { doors: ['street'] }));
    const before = { version: ctl.appliedVersion, grants: JSON.stringify(ctl.grants) };
    const bigger = grantBody(99, { doors: ['street', 'stair-a', 'floor-3'] });
    const cases: [string, () => Promise<string | undefined>][] = [
      ['malformed', async () => (await gw.publishRaw('sync', '{"v":1,"type":'), undefined)],
      ['malformed', async () => (await gw.publishRaw('sync', goodPayload.replace('"inc-1"', '"\\ud800"')), good.id)],
      ['too-large', async () => (await gw.publishRaw('sync', Buffer.alloc(MAX_PAYLOAD_BYTES.sync + 10, 0x20)), undefined)],
      ['unsupported-version', async () => (await gw.publishRaw('sync', JSON.stringify({ ...good, v: 2 })), good.id)],
      ['unknown-type', async () => (await gw.send('ctrl.ping', {}, { topic: 'sync' })).message.id],
      ['wrong-audience', async () => (await gw.send('grants.sync', bigger, { ctrl: 'someone-else' })).message.id],
      ['bad-signature', async () => {
        // Right kid, wrong key: what an attacker who knows the kid but not the key can send.
        const stolenKid = { kid: fx.gateway.kid, key: privateKeyFromSeed(generateRawKeyPair().privateKey) };
        return (await gw.send('grants.sync', bigger, { key: stolenKid })).message.id;
      }],
      ['unknown-kid', async () => {
        const m = JSON.parse(goodPayload) as Message<'grants.sync'>;
        await gw.publishRaw('sync', JSON.stringify({ ...m, kid: 'gw-stolen' }));
        return m.id;
      }],
      ['expired', async () => (await gw.send('grants.sync', bigger, { exp: Date.now() - 1000 })).message.id],
      ['exp-required', async () => (await gw.send('door.pulse', { door: 'street', seconds: 5 }, { exp: Date.now() + 60_000 })).message.id],
      ['replay', async () => (await gw.publishRaw('sync', goodPayload), good.id)],
    ];
    for (const [code, act] of cases) {
      const mark = gw.received.length;
      const ref = await act();
      const rej = await rejectedCode(gw, ref, mark);
      expect(rej.code, `case ${code}`).toBe(code);
    }
    // An authentic sync whose body breaks the schema is answered, and still changes nothing.
    const { message: badBody } = await gw.send('grants.sync', { version: 100, grants: [{ ...bigger.grants[0]!, doors: [] }] });
    expect(await gw.reply(badBody.id)).toMatchObject({ status: 'rejected', code: 'bad-body' });
    const { message: badDoor } = await gw.send('grants.sync', grantBody(101, { doors: ['roof'] }));
    expect(await gw.reply(badDoor.id)).toMatchObject({ status: 'rejected', code: 'unknown-door', appliedVersion: before.version });
    const { message: badWindow } = await gw.send('grants.sync', grantBody(102, { notAfter: Date.now() - 5000 }));
    expect(await gw.reply(badWindow.id)).toMatchObject({ status: 'rejected', code: 'invalid-window' });
    const { message: expiredPulse } = await gw.send('door.pulse', { door: 'street', seconds: 5 }, { exp: Date.now() - 1 });
    expect((await rejectedCode(gw, expiredPulse.id, 0)).code).toBe('expired');

    expect(ctl.appliedVersion).toBe(before.version);
    expect(JSON.stringify(ctl.grants)).toBe(before.grants);
    expect(await check(gw, 'stair-a')).toMatchObject({ result: 'denied', reason: 'wrong-door' });
    expect(ctl.doorStates().every((d) => d.locked)).toBe(true);
    expect(gw.received.some((r) => r.message.type === 'reply' && (r.message.body).status === 'applied' && (r.message.body).appliedVersion === 99)).toBe(false);
  });

  it('drops a grant at notAfter by itself, with no message from anyone', async () => {
    const { gw, ctl } = await setup(url());
    await applied(gw, grantBody(gw.nextVersion(), { notAfter: Date.now() + 700 }));
    expect(ctl.presentTag('street', TAG).result).toBe('granted');
    const expired = new Promise<string[]>((resolve) => ctl.once('expired', resolve));
    expect(await expired).toEqual(['g-1']);
    expect(ctl.grants).toHaveLength(0);
    expect(ctl.presentTag('street', TAG)).toMatchObject({ result: 'denied', reason: 'expired' });
  });

  it('survives a crash: will published, seq and grants persisted, replay refused, backlog delivered in order', async () => {
    const { gw, ctl, make } = await setup(url());
    const firstBoot = ctl.boot;
    const { payload } = await applied(gw, grantBody(gw.nextVersion()));
    ctl.goOffline();
    const will = await gw.waitFor((r) => r.find((x) => x.message.type === 'state' && x.message.boot === firstBoot && (x.message.body as { online: boolean }).online === false), 5000, 'will');
    expect(will.message.ctrl).toBe(ctl.id);
    // Events made while the network is down stay in the backlog…
    ctl.presentTag('street', TAG);
    ctl.presentTag('floor-3', TAG);
    ctl.tamper();
    expect(ctl.backlogSize).toBe(4);
    // …and the process dies before it is back.
    ctl.crash();
    const again = make();
    running.splice(running.findIndex((x) => x.ctl === ctl), 1, { ctl: again, gw });
    await again.start();
    expect(again.boot).not.toBe(firstBoot);
    expect(again.appliedVersion).toBe(1);
    expect(again.presentTag('stair-a', TAG).result).toBe('granted');
    await gw.waitFor((r) => (r.filter((x) => x.message.type === 'evt').length >= 6 ? true : undefined), 5000, '6 events');
    const seen = gw.events().map((e) => [e.boot === firstBoot ? 'old' : 'new', e.seq, e.body.kind]);
    expect(seen).toEqual([
      ['old', 1, 'access'],
      ['old', 2, 'door'],
      ['old', 3, 'access'],
      ['old', 4, 'tamper'],
      ['new', 1, 'access'],
      ['new', 2, 'door'],
    ]);
    await gw.waitFor(() => (again.backlogSize === 0 ? true : undefined), 5000, 'empty backlog');
    // The sync seen before the crash is a replay now.
    const mark = gw.received.length;
    await gw.publishRaw('sync', payload);
    expect((await rejectedCode(gw, undefined, mark)).code).toBe('replay');
  });
});

describe('MQTT 5', () => {
  it('works the same over MQTT 5 on Mosquitto', async () => {
    const { gw, ctl } = await setup(MOSQUITTO_URL, { mqtt: { protocolVersion: 5 } });
    await applied(gw, grantBody(gw.nextVersion()));
    expect(await check(gw, 'street')).toMatchObject({ result: 'granted' });
    expect(ctl.mqttClient?.options.protocolVersion).toBe(5);
  });
});
