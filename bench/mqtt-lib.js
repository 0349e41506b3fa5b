// MQTT round trips through real brokers, shared by the bench scripts: the raw TCP floor, QoS 1
// publish → reply between two mqtt.js clients (with TCP_NODELAY through the project's connectMqtt,
// or without it through a plain mqtt.connect), and brokers started for one measurement (aedes in
// this process, a private Mosquitto on an ephemeral port with a config of its own).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Aedes } from 'aedes';
import { connect } from 'mqtt';
// The built protocol package by path (see mqtt-roundtrip.js).
import { connectMqtt, hasNoDelay } from '../protocol/dist/controller/index.js';
import { nowMs } from './lib.js';

export const PAYLOAD_BYTES = 64;
export const REPLY_TIMEOUT_MS = 5_000;
export const CONNECT_TIMEOUT_MS = 5_000;
const TCP_SAMPLES = 2_000;
const TCP_WARMUP = 200;
const WARMUP_CAP_MS = 3_000;

/** @param {number[]} samples milliseconds */
export function summarise(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  // Nearest-rank percentile: with 40 samples p99 is the slowest one, which is what we want to see.
  const at = (/** @type {number} */ p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN;
  const mean = sorted.reduce((s, v) => s + v, 0) / sorted.length;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), mean };
}

/**
 * @template T
 * @param {Promise<T>} promise @param {number} ms @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout])).finally(() => clearTimeout(timer));
}

/** Raw TCP ping-pong over loopback with TCP_NODELAY: the floor no MQTT round trip can beat. */
export async function tcpPingPong() {
  const server = net.createServer({ noDelay: true }, (s) => s.pipe(s));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {net.AddressInfo} */ (server.address());
  const socket = net.connect({ host: '127.0.0.1', port: address.port, noDelay: true });
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const payload = randomBytes(PAYLOAD_BYTES);
  /** @type {(() => void) | undefined} */
  let done;
  let received = 0;
  socket.on('data', (chunk) => {
    received += chunk.length;
    if (received >= PAYLOAD_BYTES) {
      received -= PAYLOAD_BYTES;
      done?.();
    }
  });
  /** @type {number[]} */
  const samples = [];
  for (let i = 0; i < TCP_WARMUP + TCP_SAMPLES; i++) {
    const t0 = nowMs();
    await withTimeout(
      new Promise((resolve) => {
        done = () => resolve(undefined);
        socket.write(payload);
      }),
      REPLY_TIMEOUT_MS,
      'TCP ping-pong',
    );
    if (i >= TCP_WARMUP) samples.push(nowMs() - t0);
  }
  socket.destroy();
  await new Promise((resolve) => server.close(() => resolve(undefined)));
  return summarise(samples);
}

/**
 * One MQTT client: with TCP_NODELAY through the project's own connectMqtt, without it through a
 * plain mqtt.connect (what mqtt.js gives you by default).
 * @param {string} url @param {boolean} noDelay @param {string} clientId
 * @returns {Promise<import('mqtt').MqttClient>}
 */
export async function openClient(url, noDelay, clientId) {
  const options = { clientId, clean: true, reconnectPeriod: 0, connectTimeout: CONNECT_TIMEOUT_MS, protocolVersion: /** @type {const} */ (4) };
  const client = noDelay ? connectMqtt({ url, ...options }) : connect(url, options);
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        client.once('connect', resolve);
        client.once('error', reject);
        client.once('close', () => reject(new Error(`connection to ${url} closed`)));
      }),
      CONNECT_TIMEOUT_MS,
      `connect to ${url}`,
    );
  } catch (err) {
    client.end(true);
    throw err;
  }
  client.removeAllListeners('close');
  client.removeAllListeners('error');
  client.on('error', (err) => console.error(`[${clientId}] ${err.message}`));
  if (hasNoDelay(client.stream) !== noDelay) throw new Error(`${clientId}: TCP_NODELAY is not ${noDelay ? 'on' : 'off'} on the client socket`);
  return client;
}

/**
 * @param {import('mqtt').MqttClient} client @param {string} topic
 */
export async function subscribe(client, topic) {
  await withTimeout(client.subscribeAsync(topic, { qos: 1 }), REPLY_TIMEOUT_MS, `subscribe ${topic}`);
}

/**
 * The measured exchange: A → broker → B → broker → A, both legs QoS 1. Each phase stops at its
 * count or its time cap, whichever comes first, so a slow broker cannot make the run unbounded.
 * @param {string} url @param {boolean} noDelay
 * @param {{ count: number, warmup: number, maxMs: number }} limits
 */
