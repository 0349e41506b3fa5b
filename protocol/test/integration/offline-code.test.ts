// PROTOCOL §2.6 on the reference controller (P-25), over an embedded aedes: a code is refused while
// the controller is online, accepted once while it is offline, stays spent across a restart from
// its state file, and its use reaches the gateway side when the controller is back — without digits.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileStateStore, ReferenceController } from '../../src/controller/index.js';
import { offlineCode, offlineCodeWindow, OFFLINE_CODE_WINDOW_MS, type Message } from '../../src/index.js';
import { startAedes, type TestBroker } from '../support/brokers.js';
import { makeFixture } from '../support/fixtures.js';
import { GatewayHarness } from '../support/gateway-harness.js';

let aedes: TestBroker;
const dirs: string[] = [];
const running: { ctl: ReferenceController; gw: GatewayHarness }[] = [];

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

async function setup(now?: () => number) {
  const fx = makeFixture(aedes.url);
  fx.bundle.offlineSecret = randomBytes(32).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'sp-offline-'));
  dirs.push(dir);
  const stateFile = join(dir, 'state.json');
  const gw = new GatewayHarness(fx, aedes.url);
  await gw.start();
  const make = () => new ReferenceController({ bundle: fx.bundle, store: new FileStateStore(stateFile), ...(now ? { now } : {}) });
  const ctl = make();
  await ctl.start();
  const entry = { ctl, gw };
  running.push(entry);
  const code = (door: string, at = Date.now(), ctrl = fx.bundle.controllerId) => offlineCode({ secret: fx.bundle.offlineSecret!, ctrl, door, window: offlineCodeWindow(at) });
  return { fx, gw, ctl, make, entry, stateFile, code };
}

const accessEvents = (gw: GatewayHarness) => gw.events().filter((m): m is Message<'evt'> & { body: { kind: 'access' } } => m.body.kind === 'access');

describe('offline emergency codes on the reference controller (P-25)', () => {
  it('refuses a valid code while online, takes it once while offline, and reports both when back', async () => {
    const { gw, ctl, code } = await setup();
    const t0 = Date.now();
    const street = code('street', t0);
    expect(ctl.online).toBe(true);
    expect(ctl.presentCode('street', street)).toEqual({ result: 'denied', reason: 'controller-online' });
    expect(ctl.doorStates().find((d) => d.ref === 'street')?.locked).toBe(true);

    ctl.goOffline();
    expect(ctl.online).toBe(false);
    expect(ctl.presentCode('street', street)).toEqual({ result: 'granted', reason: 'offline-code' });
    expect(ctl.doorStates().find((d) => d.ref === 'street')?.locked).toBe(false);
    expect(ctl.presentCode('street', street)).toEqual({ result: 'denied', reason: 'spent' });
    // The code names its door and controller: it opens nothing else.
    expect(ctl.presentCode('stair-a', street)).toEqual({ result: 'denied', reason: 'unknown' });
    expect(ctl.presentCode('stair-a', code('street', Date.now(), 'some-other-ctl'))).toEqual({ result: 'denied', reason: 'unknown' });
    // The next door's own code still works once.
    expect(ctl.presentCode('stair-a', code('stair-a'))).toEqual({ result: 'granted', reason: 'offline-code' });

    await ctl.goOnline();
    const w = offlineCodeWindow(t0);
    const got = await gw.waitFor(() => (accessEvents(gw).length >= 6 ? accessEvents(gw) : undefined), 5000, 'six access events');
    expect(got.map((m) => [m.body.door, m.body.result, m.body.reason])).toEqual([
      ['street', 'denied', 'controller-online'],
      ['street', 'granted', 'offline-code'],
      ['street', 'denied', 'spent'],
      ['stair-a', 'denied', 'unknown'],
      ['stair-a', 'denied', 'unknown'],
      ['stair-a', 'granted', 'offline-code'],
    ]);
    expect(got[1]!.body.credential).toEqual({ kind: 'offline-code', window: w });
    expect(got[3]!.body.credential).toEqual({ kind: 'offline-code' });
    for (const m of got) expect(m.body.grantId).toBeUndefined();
    // Never the digits, anywhere on the wire.
    const wire = JSON.stringify(gw.received);
    expect(wire).not.toContain(street);
    expect(wire).not.toContain(code('stair-a'));
  });

  it('keeps a spent code spent across a restart from the state file', async () => {
    const { fx, ctl, entry, stateFile, code } = await setup();
    const street = code('street');
    ctl.goOffline();
    expect(ctl.presentCode('street', street).result).toBe('granted');
    ctl.crash();
    expect(readFileSync(stateFile, 'utf8')).not.toContain(street);

    // Back up with no broker to reach (a closed port): it decides alone and remembers the spent code.
    const cut = new ReferenceController({
      bundle: { ...fx.bundle, mqtt: { ...fx.bundle.mqtt, url: `mqtt://127.0.0.1:${await closedPort()}` } },
      store: new FileStateStore(stateFile),
      mqtt: { reconnectPeriod: 60_000 },
    });
    await cut.start({ waitForConnection: false });
    entry.ctl = cut;
    expect(cut.online).toBe(false);
    expect(cut.presentCode('street', street)).toEqual({ result: 'denied', reason: 'spent' });
    expect(cut.presentCode('floor-3', code('floor-3'))).toEqual({ result: 'granted', reason: 'offline-code' });
    // The first use (from the crashed boot) and both of these wait in the backlog.
    expect(cut.backlogSize).toBeGreaterThanOrEqual(3);
  });

  it('locks the keypad after five wrong entries, PINs and codes together', async () => {
    const { ctl, code } = await setup();
    ctl.goOffline();
    for (let i = 0; i < 4; i++) expect(ctl.presentCode('street', '00000000').reason).toBe('unknown');
    expect(ctl.enterPin('street', '9999').reason).toBe('unknown');
    expect(ctl.presentCode('street', code('street'))).toEqual({ result: 'denied', reason: 'lockout' });
    // Another door's keypad is not locked.
    expect(ctl.presentCode('stair-a', code('stair-a')).result).toBe('granted');
  });

  it('reports a code of an earlier window as expired, and refuses codes without a trusted clock', async () => {
    let now = Date.now();
    const { ctl, code } = await setup(() => now);
    ctl.goOffline();
    const issued = code('street', now);
    now += 2 * OFFLINE_CODE_WINDOW_MS;
    expect(ctl.presentCode('street', issued)).toEqual({ result: 'denied', reason: 'expired' });
    const fx = makeFixture(`mqtt://127.0.0.1:${await closedPort()}`);
    fx.bundle.offlineSecret = randomBytes(32).toString('base64url');
    const clockless = new ReferenceController({ bundle: fx.bundle, store: new FileStateStore(join(dirs.at(-1)!, 'other.json')), clockSynced: false, mqtt: { reconnectPeriod: 60_000 } });
    await clockless.start({ waitForConnection: false });
    try {
      const valid = offlineCode({ secret: fx.bundle.offlineSecret, ctrl: fx.bundle.controllerId, door: 'street', window: offlineCodeWindow(Date.now()) });
      expect(clockless.presentCode('street', valid)).toEqual({ result: 'denied', reason: 'clock-unsafe' });
    } finally {
      await clockless.stop();
    }
  });
});

/** A TCP port nothing listens on: bound and closed again. */
async function closedPort(): Promise<number> {
  const net = await import('node:net');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as import('node:net').AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
