/**
 * Fleet files: a gateway key pair plus one §5.9 provisioning bundle per controller, in one JSON
 * file a gateway, the simulator or `sp-conformance --fleet` can start from.
 *
 * `{gateway:{kid, privateKey, publicKey}, controllers:[ProvisioningBundle…]}`. It holds private
 * keys, so it is written with mode 0600 and never logged (DESIGN §7).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { generateRawKeyPair, privateKeyFromSeed, rawPublicKey } from '../keys.js';
import { Kid, RawKey, type ProvisioningBundle } from '../schemas.js';
import { describeErrors, validateBundle } from '../validate.js';

/** The gateway half of a fleet file: who signs the syncs these controllers trust. */
export const FleetGatewayKey = Type.Object({ kid: Kid, privateKey: RawKey, publicKey: RawKey }, { additionalProperties: false });
export type FleetGatewayKey = Static<typeof FleetGatewayKey>;

export interface FleetFile {
  gateway: FleetGatewayKey;
  controllers: ProvisioningBundle[];
}

/** The simulator's fleet: bundles, plus the gateway key when we hold it (not from `--bundles`). */
export interface FleetSpec {
  gateway?: FleetGatewayKey;
  controllers: ProvisioningBundle[];
}

/** Reading fleet input failed; `problems` lists everything wrong, not just the first. */
export class FleetFileError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('; '));
    this.name = 'FleetFileError';
    this.problems = problems;
  }
}

export interface GenerateFleetOptions {
  controllers: number;
  doors: number;
  url: string;
  /** Controller ids are `<prefix>-0001` …; default `sim`. */
  prefix?: string;
  gatewayKid?: string;
}

/** Controller id number `i` (1-based), zero-padded so ids sort in order. */
export function simControllerId(prefix: string, i: number, total: number): string {
  return `${prefix}-${String(i).padStart(Math.max(4, String(total).length), '0')}`;
}

/**
 * A new fleet with fresh random keys: one gateway key pair and `controllers` bundles with doors
 * `d1`…`dM`. CPU only, no I/O; write it with `writeFleetFile`.
 * @example const fleet = generateFleet({ controllers: 20, doors: 3, url: 'mqtt://127.0.0.1:1883' });
 */
export function generateFleet(o: GenerateFleetOptions): FleetFile {
  const gw = generateRawKeyPair();
  const gateway: FleetGatewayKey = { kid: o.gatewayKid ?? 'gw-sim-1', privateKey: gw.privateKey, publicKey: gw.publicKey };
  const prefix = o.prefix ?? 'sim';
  const doors = Array.from({ length: o.doors }, (_, i) => ({ ref: `d${i + 1}` }));
  const controllers = Array.from({ length: o.controllers }, (_, i): ProvisioningBundle => {
    const id = simControllerId(prefix, i + 1, o.controllers);
    const key = generateRawKeyPair();
    return {
      controllerId: id,
      mqtt: { url: o.url, username: id, password: randomBytes(18).toString('base64url') },
      gatewayKeys: [{ kid: gateway.kid, publicKey: gateway.publicKey }],
      controllerKid: `${id}-k1`,
      controllerKey: { kid: `${id}-k1`, privateKey: key.privateKey },
      offlineSecret: randomBytes(32).toString('base64url'),
      doors: doors.map((d) => ({ ...d })),
    };
  });
  return { gateway, controllers };
}

/** Write a fleet (or any secret JSON) atomically with mode 0600: temp file, fsync, chmod, rename. */
export function writeSecretJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(value, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The mode given to open() is masked by the umask; the file holds private keys, so force it.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function writeFleetFile(path: string, fleet: FleetFile): void {
  writeSecretJson(path, fleet);
}

const ajv = new Ajv({ allErrors: true, strict: true });
const gatewayKeyValidator = ajv.compile(FleetGatewayKey);

function readJson(path: string, problems: string[]): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Never e.message for a parse error: Node quotes the text around the fault, which here is key material.
    const why = e.code === 'ENOENT' ? 'no such file' : err instanceof SyntaxError ? 'not valid JSON' : (e.code ?? 'unreadable');
    problems.push(`${path}: ${why}`);
    return undefined;
  }
}

