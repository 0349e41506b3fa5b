// esp-rfid's documented messages (README-MQTT.md) as the bridge reads them, and its config checks.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { accessGranted, loadBridgeConfig, parseEspRfidMessage } from '../../src/bridges/esp-rfid/index.js';
import { makeFixture } from '../support/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'sp-esp-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseEspRfidMessage', () => {
  it('reads the documented boot, heartbeat, acknowledgements and userfile', () => {
    expect(parseEspRfidMessage('{"type":"boot","time":1605987212,"uptime":0,"ip":"192.168.1.9","hostname":"door"}')).toEqual({ kind: 'boot', time: 1605987212, ip: '192.168.1.9' });
    expect(parseEspRfidMessage('{"type":"heartbeat","time":1605991375,"uptime":999,"ip":"192.168.1.9","hostname":"door"}')).toMatchObject({ kind: 'heartbeat', time: 1605991375 });
    expect(parseEspRfidMessage('{"type":"adduser","ip":"192.168.1.9","hostname":"door"}')).toEqual({ kind: 'ack', of: 'adduser' });
    expect(parseEspRfidMessage('{"type":"deletuid","ip":"192.168.1.9","hostname":"door"}')).toEqual({ kind: 'ack', of: 'deletuid' });
    expect(
      parseEspRfidMessage('{"command":"userfile","uid":"1234","user":"User Name","acctype":1,"acctype2":null,"acctype3":null,"acctype4":null,"validsince":0,"validuntil":1608336000}'),
    ).toEqual({ kind: 'userfile', user: { uid: '1234', user: 'User Name', acctype: '1', validsince: 0, validuntil: 1608336000 } });
  });

  it('reads access messages, known and unknown, one door or several', () => {
    const known = parseEspRfidMessage('{"type":"access","time":1605991375,"isKnown":"true","access":"Always","username":"u","uid":"04a1b2","hostname":"door"}');
    expect(known).toEqual({ kind: 'access', time: 1605991375, known: true, access: 'Always', username: 'u', uid: '04a1b2' });
    expect(accessGranted(known as { known: boolean; access: string })).toBe(true);
    const unknown = parseEspRfidMessage('{"type":"access","time":1,"isKnown":"false","access":"Denied","username":"Unknown","uid":"04a1b2"}');
    expect(accessGranted(unknown as { known: boolean; access: string })).toBe(false);
    const expired = parseEspRfidMessage('{"type":"access","time":1,"isKnown":"true","access":"Expired","username":"u","uid":"04a1b2"}');
    expect(accessGranted(expired as { known: boolean; access: string })).toBe(false);
    expect(parseEspRfidMessage('{"type":"access","isKnown":"true","access":["Always","Disabled"],"username":"u","uid":"04a1b2","doorName":["a","b"]}')).toMatchObject({ access: 'Always' });
  });

  it('never throws: anything else is `other`', () => {
    for (const p of ['', 'nope', '[]', 'null', '{"type":"INFO","src":"door","desc":"Door Open","cmd":"event"}', '{"command":"userfile"}']) {
      expect(parseEspRfidMessage(p)).toEqual({ kind: 'other' });
    }
  });
});

describe('loadBridgeConfig', () => {
  it('accepts a complete config, bundle paths relative to the file', () => {
    const fx = makeFixture('mqtt://127.0.0.1:1', { doors: ['street'] });
    writeFileSync(join(dir, 'ctl.json'), JSON.stringify(fx.bundle));
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ deviceBroker: { url: 'mqtt://10.0.0.2:1883' }, stateDir: 'state', devices: [{ bundle: 'ctl.json', topic: '/rfid/a', doorip: '10.0.0.9', door: 'street' }] }));
    const r = loadBridgeConfig(join(dir, 'ok.json'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.options.devices[0]?.bundle.controllerId).toBe(fx.bundle.controllerId);
  });

  it('lists every problem: wrong door, no controller key, wildcard topic, bad timing', () => {
    const fx = makeFixture('mqtt://127.0.0.1:1', { doors: ['street'] });
    const { controllerKey: _k, ...noKey } = fx.bundle;
    writeFileSync(join(dir, 'nokey.json'), JSON.stringify(noKey));
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ deviceBroker: { url: 'mqtt://x' }, stateDir: 's', devices: [{ bundle: 'nokey.json', topic: '/rfid/#', doorip: '10.0.0.9', door: 'lift' }], timing: { listSettleMs: 0 } }),
    );
    const r = loadBridgeConfig(join(dir, 'bad.json'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.problems.join('\n')).toMatch(/no controllerKey/);
      expect(r.problems.join('\n')).toMatch(/door lift is not a door of the bundle/);
      expect(r.problems.join('\n')).toMatch(/topic must be/);
      expect(r.problems.join('\n')).toMatch(/timing.listSettleMs/);
      // A problem names the field, never a secret from the bundle.
      expect(r.problems.join('\n')).not.toContain(fx.bundle.mqtt.password);
    }
  });
});
