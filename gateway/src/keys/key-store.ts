/**
 * The gateway's own keys (DESIGN §5.2, §7, §8), from env, from files named in env, or from the
 * data directory, in that order:
 *
 * | key     | what for                              | env (value)                        | env (file)           | data dir            |
 * |---------|---------------------------------------|------------------------------------|----------------------|---------------------|
 * | gateway | Ed25519, signs MQTT envelopes         | SP_GATEWAY_KEY + SP_GATEWAY_KID     | SP_GATEWAY_KEY_FILE  | keys/gateway.json   |
 * |         | (optional next key, for rotation)     | SP_GATEWAY_NEXT_KEY + _NEXT_KID    |                      |                     |
 * | audit   | Ed25519, signs audit checkpoints      | SP_AUDIT_KEY (+ SP_AUDIT_KID)      | SP_AUDIT_KEY_FILE    | keys/audit.json     |
 * | jwt     | ECDSA P-256, signs access tokens      | SP_JWT_KEY (PEM)                   | SP_JWT_KEY_FILE      | keys/jwt.pem        |
 *
 * Ed25519 keys are base64url 32-byte seeds (as in PROTOCOL §4.3). A JSON key file holds
 * `{kid, privateKey, publicKey?, next?: {kid, privateKey}}`; a `_FILE` may instead hold just the
 * seed, with the kid from env. Only the embedded setup may generate missing keys (`generate`),
 * written 0600 in a 0700 directory; otherwise a missing key is an error that names every missing
 * key and where it may come from. Key material is never logged, nor put in an error message:
 * only kids and paths.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateRawKeyPair, privateKeyFromSeed, rawPublicKey, type Logger, type SigningKey } from '@smart-passage/protocol';

/** An Ed25519 key the gateway signs with. Usable wherever protocol wants a SigningKey. */
export interface Ed25519Key extends SigningKey {
  /** base64url raw 32-byte public key, as handed to controllers and auditors. */
  publicKey: string;
}

export interface GatewayKeys {
  /** Signs gateway→controller envelopes; controllers trust `current` and `next` (DESIGN §5.2). */
  gateway: { current: Ed25519Key; next?: Ed25519Key };
  /** Signs audit checkpoints (DESIGN §8); never used for anything else. */
  audit: Ed25519Key;
  /** ES256 access tokens: PKCS#8 private and SPKI public PEM. */
  jwt: { privateKeyPem: string; publicKeyPem: string };
}

export interface LoadKeysOptions {
  dataDir: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Generate and write keys that are missing (the embedded, single-machine setup only). */
  generate: boolean;
  logger: Logger;
  /** Clock for generated kids (`gw-YYYY-MM-…`). */
  now?: () => Date;
}

