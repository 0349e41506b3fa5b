#!/usr/bin/env node
/**
 * `sp-controller`: one reference controller (DESIGN §5.8) as a process, its state in a file, its
 * simulated hardware driven by commands on stdin, one a line:
 *
 *   tag <door> <uid>    a tag at a door's reader        pin <door> <pin>   a PIN on its keypad
 *   open <door>         someone opens the door          close <door>       …and closes it
 *   tamper              the enclosure switch            status             what it holds now
 *   code <door> <8 digits>  an offline emergency code on the keypad (PROTOCOL §2.6)
 *
 * Each command's result, and each thing the controller does on its own (connected, applied,
 * expired, an event made or acknowledged, a message rejected), is one JSON line on stdout. A PIN
 * is never written anywhere (DESIGN §7). Logs go to stderr. SIGINT/SIGTERM stop it gracefully
 * (retained offline state, §5.3); its persisted state (seq, grants, backlog) survives anything.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { FileStateStore } from '../controller/state-store.js';
import { ReferenceController } from '../controller/reference-controller.js';
import { streamLogger, type LogLevel } from '../log.js';
import type { ProvisioningBundle } from '../schemas.js';
import { validateBundle } from '../validate.js';
import { LOG_LEVELS, parseOptions, stringOption } from './options.js';

const USAGE = `Usage: sp-controller --bundle bundle.json --state ./data/ctl-1.state.json [--log-level info]

Runs one reference controller from its provisioning bundle (§5.9), keeping its state in the state
file. Commands on stdin, one a line; results as JSON lines on stdout:
  tag <door> <uid>   pin <door> <pin>   code <door> <8 digits>   open <door>   close <door>   tamper   status
`;

const COMMANDS = ['tag', 'pin', 'code', 'open', 'close', 'tamper', 'status'] as const;

type Out = Record<string, unknown>;

function emit(line: Out): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function loadBundle(path: string, problems: string[]): ProvisioningBundle | undefined {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    problems.push(`--bundle ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    return undefined;
  }
  const v = validateBundle(value);
  if (!v.ok) {
    problems.push(`--bundle ${path}: not a provisioning bundle (${v.detail})`);
    return undefined;
  }
  const bundle = value as ProvisioningBundle;
  if (!bundle.controllerKey) problems.push(`--bundle ${path}: no controllerKey; the reference controller signs with it`);
  return bundle;
}

/** Run one stdin line against the controller; the result as one JSON object. */
function runCommand(c: ReferenceController, line: string): Out | undefined {
  const words = line.trim().split(/\s+/).filter((w) => w !== '');
  const [cmd, ...rest] = words;
  if (cmd === undefined) return undefined;
  const doors = c.doorStates().map((d) => d.ref);
  const needDoor = (door: string | undefined): string | undefined =>
    door === undefined ? 'a door is required' : doors.includes(door) ? undefined : `unknown door; doors: ${doors.join(', ')}`;
  switch (cmd) {
    case 'tag': {
      const [door, uid] = rest;
      const problem = needDoor(door) ?? (uid === undefined || !/^[0-9A-Fa-f]{4,32}$/.test(uid) ? 'uid must be 4–32 hex digits' : undefined);
      if (problem || rest.length !== 2 || door === undefined || uid === undefined) return { cmd, error: problem ?? 'usage: tag <door> <uid>' };
      return { cmd, door, uid: uid.toUpperCase(), ...c.presentTag(door, uid) };
    }
    case 'pin': {
      // Never echo the PIN, not even in an error (DESIGN §7).
      const [door, pin] = rest;
      const problem = needDoor(door) ?? (pin === undefined || !/^[0-9]{4,8}$/.test(pin) ? 'PIN must be 4–8 digits' : undefined);
      if (problem || rest.length !== 2 || door === undefined || pin === undefined) return { cmd, error: problem ?? 'usage: pin <door> <pin>' };
      return { cmd, door, ...c.enterPin(door, pin) };
    }
    case 'code': {
      // An offline code (PROTOCOL §2.6), as typed after `*`; like a PIN, never echoed.
      const [door, digits] = rest;
      const problem = needDoor(door) ?? (digits === undefined || !/^[0-9]{8}$/.test(digits) ? 'a code is 8 digits' : undefined);
      if (problem || rest.length !== 2 || door === undefined || digits === undefined) return { cmd, error: problem ?? 'usage: code <door> <8 digits>' };
      return { cmd, door, ...c.presentCode(door, digits) };
    }
    case 'open':
    case 'close': {
      const [door] = rest;
      const problem = needDoor(door);
      if (problem || rest.length !== 1 || door === undefined) return { cmd, error: problem ?? `usage: ${cmd} <door>` };
      if (cmd === 'open') c.openDoor(door);
      else c.closeDoor(door);
      const state = c.doorStates().find((d) => d.ref === door);
      return { cmd, door, locked: state?.locked, open: state?.open };
    }
    case 'tamper':
      c.tamper();
      return { cmd, ok: true };
    case 'status':
      return {
        cmd,
        ctrl: c.id,
        boot: c.boot,
        connected: c.connected,
        online: c.online,
        appliedVersion: c.appliedVersion,
        lastSeq: c.lastSeq,
        grants: c.grants.map((g) => ({ grantId: g.grantId, incident: g.incident, doors: g.doors, notBefore: g.notBefore, notAfter: g.notAfter })),
        backlog: c.backlogSize,
        doors: c.doorStates(),
      };
    default:
      // The unknown word is not echoed: it may be a PIN typed on the wrong line.
      return { error: 'unknown command', commands: COMMANDS };
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const { values, problems } = parseOptions(argv, {
    bundle: { type: 'string' },
    state: { type: 'string' },
    'log-level': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  const bundlePath = stringOption(values, 'bundle');
  const statePath = stringOption(values, 'state');
  const level = stringOption(values, 'log-level') ?? 'info';
  if (bundlePath === undefined) problems.push('--bundle is required');
  if (statePath === undefined) problems.push('--state is required');
  if (!(LOG_LEVELS as readonly string[]).includes(level)) problems.push(`--log-level must be one of ${LOG_LEVELS.join('|')}, got '${level}'`);
  const bundle = bundlePath === undefined ? undefined : loadBundle(bundlePath, problems);
  if (problems.length > 0 || !bundle || statePath === undefined) {
    process.stderr.write(`sp-controller: ${problems.length === 1 ? 'a problem' : `${problems.length} problems`} with the arguments:${problems.map((p) => `\n  - ${p}`).join('')}\n\n${USAGE}`);
    return 2;
  }

  const log = streamLogger(`sp-controller ${bundle.controllerId}`, level as LogLevel);
  const controller = new ReferenceController({ bundle, store: new FileStateStore(statePath), logger: log });
  controller.on('connected', () => emit({ event: 'connected', ctrl: controller.id, boot: controller.boot }));
  controller.on('applied', (version) => emit({ event: 'applied', version }));
  controller.on('expired', (grantIds) => emit({ event: 'expired', grantIds }));
  // Event bodies carry a PIN credential as {kind:'pin'} only (schemas.SeenCredential).
  controller.on('event', (body) => emit({ event: 'evt', body }));
  controller.on('acked', (boot, seq) => emit({ event: 'acked', boot, seq }));
  controller.on('rejected', (code, detail) => emit({ event: 'rejected', code, detail }));

  let stopping = false;
  let done: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (done = resolve));
  const shutdown = (signal: string) => {
    if (stopping) {
      // A second signal: the user wants out now. State on disk is consistent at every step.
      done(130);
      return;
    }
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => done(1), 5_000);
    controller.stop().then(
      () => {
        clearTimeout(force);
        emit({ event: 'stopped', ctrl: controller.id });
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
    // Not waiting for the broker: a controller decides locally with no network (§4 flow 2).
    await controller.start({ waitForConnection: false });
  } catch (err) {
    process.stderr.write(`sp-controller: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  emit({ event: 'started', ctrl: controller.id, boot: controller.boot, appliedVersion: controller.appliedVersion, backlog: controller.backlogSize });

  const rl = createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    if (stopping) return;
    try {
      const out = runCommand(controller, line);
      if (out) emit(out);
    } catch (err) {
      emit({ error: err instanceof Error ? err.message : String(err) });
    }
  });
  // A controller is a daemon: stdin closing (e.g. `< /dev/null`) does not stop it; signals do.
  rl.on('close', () => log.debug('stdin closed; running until SIGINT/SIGTERM'));
  return finished;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sp-controller: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
