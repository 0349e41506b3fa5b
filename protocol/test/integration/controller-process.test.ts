// `sp-controller` as a real process, killed with SIGKILL and restarted on the same state file.
// What must hold (DESIGN §10, PROTOCOL P-7, P-22): the highest accepted seq survives the kill, so
// a replayed sync is dropped and reported; events made before the kill, even those the broker
// never acknowledged, arrive after the restart; the synced grant still opens the door.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  buildMessage,
  controllerTopic,
  MAX_PAYLOAD_BYTES,
  openMessage,
  trustedKeys,
  type EvtBody,
  type Message,
  type ReplyBody,
  type StateBody,
} from '../../src/index.js';
import { connectMqtt } from '../../src/mqtt/connect.js';
import { startAedes, type TestBroker } from '../support/brokers.js';
import { makeFixture, type Fixture } from '../support/fixtures.js';
import { ProcessSet, type Spawned } from '../support/processes.js';

const CONTROLLER_CLI = fileURLToPath(new URL('../../dist/cli/controller.js', import.meta.url));
const TAG = 'A1B2C3D4';
const PIN = '48213976';

interface Seen<B> {
  boot: string;
  seq: number;
  id: string;
  body: B;
}

let broker: TestBroker;
let fx: Fixture;
let tmp: string;
let gw: MqttClient;
const procs = new ProcessSet();
const states: Seen<StateBody>[] = [];
const replies: Seen<ReplyBody>[] = [];
/** Every evt received, deduplicated by (boot, seq) as a gateway does (DESIGN §5.2). */
const events = new Map<string, Seen<EvtBody>>();
let forged = 0;

beforeEach(async () => {
  broker = await startAedes();
  fx = makeFixture(broker.url, { doors: ['street', 'stair-a'] });
  tmp = mkdtempSync(join(tmpdir(), 'sp-ctl-proc-'));
  writeFileSync(join(tmp, 'bundle.json'), JSON.stringify(fx.bundle), { mode: 0o600 });
  states.length = 0;
  replies.length = 0;
  events.clear();
  forged = 0;
  const id = fx.bundle.controllerId;
  const keys = trustedKeys([{ kid: fx.bundle.controllerKid, publicKey: fx.controllerPublicKey }]);
  // The test plays the gateway: it checks everything the controller sends against its key.
  gw = connectMqtt({ url: broker.url, clientId: `test-gw-${id}` });
  gw.on('message', (topic, payload) => {
    const leaf = topic.split('/').pop() as 'state' | 'reply' | 'evt';
    const opened = openMessage(payload, { types: [leaf], keys, maxBytes: MAX_PAYLOAD_BYTES[leaf], ctrl: id, now: Date.now() });
    if (!opened.ok) {
      forged += 1;
      return;
    }
    const m = opened.message;
    const seen = { boot: m.boot, seq: m.seq, id: m.id, body: m.body };
    if (leaf === 'state') states.push(seen as Seen<StateBody>);
    else if (leaf === 'reply') replies.push(seen as Seen<ReplyBody>);
    else events.set(`${m.boot}:${m.seq}`, seen as Seen<EvtBody>);
  });
  await gw.subscribeAsync(['state', 'reply', 'evt'].map((l) => controllerTopic(id, l as 'state')), { qos: 1 });
});

