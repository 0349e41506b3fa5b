#!/usr/bin/env node
/**
 * `sp-esp-rfid-bridge`: esp-rfid door devices as native controllers (BRIDGES.md). Reads a config
 * file that maps each device (its base topic, IP and door) to its provisioning bundle; runs until
 * SIGINT/SIGTERM, then publishes each device's retained offline state. What each device does is one
 * JSON line on stdout (online, offline, reconciled, reconcile-failed, access events); logs go to
 * stderr. No tag label, PIN, password or key is written to either.
 */
import { streamLogger, type LogLevel } from '../log.js';
import { EspRfidBridge, loadBridgeConfig } from '../bridges/esp-rfid/bridge.js';
import { LOG_LEVELS, parseOptions, stringOption } from './options.js';

const USAGE = `Usage: sp-esp-rfid-bridge --config bridge.json [--log-level info]

Bridges esp-rfid devices (their MQTT JSON API) to the Smart Passage gateway: each device appears
to the gateway as the native controller of its provisioning bundle. A weaker trust tier than a
native controller: read protocol/BRIDGES.md before deploying.

Config file (paths relative to it):
  {
    "deviceBroker": { "url": "mqtt://10.0.0.2:1883", "username": "bridge", "password": "…" },
    "stateDir": "./state",
    "devices": [
      { "bundle": "./bundles/ctl-lobby.json", "topic": "/rfid/lobby", "doorip": "192.168.1.50",
        "door": "street", "heartbeatSeconds": 180, "uidCase": "lower", "keepForeignUsers": false }
    ],
    "timing": { "commandTimeoutMs": 5000, "listSettleMs": 1500, "listFirstMs": 5000 }
  }
`;

function emit(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, problems } = parseOptions(argv, { config: { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const configPath = stringOption(values, 'config');
  const level = stringOption(values, 'log-level') ?? 'info';
  if (configPath === undefined) problems.push('--config is required');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) problems.push(`--log-level must be one of ${LOG_LEVELS.join('|')}, got '${level}'`);
  const loaded = configPath === undefined ? undefined : loadBridgeConfig(configPath);
  if (loaded && !loaded.ok) problems.push(...loaded.problems.map((p) => `--config: ${p}`));
  if (problems.length > 0 || !loaded?.ok) {
    process.stderr.write(`sp-esp-rfid-bridge: ${problems.length === 1 ? 'a problem' : `${problems.length} problems`}:${problems.map((p) => `\n  - ${p}`).join('')}\n\n${USAGE}`);
    return 2;
  }
  const log = streamLogger('sp-esp-rfid-bridge', level as LogLevel);
  const bridge = new EspRfidBridge({ ...loaded.options, logger: log });

  let stopping = false;
  let done: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));
  const shutdown = (signal: string) => {
    if (stopping) return done(130);
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => done(1), 5_000);
    bridge.stop().then(
      () => {
        clearTimeout(force);
        emit({ event: 'stopped' });
        done(0);
      },
      (err: unknown) => {
        log.error('stop failed', { err: err instanceof Error ? err.message : String(err) });
        done(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  try {
    await bridge.start();
  } catch (err) {
    process.stderr.write(`sp-esp-rfid-bridge: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  for (const d of bridge.devices) {
    const ctrl = d.id;
    d.on('online', () => emit({ event: 'online', ctrl }));
    d.on('offline', () => emit({ event: 'offline', ctrl }));
    d.on('reconciled', (version) => emit({ event: 'reconciled', ctrl, version }));
    d.on('reconcile-failed', (detail) => emit({ event: 'reconcile-failed', ctrl, detail }));
    d.on('event', (body) => emit({ event: 'evt', ctrl, body }));
    d.on('rejected', (code, detail) => emit({ event: 'rejected', ctrl, code, detail }));
    emit({ event: 'started', ctrl, topic: d.deviceTopic, appliedVersion: d.appliedVersion });
  }
  return finished;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sp-esp-rfid-bridge: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
