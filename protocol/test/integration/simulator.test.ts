// The fleet simulator (DESIGN §5.8) against an embedded aedes on a port of its own: as a library
// (the whole loop: demo grants → applied → local decisions → events delivered and acked) and as
// the built `sp-sim` CLI.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openMessage, trustedKeys, privateKeyFromSeed, rawPublicKey, MAX_PAYLOAD_BYTES, TOPIC_ROOT, parseControllerTopic } from '../../src/index.js';
import { connectMqtt, hasNoDelay } from '../../src/mqtt/connect.js';
import { Fleet, generateFleet, readFleetFile } from '../../src/simulator/index.js';
import { startAedes, type TestBroker } from '../support/brokers.js';
import { ProcessSet } from '../support/processes.js';

const SIM_CLI = fileURLToPath(new URL('../../dist/cli/simulator.js', import.meta.url));

let broker: TestBroker;
let tmp: string;
const procs = new ProcessSet();

beforeAll(async () => {
  broker = await startAedes();
  tmp = mkdtempSync(join(tmpdir(), 'sp-sim-test-'));
});
afterEach(async () => {
  await procs.endAll();
});
afterAll(async () => {
  await broker.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('Fleet as a library', () => {
  let fleet: Fleet | undefined;
  let observer: MqttClient | undefined;
  afterEach(async () => {
    await fleet?.stop();
    await observer?.endAsync();
  });

  it('runs 20 controllers × 3 doors with demo grants: all online, some granted, every event delivered and acked', async () => {
    const spec = generateFleet({ controllers: 20, doors: 3, url: broker.url, prefix: 'libsim' });
    // A gateway's view: every evt the fleet sends, checked against the sender's key.
    const keys = new Map(
      spec.controllers.map((b) => [
        b.controllerId,
        trustedKeys([{ kid: b.controllerKid, publicKey: rawPublicKey(privateKeyFromSeed(b.controllerKey?.privateKey ?? '')) }]),
      ]),
    );
    const delivered = new Set<string>();
    let forged = 0;
    observer = connectMqtt({ url: broker.url, clientId: 'sim-test-observer' });
    observer.on('message', (topic, payload) => {
      const t = parseControllerTopic(topic);
      const k = t ? keys.get(t.ctrl) : undefined;
      if (!t || !k) return;
      const opened = openMessage(payload, { types: ['evt'], keys: k, maxBytes: MAX_PAYLOAD_BYTES.evt, ctrl: t.ctrl, now: Date.now() });
      if (!opened.ok) forged += 1;
      else delivered.add(`${t.ctrl}/${opened.message.boot}/${opened.message.seq}`);
    });
    await observer.subscribeAsync(`${TOPIC_ROOT}/c/+/evt`, { qos: 1 });

    fleet = new Fleet({
      fleet: spec,
      tags: ['A1B2C3D4', 'B2C3D4E5', 'C3D4E5F6', 'D4E5F607'],
      rate: 40,
      concurrency: 5,
      grantDemo: { intervalMs: 300, share: 0.5 },
    });
    await fleet.start();
    expect(fleet.stats().online).toBe(20);
    // Every MQTT socket, both ends, with TCP_NODELAY (DESIGN §12).
    expect(fleet.controllers.every((c) => hasNoDelay(c.mqttClient?.stream))).toBe(true);
    expect([...broker.sockets].every((s) => hasNoDelay(s))).toBe(true);

    const f = fleet;
    expect(await until(() => f.stats().granted >= 5 && f.stats().denied >= 5, 15_000)).toBe(true);
    expect(await fleet.quiesce(5_000)).toBe(true);

    const s = fleet.stats();
    expect(s.online).toBe(20);
    expect(s.applied).toBeGreaterThan(0);
    expect(s.demoSyncs).toBeGreaterThanOrEqual(s.applied);
    expect(s.access).toBe(s.presentations);
    expect(s.backlog).toBe(0);
    expect(s.acked).toBe(s.events);
    expect(s.rejected).toBe(0);
    // Acked by the broker means delivered to a subscriber: every event arrived, none forged.
    expect(await until(() => delivered.size === s.events, 3_000)).toBe(true);
    expect(forged).toBe(0);

    await fleet.stop();
    expect(fleet.stats().online).toBe(0);
  });
});

describe('sp-sim CLI', () => {
  it('runs a generated fleet for --duration, writes the fleet file 0600, prints a summary, exits 0', async () => {
    const dataDir = join(tmp, 'cli');
    const p = procs.spawn(SIM_CLI, [
      '--controllers', '6', '--doors', '2', '--url', broker.url, '--duration', '3', '--rate', '20', '--grant-demo',
      '--data-dir', dataDir, '--state', 'file', '--prefix', 'clisim',
    ]);
    const exit = await p.exited;
    expect(exit, p.stderr).toEqual({ code: 0, signal: null });
    const fleetFile = join(dataDir, 'fleet.json');
    expect(statSync(fleetFile).mode & 0o777).toBe(0o600);
    const fleet = readFleetFile(fleetFile);
    expect(fleet.controllers.map((b) => b.controllerId)).toEqual(['clisim-0001', 'clisim-0002', 'clisim-0003', 'clisim-0004', 'clisim-0005', 'clisim-0006']);
    expect(fleet.controllers.every((b) => b.mqtt.url === broker.url && b.doors?.length === 2)).toBe(true);
    expect(statSync(join(dataDir, 'state', 'clisim-0001.state.json')).isFile()).toBe(true);
    expect(p.stdout).toMatch(/^final: online 6\/6 · applied \d+ · access \d+ \(granted \d+, denied \d+\) · events \d+, acked \d+ · backlog 0 · rejected 0/m);
    expect(p.stdout).toContain('every event acknowledged');
    // Private keys stay in the 0600 file: never on the console.
    for (const b of fleet.controllers) expect(p.stdout + p.stderr).not.toContain(b.controllerKey?.privateKey);
    expect(p.stdout + p.stderr).not.toContain(fleet.gateway.privateKey);
  });

  it('lists every argument problem with the usage and exits 2', async () => {
    const p = procs.spawn(SIM_CLI, ['--controllers', 'lots', '--state', 'disk', '--bundles', 'x', '--grant-demo']);
    const exit = await p.exited;
    expect(exit.code).toBe(2);
    expect(p.stderr).toContain("--controllers must be a whole number, got 'lots'");
    expect(p.stderr).toContain("--state must be memory or file, got 'disk'");
    expect(p.stderr).toContain('--grant-demo needs the gateway private key');
    expect(p.stderr).toContain('Usage: sp-sim');
  });
});
