// `npm start` (node gateway/dist/main.js) as a real process: a taken port fails with advice and no
// stack trace; free ports run the gateway with the embedded broker, store and demo district until
// SIGTERM; SP_MQTT_URL uses another broker; bad configuration lists every problem. Each process is
// ended by its PID.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { connectMqtt } from '@smart-passage/protocol/controller';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../support/http.js';
import { endAll, startMain as spawnMain, type Proc } from '../support/main-process.js';

/** A line of a JS stack trace: `    at fn (file.js:12:34)`. */
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;


let tmp: string;
const startMain = (settings: Record<string, string>): Proc => spawnMain(settings, tmp);


async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Retained controller states on a broker: id → {online, retain}. */
async function watchStates(url: string): Promise<{ client: MqttClient; states: Map<string, { online: boolean; retain: boolean }> }> {
  const states = new Map<string, { online: boolean; retain: boolean }>();
  const client = connectMqtt({ url, clientId: `start-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, reconnectPeriod: 0 });
  client.on('message', (topic, payload, packet) => {
    const id = topic.split('/')[3];
    if (id === undefined || payload.length === 0) return;
    const m = JSON.parse(payload.toString('utf8')) as { body: { online: boolean } };
    states.set(id, { online: m.body.online, retain: packet.retain });
  });
  client.on('error', () => undefined);
  await client.subscribeAsync('sp/v1/c/+/state', { qos: 1 });
  return { client, states };
}


beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sp-start-'));
});
afterEach(async () => {
  // End what this file started, by PID: SIGTERM, then SIGKILL after a grace period.
  await endAll();
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('npm start (gateway/dist/main.js)', () => {
  it('fails clearly when the MQTT port is taken: names the port and both ways out, exit 1, no stack trace', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const p = startMain({ SP_MQTT_PORT: String(port), SP_DATA_DIR: join(tmp, 'taken') });
      const exit = await within(p.exited, 5_000, 'exit');
      const all = p.out() + p.err();
      expect(exit, all).toEqual({ code: 1, signal: null });
      expect(all).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(all).toContain(`SP_MQTT_PORT=${port + 1} npm start`);
      expect(all).toContain(`SP_MQTT_URL=mqtt://127.0.0.1:${port} npm start`);
      expect(all).not.toMatch(STACK_LINE);
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
  });

  it('lists every configuration problem and exits 1', async () => {
    const p = startMain({ SP_MQTT_PORT: 'abc', SP_DEMO: 'maybe', SP_DATA_DIR: join(tmp, 'bad') });
    const exit = await within(p.exited, 5_000, 'exit');
    expect(exit).toEqual({ code: 1, signal: null });
    expect(p.err()).toContain('invalid configuration');
    expect(p.err()).toContain("SP_MQTT_PORT must be a whole number from 0 to 65535, got 'abc'");
    expect(p.err()).toContain("SP_DEMO must be one of on|off, got 'maybe'");
    expect(p.out() + p.err()).not.toMatch(STACK_LINE);
  });

  it('fails at once, with advice, when SP_MQTT_URL names a broker that does not answer', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const p = startMain({ SP_MQTT_URL: `mqtt://127.0.0.1:${port}`, SP_DATA_DIR: join(tmp, 'nobroker') });
    expect(await within(p.exited, 8_000, 'exit')).toEqual({ code: 1, signal: null });
    expect(p.err()).toContain(`no MQTT broker answers at SP_MQTT_URL=mqtt://127.0.0.1:${port}`);
    expect(p.out() + p.err()).not.toMatch(STACK_LINE);
  });

  it('runs the gateway on the embedded broker and store with the demo district until SIGTERM, then exits 0', async () => {
    const dataDir = join(tmp, 'data');
    // Port 0: the OS picks free ones, and the banner says which.
    const p = startMain({ SP_MQTT_PORT: '0', SP_PORT: '0', SP_DATA_DIR: dataDir });
    const url = await until(() => /embedded on (mqtt:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1], 20_000, `banner\n${p.err()}`);
    const http = /API and UI {3}(http:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1];
    expect(p.out()).toContain('15 in-process reference controllers');
    const password = /^ {2}dispatch +dispatcher +(\S+)$/m.exec(p.out())?.[1];
    expect(password).toBeDefined();
    expect(statSync(join(dataDir, 'demo', 'secrets.json')).mode & 0o777).toBe(0o600);
    // The printed password works; it is in the banner (stdout) only, never in the log (stderr).
    const login = await fetch(`${http}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'dispatch', password }) });
    expect(login.status).toBe(200);
    expect(p.err()).not.toContain(password);

    // Every demo controller logged in with its own credentials and came online (seen through the API).
    const { accessToken } = (await login.json()) as { accessToken: string };
    let online = 0;
    await until(async () => {
      const r = await fetch(`${http}/api/v1/controllers?limit=100`, { headers: { authorization: `Bearer ${accessToken}` } });
      const items = ((await r.json()) as { items: { id: string; online: boolean }[] }).items;
      online = items.filter((c) => c.online && c.id.startsWith('ctl-sofa-')).length;
      return online === 15 ? true : undefined;
    }, 8_000, 'controllers online');
    // The embedded broker lets no anonymous client in (DESIGN §7).
    const anonymous = connectMqtt({ url, clientId: `anon-${process.pid}`, reconnectPeriod: 0 });
    const refused = await new Promise<string>((resolve) => {
      anonymous.once('error', (err) => resolve(err.message));
      anonymous.once('connect', () => resolve('connected'));
    });
    anonymous.end(true);
    expect(refused).not.toBe('connected');

    process.kill(p.pid, 'SIGTERM');
    const exit = await within(p.exited, 10_000, 'exit after SIGTERM');
    expect(exit, p.err()).toEqual({ code: 0, signal: null });
    expect(p.err()).toContain('embedded MQTT broker stopped');
  });

  it('uses the broker named by SP_MQTT_URL instead of starting one; the demo controllers say goodbye on SIGTERM', async () => {
    const aedes = await Aedes.createBroker();
    const server = net.createServer({ noDelay: true }, (socket) => aedes.handle(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { client, states } = await watchStates(url);
    try {
      const p = startMain({ SP_MQTT_URL: url, SP_MQTT_PORT: '1', SP_PORT: '0', SP_DEMO: 'on', SP_DATA_DIR: join(tmp, 'ext') });
      await until(() => (p.out().includes('Ctrl-C stops everything') ? true : undefined), 20_000, `banner\n${p.err()}`);
      expect(p.out()).toContain(`MQTT broker  ${url} (SP_MQTT_URL)`);
      expect(p.out()).toContain('note: SP_MQTT_PORT is ignored');
      await until(() => (states.size === 15 && [...states.values()].every((s) => s.online) ? true : undefined), 5_000, 'births');

      process.kill(p.pid, 'SIGTERM');
      expect(await within(p.exited, 10_000, 'exit after SIGTERM')).toEqual({ code: 0, signal: null });
      // A graceful stop publishes each controller's retained offline state (§5.3).
      await until(() => ([...states.values()].every((s) => !s.online) ? true : undefined), 5_000, 'offline states');
    } finally {
      await client.endAsync();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