/** Every key problem found, at once (STYLE: config errors are reported together). */
export class KeyStoreError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`gateway keys:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'KeyStoreError';
  }
}

/** Every environment variable the key store reads (the table above), for checks of deployment files. */
export const KEY_ENV = [
  'SP_GATEWAY_KEY',
  'SP_GATEWAY_KEY_FILE',
  'SP_GATEWAY_KID',
  'SP_GATEWAY_NEXT_KEY',
  'SP_GATEWAY_NEXT_KID',
  'SP_AUDIT_KEY',
  'SP_AUDIT_KEY_FILE',
  'SP_AUDIT_KID',
  'SP_JWT_KEY',
  'SP_JWT_KEY_FILE',
] as const;

const KID = /^[A-Za-z0-9._-]{1,64}$/;
const FILES = { gateway: 'gateway.json', audit: 'audit.json', jwt: 'jwt.pem' } as const;

type Loaded<T> = { value: T; source: string } | undefined;

/** A problem with one key; the message must not contain key material. */
class KeyProblem extends Error {}

function envValue(env: LoadKeysOptions['env'], name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function checkKid(kid: unknown, where: string): string {
  if (typeof kid !== 'string' || !KID.test(kid)) throw new KeyProblem(`${where}: kid must be 1–64 characters of A–Z a–z 0–9 . _ -`);
  return kid;
}

function ed25519(seed: unknown, kid: string, where: string): Ed25519Key {
  if (typeof seed !== 'string') throw new KeyProblem(`${where}: privateKey must be a base64url Ed25519 seed`);
  let key: KeyObject;
  try {
    key = privateKeyFromSeed(seed);
  } catch {
    throw new KeyProblem(`${where}: not a base64url 32-byte Ed25519 seed`);
  }
  return { kid, key, publicKey: rawPublicKey(key) };
}

/** `audit-` and the start of the public key's SHA-256, when no kid was given with an env key. */
function fingerprintKid(prefix: string, publicKey: string): string {
  return `${prefix}-${createHash('sha256').update(publicKey).digest('base64url').slice(0, 12)}`;
}

function jwtKey(pem: string, where: string): GatewayKeys['jwt'] {
  let key: KeyObject;
  try {
    // Env values often carry PEM newlines as the two characters `\n`.
    key = createPrivateKey(pem.includes('-----BEGIN') ? pem.replace(/\\n/g, '\n') : pem);
  } catch {
    throw new KeyProblem(`${where}: not a readable PEM private key`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new KeyProblem(`${where}: must be an EC P-256 (prime256v1) private key for ES256`);
  }
  return {
    privateKeyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: createPublicKey(key).export({ format: 'pem', type: 'spki' }).toString(),
  };
}

interface KeyFile {
  kid?: unknown;
  privateKey?: unknown;
  publicKey?: unknown;
  next?: { kid?: unknown; privateKey?: unknown };
}

/** A JSON key file, or (for `_FILE` env) a bare seed. */
function parseEd25519File(text: string, where: string, fallbackKid: (pub: string) => string | undefined): { current: Ed25519Key; next?: Ed25519Key } {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) {
    const probe = ed25519(trimmed, 'probe', where);
    const kid = fallbackKid(probe.publicKey);
    if (kid === undefined) throw new KeyProblem(`${where}: holds a bare seed, so its kid must come from env`);
    return { current: { ...probe, kid: checkKid(kid, where) } };
  }
  let doc: KeyFile;
  try {
    doc = JSON.parse(trimmed) as KeyFile;
  } catch {
    throw new KeyProblem(`${where}: not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null) throw new KeyProblem(`${where}: not a JSON object`);
  const current = ed25519(doc.privateKey, checkKid(doc.kid, where), where);
  if (doc.publicKey !== undefined && doc.publicKey !== current.publicKey) throw new KeyProblem(`${where}: publicKey does not match privateKey`);
  if (doc.next === undefined) return { current };
  const next = ed25519(doc.next.privateKey, checkKid(doc.next.kid, `${where} (next)`), `${where} (next)`);
  if (next.kid === current.kid) throw new KeyProblem(`${where}: next kid equals current kid`);
  return { current, next };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KeyProblem(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

async function warnIfLoose(path: string, logger: Logger): Promise<void> {
  if (process.platform === 'win32') return;
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) logger.warn('key file is readable by other users; chmod 600 it', { file: path, mode: mode.toString(8) });
}

/**
 * Write `contents` to `path` (0600) unless it exists: the data goes to a temporary file first and
 * is then hard-linked into place, which fails if another process got there first, so a reader
 * never sees half a key and two gateways starting at once agree on one key.
 * Returns false when the file already existed.
 */
async function createExclusive(path: string, contents: string): Promise<boolean> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, contents, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp);
  }
}

function generatedKid(prefix: string, now: Date): string {
  return `${prefix}-${now.toISOString().slice(0, 7)}-${randomBytes(4).toString('hex')}`;
}

