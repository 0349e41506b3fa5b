#!/usr/bin/env node
// QoS 1 publish → reply round trip through real brokers, with TCP_NODELAY on and off (DESIGN §12).
//
// Client A publishes a 64-byte payload at QoS 1; client B, subscribed at QoS 1, publishes it back
// at QoS 1 from its message handler; A times from its publish call to the reply's arrival.
// Brokers: a Mosquitto at --url (default: this machine's, 127.0.0.1:1883), optionally a private
// Mosquitto this script starts with `set_tcp_nodelay true` (the production setting), and an
// embedded aedes on an ephemeral port. The raw TCP ping-pong p50 is the floor below all of them.
//
// Run with `npm run bench` (builds first). `node bench/mqtt-roundtrip.js --help` lists the options.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Aedes } from 'aedes';
import { connect } from 'mqtt';
// The built protocol package by path rather than `@smart-passage/protocol/controller`: the linter
// type-checks this plain JS file without package-exports resolution, and a path resolves either way.
import { connectMqtt, hasNoDelay } from '../protocol/dist/controller/index.js';
import { errorText, machine, machineLine, markdownTable, nowMs, positiveInt as boundedInt, runMain } from './lib.js';

const USAGE = `Usage: node bench/mqtt-roundtrip.js [options]

  --url URL            Mosquitto to measure (default mqtt://127.0.0.1:1883); anonymous access needed
  --n N                timed round trips per case with TCP_NODELAY on (default 1000)
  --nagle-n N          timed round trips per case with TCP_NODELAY off (default 40; ~90 ms each)
  --warmup N           untimed round trips before each case with TCP_NODELAY on (default 500;
                       mqtt.js is still being JIT-compiled for the first few hundred)
  --max-seconds S      cap on each case's timed phase (default 10); the warm-up is capped at 3 s;
                       n in the table is what was measured
  --mosquitto-bin PATH also measure private Mosquittos this script starts on ephemeral ports, with
                       set_tcp_nodelay true and false (default /usr/sbin/mosquitto, left out when
                       missing; --mosquitto-bin '' skips them)
  --no-results         print the table only; do not rewrite bench/RESULTS.md
  --help               this text
`;

const PAYLOAD_BYTES = 64;
const REPLY_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 5_000;
const TCP_SAMPLES = 2_000;
const TCP_WARMUP = 200;
const NAGLE_WARMUP = 5;
const WARMUP_CAP_MS = 3_000;

const here = path.dirname(fileURLToPath(import.meta.url));

/** @param {string} name @param {string} raw */
const positiveInt = (name, raw) => boundedInt(name, raw, 100_000);

function parseOptions() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      n: { type: 'string', default: '1000' },
      'nagle-n': { type: 'string', default: '40' },
      warmup: { type: 'string', default: '500' },
      'max-seconds': { type: 'string', default: '10' },
      'mosquitto-bin': { type: 'string', default: '/usr/sbin/mosquitto' },
      'no-results': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  return {
    url: values.url,
    n: positiveInt('n', values.n),
    nagleN: positiveInt('nagle-n', values['nagle-n']),
    warmup: positiveInt('warmup', values.warmup),
    maxMs: positiveInt('max-seconds', values['max-seconds']) * 1000,
    mosquittoBin: values['mosquitto-bin'],
    writeResults: !values['no-results'],
    help: values.help,
  };
}

/** @param {number[]} samples milliseconds */
function summarise(samples) {
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
function withTimeout(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, timeout])).finally(() => clearTimeout(timer));
}

