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
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { errorText, machine, machineLine, markdownTable, positiveInt as boundedInt, runMain } from './lib.js';
// Built packages are imported by path rather than `@smart-passage/protocol/controller` (in
// mqtt-lib.js): the linter type-checks these plain JS files without package-exports resolution.
import { mqttRoundTrips, startAedes, startMosquitto, tcpPingPong } from './mqtt-lib.js';

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

const NAGLE_WARMUP = 5;

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