export async function mqttRoundTrips(url, noDelay, limits) {
  const run = randomBytes(4).toString('hex');
  const prefix = `sp-bench/${run}`;
  const a = await openClient(url, noDelay, `sp-bench-a-${run}`);
  let b;
  try {
    b = await openClient(url, noDelay, `sp-bench-b-${run}`);
  } catch (err) {
    a.end(true);
    throw err;
  }
  const responder = b;
  try {
    responder.on('message', (_topic, payload) => {
      responder.publish(`${prefix}/rep`, payload, { qos: 1 });
    });
    await subscribe(responder, `${prefix}/req`);
    /** @type {((payload: Buffer) => void) | undefined} */
    let onReply;
    a.on('message', (_topic, payload) => onReply?.(payload));
    await subscribe(a, `${prefix}/rep`);

    const payload = randomBytes(PAYLOAD_BYTES);
    /** @type {number[]} */
    const samples = [];
    const warmupEnd = nowMs() + WARMUP_CAP_MS;
    let timedEnd = Infinity;
    let warm = false;
    for (let i = 0; samples.length < limits.count && nowMs() < timedEnd; i++) {
      if (!warm && (i >= limits.warmup || nowMs() >= warmupEnd)) {
        warm = true;
        timedEnd = nowMs() + limits.maxMs;
      }
      payload.writeUInt32BE(i, 0);
      const t0 = nowMs();
      let t1 = 0;
      const replied = new Promise((resolve) => {
        onReply = (p) => {
          // A reply to an earlier request (impossible unless the broker duplicates) is not ours.
          if (p.length === PAYLOAD_BYTES && p.readUInt32BE(0) === i) {
            t1 = nowMs();
            resolve(undefined);
          }
        };
      });
      // Wait for the PUBACK too, so no exchange overlaps the next one.
      await withTimeout(Promise.all([a.publishAsync(`${prefix}/req`, payload, { qos: 1 }), replied]), REPLY_TIMEOUT_MS, `round trip ${i}`);
      if (warm) samples.push(t1 - t0);
    }
    return summarise(samples);
  } finally {
    await Promise.allSettled([a.endAsync(), responder.endAsync()]);
  }
}

/** @param {boolean} noDelay */
export async function startAedes(noDelay) {
  const broker = await Aedes.createBroker();
  const server = net.createServer({ noDelay }, (socket) => broker.handle(socket));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(undefined));
  });
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      await new Promise((resolve) => broker.close(() => resolve(undefined)));
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * Whether something accepts TCP connections on a loopback port.
 * @param {number} port @returns {Promise<boolean>}
 */
export function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A free loopback port (there is a small race before Mosquitto binds it; fine for a bench). */
export async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (probe.address());
  await new Promise((resolve) => probe.close(() => resolve(undefined)));
  return port;
}

/**
 * A private Mosquitto with the production socket setting, so that "both ends" really means both
 * ends: the machine's broker keeps whatever its own config says. `extra`: more config lines.
 * @param {string} bin @param {boolean} noDelay @param {string[]} [extra]
 */
export async function startMosquitto(bin, noDelay, extra = []) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sp-bench-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', `set_tcp_nodelay ${noDelay}`, 'persistence false', 'log_dest none', ...extra, ''].join('\n'));
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `mqtt://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  // Wait until it accepts TCP connections (bounded).
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    const ok = await accepts(port);
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`private mosquitto did not start: ${stderr.trim() || 'no output'}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, stop, pid: child.pid };
}

/**
 * A raw fan-out baseline: `count` QoS 1 request/reply exchanges through the broker at `url`,
 * pipelined (up to `window` requests outstanding), between two mqtt.js clients with TCP_NODELAY.
 * Milliseconds from the first publish to the last reply: what the broker and mqtt.js alone cost
 * for that many exchanges, with no signing, storing or controller logic.
 * @param {string} url @param {number} count @param {number} [window]
 */
export async function fanOut(url, count, window = 1_000) {
  const run = randomBytes(4).toString('hex');
  const prefix = `sp-bench/${run}`;
  const a = await openClient(url, true, `sp-bench-fa-${run}`);
  const b = await openClient(url, true, `sp-bench-fb-${run}`).catch((/** @type {unknown} */ err) => {
    a.end(true);
    throw err;
  });
  try {
    b.on('message', (_topic, payload) => {
      b.publish(`${prefix}/rep`, payload, { qos: 1 });
    });
    await subscribe(b, `${prefix}/req`);
    await subscribe(a, `${prefix}/rep`);
    let replies = 0;
    let sent = 0;
    /** @type {() => void} */
    let wake = () => undefined;
    a.on('message', () => {
      replies += 1;
      wake();
    });
    const payload = Buffer.alloc(PAYLOAD_BYTES);
    const t0 = nowMs();
    const deadline = t0 + 60_000;
    while (replies < count) {
      while (sent < count && sent - replies < window) {
        payload.writeUInt32BE(sent, 0);
        a.publish(`${prefix}/req`, Buffer.from(payload), { qos: 1 });
        sent += 1;
      }
      await new Promise((resolve) => {
        wake = () => resolve(undefined);
        setTimeout(resolve, 100);
      });
      if (nowMs() > deadline) throw new Error(`fan-out: ${replies} of ${count} replies within 60 s`);
    }
    return nowMs() - t0;
  } finally {
    await Promise.allSettled([a.endAsync(), b.endAsync()]);
  }
}