/** Raw TCP ping-pong over loopback with TCP_NODELAY: the floor no MQTT round trip can beat. */
async function tcpPingPong() {
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
async function openClient(url, noDelay, clientId) {
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
async function subscribe(client, topic) {
  await withTimeout(client.subscribeAsync(topic, { qos: 1 }), REPLY_TIMEOUT_MS, `subscribe ${topic}`);
}

/**
 * The measured exchange: A → broker → B → broker → A, both legs QoS 1. Each phase stops at its
 * count or its time cap, whichever comes first, so a slow broker cannot make the run unbounded.
 * @param {string} url @param {boolean} noDelay
 * @param {{ count: number, warmup: number, maxMs: number }} limits
 */
async function mqttRoundTrips(url, noDelay, limits) {
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
async function startAedes(noDelay) {
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
function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** A free loopback port (there is a small race before Mosquitto binds it; fine for a bench). */
async function freePort() {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {net.AddressInfo} */ (probe.address());
  await new Promise((resolve) => probe.close(() => resolve(undefined)));
  return port;
}

/**
 * A private Mosquitto with the production socket setting, so that "both ends" really means both
 * ends: the machine's broker keeps whatever its own config says.
 * @param {string} bin @param {boolean} noDelay
 */
async function startMosquitto(bin, noDelay) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sp-bench-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', `set_tcp_nodelay ${noDelay}`, 'persistence false', 'log_dest none', ''].join('\n'));
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
  return { url, stop };
}

/** @param {number} v */
const ms = (v) => (Number.isFinite(v) ? v.toFixed(3) : '—');

/**
 * @typedef {{ scenario: string, broker: string, nodelay: string, n: number, p50: number, p99: number, mean: number, note?: string }} Row
 * @param {Row[]} rows
 */
function table(rows) {
  const head = ['scenario', 'broker', 'nodelay', 'n', 'p50 ms', 'p99 ms', 'mean ms'];
  const body = rows.map((r) => [r.scenario, r.broker, r.nodelay, r.note ? '—' : String(r.n), ms(r.p50), ms(r.p99), ms(r.mean)]);
  const notes = rows.filter((r) => r.note).map((r) => `${r.scenario}, ${r.broker}, nodelay ${r.nodelay}: ${r.note ?? ''}`);
  return markdownTable(head, body, (i) => i >= 3, notes);
}

async function main() {
  const opts = parseOptions();
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const fast = { count: opts.n, warmup: opts.warmup, maxMs: opts.maxMs };
  const nagle = { count: opts.nagleN, warmup: Math.min(opts.warmup, NAGLE_WARMUP), maxMs: opts.maxMs };
  /** @type {Row[]} */
  const rows = [];
  let failed = false;

  /**
   * @param {string} broker @param {boolean} noDelay @param {() => Promise<{ url: string, stop: () => Promise<void> }>} open
   */
  const measure = async (broker, noDelay, open) => {
    const scenario = 'qos1 pub→reply';
    const nodelay = noDelay ? 'on' : 'off';
    process.stderr.write(`… ${broker}, TCP_NODELAY ${nodelay}\n`);
    let target;
    try {
      target = await open();
    } catch (err) {
      rows.push({ scenario, broker, nodelay, n: 0, p50: NaN, p99: NaN, mean: NaN, note: `skipped: ${errorText(err)}` });
      return;
    }
    try {
      const r = await mqttRoundTrips(target.url, noDelay, noDelay ? fast : nagle);
      rows.push({ scenario, broker, nodelay, ...r });
    } catch (err) {
      failed = true;
      rows.push({ scenario, broker, nodelay, n: 0, p50: NaN, p99: NaN, mean: NaN, note: `failed: ${errorText(err)}` });
    } finally {
      await target.stop();
    }
  };

  const m = machine();
  process.stderr.write('… raw TCP ping-pong\n');
  const tcp = await tcpPingPong();
  rows.push({ scenario: 'raw tcp ping-pong (floor)', broker: '—', nodelay: 'on', ...tcp });

  const external = () => Promise.resolve({ url: opts.url, stop: () => Promise.resolve() });
  const host = new URL(opts.url).host;
  // The machine's broker: only the client end can be switched; its own config decides the server end.
  await measure(`mosquitto ${host} (its config)`, true, external);
  await measure(`mosquitto ${host} (its config)`, false, external);
  if (opts.mosquittoBin && !existsSync(opts.mosquittoBin)) {
    process.stderr.write(`no ${opts.mosquittoBin}: the private Mosquitto rows are left out\n`);
  } else if (opts.mosquittoBin) {
    const bin = opts.mosquittoBin;
    await measure('mosquitto private, set_tcp_nodelay true', true, () => startMosquitto(bin, true));
    await measure('mosquitto private, set_tcp_nodelay false', false, () => startMosquitto(bin, false));
  }
  await measure('aedes embedded', true, () => startAedes(true));
  await measure('aedes embedded', false, () => startAedes(false));

  const rendered = table(rows);
  process.stdout.write(`\n${rendered}\n\nnodelay = TCP_NODELAY on the clients' sockets and, where this script starts the broker, on the broker's sockets.\n`);
  process.stdout.write(`${machineLine(m)}\n`);

  if (opts.writeResults) {
    const doc = [
      '# Benchmark results',
      '',
      'Written by `npm run bench` (`bench/mqtt-roundtrip.js`); what each row means is in `bench/README.md`.',
      'Numbers from one run on one machine: compare rows of the same run, not runs of different machines.',
      '',
      '## Machine',
      '',
      `- CPU: ${m.cpu}, ${m.cores} logical cores`,
      `- Memory: ${m.memory}`,
      `- OS: ${m.os}`,
      `- Node.js: ${m.node}`,
      `- Date: ${m.date}`,
      `- Load average (1, 5, 15 min) at start: ${m.load}`,
      `- Command: \`node bench/mqtt-roundtrip.js ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
      '',
      '## Round trips',
      '',
      '`qos1 pub→reply`: client A publishes 64 bytes at QoS 1, client B (subscribed at QoS 1) publishes them back at QoS 1, A times until the reply arrives.',
      '',
      rendered,
      '',
      "nodelay = TCP_NODELAY on the clients' sockets and, where the script starts the broker, on the broker's sockets.",
      `The machine's broker (${host}) sets it on its own sockets only if its config says \`set_tcp_nodelay true\`.`,
      '',
    ].join('\n');
    // Other benchmarks' sections (audit append/export) follow ours: keep them.
    const file = path.join(here, 'RESULTS.md');
    const before = await readFile(file, 'utf8').catch(() => '');
    const others = before.search(/^## (?!Machine$|Round trips$)/m);
    await writeFile(file, others === -1 ? doc : `${doc}\n${before.slice(others)}`);
    process.stdout.write('wrote bench/RESULTS.md\n');
  }
  return failed ? 1 : 0;
}

runMain(main);