/** Check bundles for what the simulator needs: schema-valid, a controller key, unique ids. */
function checkBundles(entries: { where: string; value: unknown }[], problems: string[]): ProvisioningBundle[] {
  const bundles: ProvisioningBundle[] = [];
  const ids = new Map<string, string>();
  for (const { where, value } of entries) {
    const v = validateBundle(value);
    if (!v.ok) {
      problems.push(`${where}: not a provisioning bundle (${v.detail})`);
      continue;
    }
    const b = value as ProvisioningBundle;
    // A bundle whose controller brought its own key pair has no private half (§5.9): we cannot sign as it.
    if (!b.controllerKey) problems.push(`${where}: ${b.controllerId} has no controllerKey, so it cannot be simulated`);
    if ((b.doors ?? []).length === 0) problems.push(`${where}: ${b.controllerId} has no doors`);
    const dup = ids.get(b.controllerId);
    if (dup !== undefined) problems.push(`${where}: controller ${b.controllerId} already defined in ${dup}`);
    ids.set(b.controllerId, where);
    bundles.push(b);
  }
  return bundles;
}

/** Read and check a fleet file; throws FleetFileError listing every problem. */
export function readFleetFile(path: string): FleetFile {
  const problems: string[] = [];
  const value = readJson(path, problems);
  if (value === undefined) throw new FleetFileError(problems);
  const obj = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  let gateway: FleetGatewayKey | undefined;
  if (!gatewayKeyValidator(obj.gateway)) {
    problems.push(`${path}: gateway must be {kid, privateKey, publicKey} (${describeErrors(gatewayKeyValidator.errors)})`);
  } else {
    gateway = obj.gateway;
    let derived: string | undefined;
    try {
      derived = rawPublicKey(privateKeyFromSeed(gateway.privateKey));
    } catch {
      derived = undefined;
    }
    if (derived !== gateway.publicKey) problems.push(`${path}: gateway publicKey does not belong to its privateKey`);
  }
  const list = Array.isArray(obj.controllers) ? (obj.controllers as unknown[]) : undefined;
  if (!list || list.length === 0) problems.push(`${path}: controllers must be a non-empty array of provisioning bundles`);
  const controllers = checkBundles((list ?? []).map((value, i) => ({ where: `${path}: controllers[${i}]`, value })), problems);
  if (gateway) {
    const { kid, publicKey } = gateway;
    for (const b of controllers) {
      if (!b.gatewayKeys.some((k) => k.kid === kid && k.publicKey === publicKey)) {
        problems.push(`${path}: ${b.controllerId} does not trust the fleet's gateway key ${kid}`);
      }
    }
  }
  if (problems.length > 0 || !gateway) throw new FleetFileError(problems);
  return { gateway, controllers };
}

/** Read every `*.json` in `dir` as one provisioning bundle; throws FleetFileError listing every problem. */
export function readBundlesDir(dir: string): ProvisioningBundle[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new FleetFileError([`${dir}: ${e.code === 'ENOENT' ? 'no such directory' : e.message}`]);
  }
  if (names.length === 0) throw new FleetFileError([`${dir}: no *.json provisioning bundles`]);
  const problems: string[] = [];
  const entries = names.flatMap((n) => {
    const where = join(dir, n);
    const value = readJson(where, problems);
    return value === undefined ? [] : [{ where, value }];
  });
  const bundles = checkBundles(entries, problems);
  if (problems.length > 0) throw new FleetFileError(problems);
  return bundles;
}

/** `count` distinct random tag uids, 4 bytes of upper-case hex each (schemas.TagUid). */
export function generateTagUids(count: number): string[] {
  const uids = new Set<string>();
  while (uids.size < count) uids.add(randomBytes(4).toString('hex').toUpperCase());
  return [...uids];
}
