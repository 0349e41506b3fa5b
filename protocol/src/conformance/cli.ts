/**
 * `sp-conformance`: run the conformance suite against one controller from the command line.
 * Kept apart from the bin entry so tests can run it in-process.
 *
 * Key material comes from files and is never printed, not even in error messages: a JSON parse
 * error from V8 quotes the text around the fault, so fleet-file errors are reported without it.
 */
import { readFileSync } from 'node:fs';
import { parseOptions, intOption, stringOption, type OptionSpec } from '../cli/options.js';
import { privateKeyFromSeed, publicKeyFromRaw, rawPublicKey } from '../keys.js';
import { streamLogger } from '../log.js';
import { ControllerId, DoorRef, Kid, TagUid, type ProvisioningBundle } from '../schemas.js';
import { validateBundle } from '../validate.js';
import { DEFAULT_TEST_TAG, formatReport, runConformance, summarize, ConformanceSetupError, type ConformanceOptions, type ConformanceReport } from './index.js';

const SPEC = {
  url: { type: 'string' },
  controller: { type: 'string' },
  'controller-kid': { type: 'string' },
  'controller-key': { type: 'string' },
  'gateway-kid': { type: 'string' },
  'gateway-seed-file': { type: 'string' },
  door: { type: 'string' },
  'other-door': { type: 'string' },
  tag: { type: 'string' },
  username: { type: 'string' },
  'password-file': { type: 'string' },
  fleet: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies OptionSpec;

/** `sp-conformance --help`. */
export const USAGE = `Usage: sp-conformance --url mqtt://host:port --controller ID --controller-kid KID
         --controller-key PUBLIC_KEY --gateway-kid KID --gateway-seed-file FILE --door REF
         [--other-door REF] [--tag UID] [--username U --password-file F] [--timeout MS] [--json] [--verbose]
   or: sp-conformance --fleet FILE [--controller ID] [--url URL] [--door REF] [--json] …

Plays the gateway for one controller and checks it against PROTOCOL.md P-1…P-25.
  --controller-key   the controller's Ed25519 public key, base64url of the raw 32 bytes
  --gateway-seed-file a file holding the 32-byte seed (base64url) of a gateway key the controller trusts
  --fleet            a fleet file {gateway:{kid, privateKey, publicKey}, controllers:[bundle…]}:
                     gateway key, controller kid and key, URL and doors are taken from it;
                     each controller is checked in turn, or only the one --controller names
  --other-door       a second door on the controller (enables the wrong-door check)
  --tag              UID of the test tag the run grants at --door (upper-case hex; default ${DEFAULT_TEST_TAG})
  --timeout          how long to wait for any one reply, ms (default 3000)
  --json             print the report as JSON instead of a table (an array for several controllers)
  --verbose          log each step on stderr
Checks that need a test bench (crash, restart, outage, tag reader) are reported "manual".
The run advances the controller's seq and grant version and ends by syncing an empty grant set.
Exit status: 0 nothing failed, 1 some requirement failed, 2 the run could not start.`;

/** Where the CLI writes: the report to `out`, problems and logs to `err`. */
export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

const matches = (schema: { pattern?: string }, value: string) => new RegExp(schema.pattern ?? '').test(value);

/** Read a one-line secret file; problems never quote its content. */
function readSecret(path: string, what: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    problems.push(`${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
    return undefined;
  }
}

interface Fleet {
  gateway: { kid: string; seed: string };
  controllers: ProvisioningBundle[];
}

/** `{gateway:{kid, privateKey, publicKey}, controllers:[ProvisioningBundle…]}`, checked, every problem listed. */
function readFleet(path: string, problems: string[]): Fleet | undefined {
  const text = readSecret(path, 'fleet file', problems);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    problems.push(`fleet file ${path}: not valid JSON`);
    return undefined;
  }
  const obj = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const gw = (typeof obj.gateway === 'object' && obj.gateway !== null ? obj.gateway : {}) as Record<string, unknown>;
  const before = problems.length;
  if (typeof gw.kid !== 'string' || !matches(Kid, gw.kid)) problems.push(`fleet file ${path}: gateway.kid missing or invalid`);
  let seed: string | undefined;
  try {
    if (typeof gw.privateKey !== 'string') throw new TypeError('missing');
    const derived = rawPublicKey(privateKeyFromSeed(gw.privateKey));
    if (gw.publicKey !== undefined && gw.publicKey !== derived) problems.push(`fleet file ${path}: gateway.publicKey does not belong to gateway.privateKey`);
    seed = gw.privateKey;
  } catch {
    problems.push(`fleet file ${path}: gateway.privateKey must be a 32-byte seed in base64url`);
  }
  const list = Array.isArray(obj.controllers) ? (obj.controllers as unknown[]) : [];
  if (list.length === 0) problems.push(`fleet file ${path}: controllers must be a non-empty array of provisioning bundles`);
  const controllers: ProvisioningBundle[] = [];
  list.forEach((b, i) => {
    const v = validateBundle(b);
    if (v.ok) controllers.push(b as ProvisioningBundle);
    else problems.push(`fleet file ${path}: controllers[${i}] is not a provisioning bundle (${v.detail})`);
  });
  if (problems.length > before || seed === undefined || typeof gw.kid !== 'string') return undefined;
  return { gateway: { kid: gw.kid, seed }, controllers };
}

/** What the command line asks for: one run per controller, or the problems with it. */
export interface ResolvedCli {
  runs: ConformanceOptions[];
  json: boolean;
  verbose: boolean;
  help: boolean;
  problems: string[];
}

type Values = Record<string, string | true>;

/** Derive one controller's suite options from the flags, falling back on its bundle. */
function optionsFor(
  values: Values,
  bundle: ProvisioningBundle | undefined,
  common: { gatewayKey: { kid: string; seed: string } | undefined; timeoutMs: number; password: string | undefined },
  problems: string[],
): ConformanceOptions | undefined {
  const str = (name: string) => stringOption(values, name);
  // With several controllers, say which one a problem is about.
  const at = bundle ? `${bundle.controllerId}: ` : '';
  const before = problems.length;
  const controllerId = str('controller') ?? bundle?.controllerId;
  const url = str('url') ?? bundle?.mqtt.url;
  const controllerKid = str('controller-kid') ?? bundle?.controllerKid;
  let bundleKey: string | undefined;
  if (bundle?.controllerKey) {
    try {
      bundleKey = rawPublicKey(privateKeyFromSeed(bundle.controllerKey.privateKey));
    } catch {
      problems.push(`${at}controllerKey.privateKey is not a valid Ed25519 seed`);
    }
  }
  const controllerPublicKey = str('controller-key') ?? bundleKey;
  const door = str('door') ?? bundle?.doors?.[0]?.ref;
  const otherDoor = str('other-door') ?? bundle?.doors?.find((d) => d.ref !== door)?.ref;
  const tag = str('tag')?.toUpperCase();

  if (url === undefined) problems.push('--url is required');
  else if (!/^mqtts?:\/\/[^/]+/.test(url)) problems.push(`${at}--url must be mqtt://host:port or mqtts://host:port`);
  if (controllerId === undefined) problems.push('--controller is required');
  else if (!matches(ControllerId, controllerId)) problems.push(`--controller '${controllerId}' is not a valid controller id`);
  if (controllerKid === undefined) problems.push('--controller-kid is required');
  else if (!matches(Kid, controllerKid)) problems.push(`${at}--controller-kid is not a valid kid`);
  if (controllerPublicKey === undefined) {
    problems.push(bundle ? `${at}--controller-key is required: the bundle has no controllerKey to derive it from` : '--controller-key is required');
  } else {
    try {
      publicKeyFromRaw(controllerPublicKey);
    } catch {
      problems.push(`${at}--controller-key must be a 32-byte Ed25519 public key in base64url`);
    }
  }
  if (door === undefined) problems.push(bundle ? `${at}--door is required: the bundle lists no doors` : '--door is required');
  else if (!matches(DoorRef, door)) problems.push(`${at}--door '${door}' is not a valid door ref`);
  if (otherDoor !== undefined && !matches(DoorRef, otherDoor)) problems.push(`${at}--other-door '${otherDoor}' is not a valid door ref`);
  if (otherDoor !== undefined && otherDoor === door) problems.push(`${at}--other-door must differ from --door`);
  if (tag !== undefined && !matches(TagUid, tag)) problems.push('--tag must be 2–16 bytes in upper-case hex');
  const username = str('username');
  const { gatewayKey, timeoutMs, password } = common;
  if (problems.length > before || !gatewayKey || !url || !controllerId || !controllerKid || !controllerPublicKey || !door) return undefined;
  return {
    url,
    controllerId,
    controllerKid,
    controllerPublicKey,
    gatewayKey,
    door,
    timeoutMs,
    ...(otherDoor !== undefined ? { otherDoor } : {}),
    ...(tag !== undefined ? { tag } : {}),
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}

/**
 * Turn the command line into one run per controller (PROTOCOL §10.2: `--fleet` checks each of its
 * controllers, or the one `--controller` names), or the list of everything wrong with it.
 */
export function resolveOptions(argv: readonly string[]): ResolvedCli {
  const { values, problems } = parseOptions(argv, SPEC);
  const json = values.json === true;
  const verbose = values.verbose === true;
  if (values.help === true) return { runs: [], json, verbose, help: true, problems: [] };
  const str = (name: string) => stringOption(values, name);
  const timeoutMs = intOption(values, 'timeout', { min: 200, max: 120_000, fallback: 3_000 }, problems);

  let targets: (ProvisioningBundle | undefined)[] = [undefined];
  let gatewayKey: { kid: string; seed: string } | undefined;
  const fleetPath = str('fleet');
  if (fleetPath !== undefined) {
    if (str('gateway-kid') !== undefined || str('gateway-seed-file') !== undefined) {
      problems.push('give the gateway key either with --fleet or with --gateway-kid/--gateway-seed-file, not both');
    }
    const fleet = readFleet(fleetPath, problems);
    targets = [];
    if (fleet) {
      gatewayKey = fleet.gateway;
      const wanted = str('controller');
      if (wanted === undefined) targets = fleet.controllers;
      else {
        const bundle = fleet.controllers.find((c) => c.controllerId === wanted);
        if (bundle) targets = [bundle];
        else problems.push(`controller ${wanted} is not in ${fleetPath} (it has ${fleet.controllers.map((c) => c.controllerId).join(', ')})`);
      }
      if (targets.length > 1 && (str('controller-kid') !== undefined || str('controller-key') !== undefined)) {
        problems.push('--controller-kid and --controller-key describe one controller: name it with --controller');
      }
    }
  } else {
    const kid = str('gateway-kid');
    const seedFile = str('gateway-seed-file');
    if (kid === undefined) problems.push('--gateway-kid is required (or --fleet)');
    else if (!matches(Kid, kid)) problems.push('--gateway-kid is not a valid kid');
    if (seedFile === undefined) problems.push('--gateway-seed-file is required (or --fleet)');
    const seed = seedFile === undefined ? undefined : readSecret(seedFile, '--gateway-seed-file', problems);
    if (seed !== undefined) {
      try {
        privateKeyFromSeed(seed);
      } catch {
        problems.push(`--gateway-seed-file ${seedFile ?? ''}: must hold a 32-byte Ed25519 seed in base64url`);
      }
    }
    if (kid !== undefined && seed !== undefined) gatewayKey = { kid, seed };
  }
  const passwordFile = str('password-file');
  const password = passwordFile === undefined ? undefined : readSecret(passwordFile, '--password-file', problems);
  const runs = targets.flatMap((bundle) => optionsFor(values, bundle, { gatewayKey, timeoutMs, password }, problems) ?? []);
  // A flag problem common to every controller is worth saying once.
  const unique = [...new Set(problems)];
  return { runs: unique.length > 0 ? [] : runs, json, verbose, help: false, problems: unique };
}

/**
 * Run the CLI; resolves with the exit status: 0 nothing failed, 1 a requirement failed, 2 a run
 * could not start (the other controllers of a fleet are still checked).
 * @example process.exitCode = await runCli(process.argv.slice(2), { out: process.stdout, err: process.stderr });
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const r = resolveOptions(argv);
  if (r.help) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  if (r.problems.length > 0 || r.runs.length === 0) {
    io.err.write(`sp-conformance: ${r.problems.length} problem(s) with the command line:\n${r.problems.map((p) => `  - ${p}`).join('\n')}\n\n${USAGE}\n`);
    return 2;
  }
  const log = streamLogger('sp-conformance', r.verbose ? 'debug' : 'warn', io.err);
  const reports: ConformanceReport[] = [];
  let status = 0;
  // One controller at a time: the runs time doors and grant expiry, and must not compete for the CPU.
  for (const options of r.runs) {
    try {
      const report = await runConformance({ ...options, log });
      reports.push(report);
      if (!r.json) io.out.write(`${reports.length > 1 ? '\n' : ''}${formatReport(report)}`);
      if (summarize(report).fail > 0) status = Math.max(status, 1);
    } catch (err) {
      const message = err instanceof ConformanceSetupError ? err.message : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
      io.err.write(`sp-conformance: ${options.controllerId}: ${message}\n`);
      status = 2;
    }
  }
  if (r.json) io.out.write(`${JSON.stringify(r.runs.length === 1 ? reports[0] ?? null : reports, null, 2)}\n`);
  return status;
}