/** Load the gateway's keys, generating missing ones if allowed. Throws KeyStoreError. */
export async function loadOrCreateKeys(o: LoadKeysOptions): Promise<GatewayKeys> {
  const keysDir = join(resolve(o.dataDir), 'keys');
  const env = (name: string): string | undefined => envValue(o.env, name);
  const problems: string[] = [];
  const now = o.now ?? (() => new Date());

  /** Env value, else env file, else data-dir file; undefined when none is there. */
  async function find<T>(
    key: keyof typeof FILES,
    envName: string,
    fromEnv: (v: string) => T,
    fromFile: (text: string, where: string) => T,
  ): Promise<Loaded<T>> {
    const value = env(envName);
    const file = env(`${envName}_FILE`);
    if (value !== undefined && file !== undefined) throw new KeyProblem(`set ${envName} or ${envName}_FILE, not both`);
    if (value !== undefined) return { value: fromEnv(value), source: `env ${envName}` };
    if (file !== undefined) {
      const path = resolve(file);
      const text = await readOptional(path);
      if (text === undefined) throw new KeyProblem(`${envName}_FILE: ${path} does not exist`);
      await warnIfLoose(path, o.logger);
      return { value: fromFile(text, `${envName}_FILE ${path}`), source: path };
    }
    const path = join(keysDir, FILES[key]);
    const text = await readOptional(path);
    if (text === undefined) return undefined;
    await warnIfLoose(path, o.logger);
    return { value: fromFile(text, path), source: path };
  }

  async function ensureDir(): Promise<void> {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    await chmod(keysDir, 0o700);
  }

  /** Find a key; if missing, generate it (when allowed) or record what is missing. */
  async function obtain<T>(
    key: keyof typeof FILES,
    what: string,
    how: string,
    load: () => Promise<Loaded<T>>,
    create: () => { contents: string },
  ): Promise<Loaded<T>> {
    try {
      const found = await load();
      if (found !== undefined) return found;
      const path = join(keysDir, FILES[key]);
      if (!o.generate) {
        problems.push(`${what}: not found. Set ${how}, or put it in ${path}`);
        return undefined;
      }
      await ensureDir();
      const created = await createExclusive(path, create().contents);
      const loaded = await load();
      if (loaded !== undefined && created) loaded.source = `generated ${path}`;
      return loaded;
    } catch (err) {
      if (err instanceof KeyProblem) {
        problems.push(`${what}: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  }

  const gateway = await obtain(
    'gateway',
    'gateway signing key',
    'SP_GATEWAY_KEY (base64url Ed25519 seed) with SP_GATEWAY_KID, or SP_GATEWAY_KEY_FILE',
    () =>
      find(
        'gateway',
        'SP_GATEWAY_KEY',
        (seed) => {
          const kid = env('SP_GATEWAY_KID');
          if (kid === undefined) throw new KeyProblem('SP_GATEWAY_KEY is set, so SP_GATEWAY_KID must be too');
          const current = ed25519(seed, checkKid(kid, 'SP_GATEWAY_KID'), 'SP_GATEWAY_KEY');
          const nextSeed = env('SP_GATEWAY_NEXT_KEY');
          const nextKid = env('SP_GATEWAY_NEXT_KID');
          if ((nextSeed === undefined) !== (nextKid === undefined)) throw new KeyProblem('set SP_GATEWAY_NEXT_KEY and SP_GATEWAY_NEXT_KID together');
          if (nextSeed === undefined || nextKid === undefined) return { current };
          const next = ed25519(nextSeed, checkKid(nextKid, 'SP_GATEWAY_NEXT_KID'), 'SP_GATEWAY_NEXT_KEY');
          if (next.kid === current.kid) throw new KeyProblem('SP_GATEWAY_NEXT_KID equals SP_GATEWAY_KID');
          return { current, next };
        },
        (text, where) => parseEd25519File(text, where, () => env('SP_GATEWAY_KID')),
      ),
    () => {
      const pair = generateRawKeyPair();
      return { contents: `${JSON.stringify({ kid: generatedKid('gw', now()), privateKey: pair.privateKey, publicKey: pair.publicKey }, null, 2)}\n` };
    },
  );

  const audit = await obtain(
    'audit',
    'audit key',
    'SP_AUDIT_KEY (base64url Ed25519 seed, optional SP_AUDIT_KID), or SP_AUDIT_KEY_FILE',
    () =>
      find(
        'audit',
        'SP_AUDIT_KEY',
        (seed) => {
          const kid = env('SP_AUDIT_KID');
          const key = ed25519(seed, 'probe', 'SP_AUDIT_KEY');
          return { ...key, kid: kid === undefined ? fingerprintKid('audit', key.publicKey) : checkKid(kid, 'SP_AUDIT_KID') };
        },
        (text, where) => {
          const parsed = parseEd25519File(text, where, (pub) => env('SP_AUDIT_KID') ?? fingerprintKid('audit', pub));
          if (parsed.next !== undefined) throw new KeyProblem(`${where}: the audit key has no next key`);
          return parsed.current;
        },
      ),
    () => {
      const pair = generateRawKeyPair();
      return { contents: `${JSON.stringify({ kid: generatedKid('audit', now()), privateKey: pair.privateKey, publicKey: pair.publicKey }, null, 2)}\n` };
    },
  );

  const jwt = await obtain(
    'jwt',
    'JWT signing key',
    'SP_JWT_KEY (EC P-256 private key, PEM) or SP_JWT_KEY_FILE',
    () =>
      find(
        'jwt',
        'SP_JWT_KEY',
        (pem) => jwtKey(pem, 'SP_JWT_KEY'),
        (text, where) => jwtKey(text, where),
      ),
    () => ({ contents: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() }),
  );

  if (gateway !== undefined && audit !== undefined && gateway.value.current.publicKey === audit.value.publicKey) {
    problems.push('audit key: must differ from the gateway signing key');
  }
  if (problems.length > 0 || gateway === undefined || audit === undefined || jwt === undefined) throw new KeyStoreError(problems);

  const verb = (source: string): string => (source.startsWith('generated ') ? 'generated' : 'loaded');
  const from = (source: string): string => source.replace(/^generated /, '');
  o.logger.info(`gateway signing key ${verb(gateway.source)}`, { kid: gateway.value.current.kid, nextKid: gateway.value.next?.kid, source: from(gateway.source) });
  o.logger.info(`audit key ${verb(audit.source)}`, { kid: audit.value.kid, source: from(audit.source) });
  o.logger.info(`JWT signing key ${verb(jwt.source)}`, { source: from(jwt.source) });
  return { gateway: gateway.value, audit: audit.value, jwt: jwt.value };
}