afterEach(async () => {
  await procs.endAll();
  await gw.endAsync();
  await broker.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function until<T>(probe: () => T | undefined | false, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startController(): Spawned {
  return procs.spawn(CONTROLLER_CLI, ['--bundle', join(tmp, 'bundle.json'), '--state', join(tmp, 'ctl.state.json'), '--log-level', 'info']);
}

/** Wait for a birth from a boot other than `notBoot`. */
function birth(notBoot?: string): Promise<Seen<StateBody & { online: true }>> {
  return until(() => states.find((s) => s.body.online && s.boot !== notBoot) as Seen<StateBody & { online: true }> | undefined, 10_000, 'birth');
}

/** Run one stdin command and return its JSON result line. */
async function command(p: Spawned, line: string): Promise<Record<string, unknown>> {
  const from = p.lines.length;
  const cmd = line.split(' ')[0];
  p.send(line);
  return (await p.waitForJson((v) => v.cmd === cmd || (v.error !== undefined && v.cmd === undefined), { from })).value;
}

/** Wait until every event the process made is acknowledged by the broker. */
async function drainBacklog(p: Spawned): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await command(p, 'status')).backlog === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('backlog never drained');
}

function accessEvents(boot: string): { seq: number; door: string; credential: unknown; result: string; reason: string }[] {
  return [...events.values()]
    .filter((e) => e.boot === boot && e.body.kind === 'access')
    .sort((a, b) => a.seq - b.seq)
    .map((e) => {
      const b = e.body as Extract<EvtBody, { kind: 'access' }>;
      return { seq: e.seq, door: b.door, credential: b.credential, result: b.result, reason: b.reason };
    });
}

describe('sp-controller process', () => {
  it('survives SIGKILL: replay rejected, no event lost, grant still works', async () => {
    const id = fx.bundle.controllerId;
    const p1 = startController();
    const b1 = await birth();
    expect(b1.body.lastSeq).toBe(0);

    // Sync a grant for TAG and PIN at the street door.
    const now = Date.now();
    const sync: Message<'grants.sync'> = buildMessage({
      type: 'grants.sync',
      ctrl: id,
      seq: b1.body.lastSeq + 1,
      boot: 'test-gateway-boot',
      body: {
        version: 1,
        grants: [
          {
            grantId: 'g-1',
            incident: 'INC-1',
            doors: ['street'],
            credentials: [
              { kind: 'tag', uid: TAG },
              { kind: 'pin', pin: PIN },
            ],
            notBefore: now - 1_000,
            notAfter: now + 600_000,
          },
        ],
      },
      key: fx.gateway,
    });
    const syncPayload = JSON.stringify(sync);
    await gw.publishAsync(controllerTopic(id, 'sync'), syncPayload, { qos: 1 });
    await until(() => replies.find((r) => r.body.ref === sync.id && r.body.status === 'applied'), 10_000, 'applied reply');
    await p1.waitForJson((v) => v.event === 'applied' && v.version === 1);

    // One presentation delivered normally…
    expect(await command(p1, `tag street ${TAG}`)).toMatchObject({ cmd: 'tag', result: 'granted', grantId: 'g-1' });
    await until(() => accessEvents(b1.boot).length === 1, 10_000, 'first access event');
    await drainBacklog(p1);

    // …then the broker stops acknowledging this controller's events (held, never PUBACKed), so
    // the next ones exist only in the controller's persisted backlog when it is killed.
    const original = broker.aedes.authorizePublish;
    let hold = true;
    broker.aedes.authorizePublish = (client, packet, callback) => {
      if (hold && packet.topic === controllerTopic(id, 'evt')) return;
      original.call(broker.aedes, client, packet, callback);
    };
    expect(await command(p1, 'tag street DEADBEEF')).toMatchObject({ result: 'denied', reason: 'unknown' });
    expect(await command(p1, `pin street ${PIN}`)).toMatchObject({ result: 'granted', grantId: 'g-1' });
    expect(await command(p1, `tag stair-a ${TAG}`)).toMatchObject({ result: 'denied', reason: 'wrong-door' });
    const before = await command(p1, 'status');
    expect(before.backlog).toBeGreaterThanOrEqual(3);

    process.kill(p1.pid, 'SIGKILL');
    expect(await p1.exited).toEqual({ code: null, signal: 'SIGKILL' });
    hold = false;

    const p2 = startController();
    const b2 = await birth(b1.boot);
    // The highest accepted seq and the applied version survived the kill (P-7, P-12).
    expect(b2.body).toMatchObject({ lastSeq: sync.seq, appliedVersion: 1 });

    // (b) Nothing lost: the backlog made under boot 1 arrives after the restart, contiguous from 1.
    const expected = [
      { door: 'street', credential: { kind: 'tag', uid: TAG }, result: 'granted', reason: 'grant' },
      { door: 'street', credential: { kind: 'tag', uid: 'DEADBEEF' }, result: 'denied', reason: 'unknown' },
      { door: 'street', credential: { kind: 'pin' }, result: 'granted', reason: 'grant' },
      { door: 'stair-a', credential: { kind: 'tag', uid: TAG }, result: 'denied', reason: 'wrong-door' },
    ];
    await until(() => accessEvents(b1.boot).length === expected.length, 10_000, 'backlog after restart');
    expect(accessEvents(b1.boot).map(({ seq: _seq, ...rest }) => rest)).toEqual(expected);
    const seqs1 = [...events.values()].filter((e) => e.boot === b1.boot).map((e) => e.seq).sort((a, b) => a - b);
    expect(seqs1).toEqual(Array.from({ length: seqs1.length }, (_, i) => i + 1));

    // (a) The same sync again, byte for byte: a replay. No reply, nothing applied, a `rejected` evt.
    const fromLine = p2.lines.length;
    await gw.publishAsync(controllerTopic(id, 'sync'), syncPayload, { qos: 1 });
    const rejected = await until(
      () => [...events.values()].find((e) => e.boot === b2.boot && e.body.kind === 'rejected' && e.body.code === 'replay'),
      10_000,
      'rejected evt',
    );
    expect(rejected.body).toMatchObject({ kind: 'rejected', code: 'replay', ref: sync.id });
    await p2.waitForJson((v) => v.event === 'rejected' && v.code === 'replay', { from: fromLine });
    // Give a wrongly sent reply time to show up before asserting there is none.
    await new Promise((r) => setTimeout(r, 300));
    expect(replies.filter((r) => r.boot === b2.boot)).toEqual([]);
    expect(p2.json(fromLine).filter((j) => j.value.event === 'applied')).toEqual([]);

    // (c) The grant still opens the door after the restart.
    expect(await command(p2, `tag street ${TAG}`)).toMatchObject({ result: 'granted', grantId: 'g-1' });
    await until(() => accessEvents(b2.boot).some((e) => e.result === 'granted'), 10_000, 'granted after restart');

    // Graceful stop: retained offline state for this boot, exit 0.
    p2.kill('SIGTERM');
    expect(await p2.exited).toEqual({ code: 0, signal: null });
    await until(() => states.find((s) => !s.body.online && s.boot === b2.boot), 5_000, 'offline state');
    await p2.waitForJson((v) => v.event === 'stopped');

    expect(forged).toBe(0);
    // The PIN is never written out, not in results, events or logs (DESIGN §7).
    for (const p of [p1, p2]) expect(p.stdout + p.stderr).not.toContain(PIN);
  });
});
