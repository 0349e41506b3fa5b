// The gateway's keys: generated once (0600 in a 0700 dir), reloaded identically, overridden from
// env or env-named files, every missing key reported at once, and no key material in the logs.
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateRawKeyPair, rawPublicKey, type LogFields, type Logger } from '@smart-passage/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyStoreError, loadOrCreateKeys, type GatewayKeys } from '../../../src/keys/key-store.js';
import { TokenService, type SessionStore } from '../../../src/features/auth/tokens.js';

class CapturingLogger implements Logger {
  readonly lines: { level: string; msg: string; fields?: LogFields }[] = [];
  debug(msg: string, fields?: LogFields) { this.lines.push({ level: 'debug', msg, fields }); }
  info(msg: string, fields?: LogFields) { this.lines.push({ level: 'info', msg, fields }); }
  warn(msg: string, fields?: LogFields) { this.lines.push({ level: 'warn', msg, fields }); }
  error(msg: string, fields?: LogFields) { this.lines.push({ level: 'error', msg, fields }); }
  get text(): string { return JSON.stringify(this.lines); }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sp-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (p: string) => (await stat(p)).mode & 0o777;
const p256Pem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

/** Every secret a GatewayKeys holds, in the forms it could leak in. */
function secretsOf(keys: GatewayKeys): string[] {
  const seed = (k: GatewayKeys['audit']) => k.key.export({ format: 'der', type: 'pkcs8' }).subarray(16).toString('base64url');
  const pemBody = keys.jwt.privateKeyPem.split('\n').filter((l) => l !== '' && !l.startsWith('-----'));
  return [seed(keys.gateway.current), seed(keys.audit), ...pemBody];
}

async function failure(p: Promise<unknown>): Promise<KeyStoreError> {
  const err: unknown = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(KeyStoreError);
  return err as KeyStoreError;
}

describe('loadOrCreateKeys', () => {
  it('generates missing keys once (files 0600, dir 0700), then reloads them identically', async () => {
    const logger = new CapturingLogger();
    const first = await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger, now: () => new Date('2026-11-28T12:00:00Z') });
    expect(first.gateway.current.kid).toMatch(/^gw-2026-11-[0-9a-f]{8}$/);
    expect(first.gateway.next).toBeUndefined();
    expect(first.audit.kid).toMatch(/^audit-2026-11-[0-9a-f]{8}$/);
    expect(first.audit.publicKey).not.toBe(first.gateway.current.publicKey);
    expect(rawPublicKey(first.gateway.current.key)).toBe(first.gateway.current.publicKey);
    expect(first.jwt.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    expect(first.jwt.publicKeyPem).toContain('BEGIN PUBLIC KEY');

    expect(await mode(join(dir, 'keys'))).toBe(0o700);
    for (const f of ['gateway.json', 'audit.json', 'jwt.pem']) expect(await mode(join(dir, 'keys', f))).toBe(0o600);
    expect(logger.lines.filter((l) => l.msg.includes('generated'))).toHaveLength(3);

    const again = new CapturingLogger();
    const second = await loadOrCreateKeys({ dataDir: dir, env: {}, generate: false, logger: again });
    expect(second.gateway.current.kid).toBe(first.gateway.current.kid);
    expect(second.gateway.current.publicKey).toBe(first.gateway.current.publicKey);
    expect(second.audit.kid).toBe(first.audit.kid);
    expect(second.audit.publicKey).toBe(first.audit.publicKey);
    expect(second.jwt).toEqual(first.jwt);
    expect(again.lines.filter((l) => l.msg.includes('loaded'))).toHaveLength(3);
    // And generate: true does not replace keys that exist.
    const third = await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: again });
    expect(third.gateway.current.publicKey).toBe(first.gateway.current.publicKey);

    for (const secret of secretsOf(first)) {
      expect(logger.text).not.toContain(secret);
      expect(again.text).not.toContain(secret);
    }
    expect(logger.text).toContain(first.gateway.current.kid);
  });

  it('produces a JWT key pair the TokenService accepts', async () => {
    const keys = await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() });
    const store = {} as SessionStore;
    expect(() => new TokenService({ ...keys.jwt, issuer: 'i', audience: 'a', store })).not.toThrow();
  });

  it('without generate, names every missing key and where it may come from, and writes nothing', async () => {
    const err = await failure(loadOrCreateKeys({ dataDir: dir, env: {}, generate: false, logger: new CapturingLogger() }));
    expect(err.problems).toHaveLength(3);
    expect(err.message).toMatch(/gateway signing key: not found.*SP_GATEWAY_KEY.*SP_GATEWAY_KID.*SP_GATEWAY_KEY_FILE/);
    expect(err.message).toMatch(/audit key: not found.*SP_AUDIT_KEY.*SP_AUDIT_KEY_FILE/);
    expect(err.message).toMatch(/JWT signing key: not found.*SP_JWT_KEY.*SP_JWT_KEY_FILE/);
    expect(err.message).toContain(join(dir, 'keys', 'jwt.pem'));
    await expect(stat(join(dir, 'keys'))).rejects.toThrow();
  });

  it('reports only the keys that are missing', async () => {
    await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() });
    await rm(join(dir, 'keys', 'audit.json'));
    const err = await failure(loadOrCreateKeys({ dataDir: dir, env: {}, generate: false, logger: new CapturingLogger() }));
    expect(err.problems).toEqual([expect.stringMatching(/^audit key: not found/)]);
  });

  it('takes keys from env over the data dir (PEM with escaped newlines too), and the optional next key', async () => {
    await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() });
    const gw = generateRawKeyPair();
    const next = generateRawKeyPair();
    const audit = generateRawKeyPair();
    const pem = p256Pem();
    const logger = new CapturingLogger();
    const keys = await loadOrCreateKeys({
      dataDir: dir,
      env: {
        SP_GATEWAY_KEY: gw.privateKey, SP_GATEWAY_KID: 'gw-2026-12-env',
        SP_GATEWAY_NEXT_KEY: next.privateKey, SP_GATEWAY_NEXT_KID: 'gw-2027-01-env',
        SP_AUDIT_KEY: audit.privateKey,
        SP_JWT_KEY: pem.replace(/\n/g, '\\n'),
      },
      generate: false,
      logger,
    });
    expect(keys.gateway.current).toMatchObject({ kid: 'gw-2026-12-env', publicKey: gw.publicKey });
    expect(keys.gateway.next).toMatchObject({ kid: 'gw-2027-01-env', publicKey: next.publicKey });
    expect(keys.audit.publicKey).toBe(audit.publicKey);
    expect(keys.audit.kid).toMatch(/^audit-[A-Za-z0-9_-]{12}$/); // from the key's fingerprint
    expect(keys.jwt.privateKeyPem).toBe(pem);
    expect(logger.text).toContain('env SP_GATEWAY_KEY');
    for (const secret of [gw.privateKey, next.privateKey, audit.privateKey, ...secretsOf(keys)]) expect(logger.text).not.toContain(secret);
  });

  it('takes keys from files named in env: JSON or a bare seed with the kid from env, and a PEM', async () => {
    const secrets = join(dir, 'secrets');
    await mkdir(secrets, { mode: 0o700 });
    const gw = generateRawKeyPair();
    const audit = generateRawKeyPair();
    const pem = p256Pem();
    await writeFile(join(secrets, 'gw'), `${gw.privateKey}\n`, { mode: 0o600 });
    await writeFile(join(secrets, 'audit.json'), JSON.stringify({ kid: 'audit-file', privateKey: audit.privateKey }), { mode: 0o600 });
    await writeFile(join(secrets, 'jwt.pem'), pem, { mode: 0o644 });
    const logger = new CapturingLogger();
    const keys = await loadOrCreateKeys({
      dataDir: join(dir, 'data'),
      env: { SP_GATEWAY_KEY_FILE: join(secrets, 'gw'), SP_GATEWAY_KID: 'gw-file', SP_AUDIT_KEY_FILE: join(secrets, 'audit.json'), SP_JWT_KEY_FILE: join(secrets, 'jwt.pem') },
      generate: true,
      logger,
    });
    expect(keys.gateway.current).toMatchObject({ kid: 'gw-file', publicKey: gw.publicKey });
    expect(keys.audit).toMatchObject({ kid: 'audit-file', publicKey: audit.publicKey });
    expect(keys.jwt.privateKeyPem).toBe(pem);
    // Nothing generated into the data dir when every key came from elsewhere.
    await expect(stat(join(dir, 'data', 'keys'))).rejects.toThrow();
    // A key file others can read is loaded, with a warning naming the file (not its contents).
    const warning = logger.lines.find((l) => l.level === 'warn');
    expect(warning?.fields).toEqual({ file: join(secrets, 'jwt.pem'), mode: '644' });
  });

  it('reports bad env values all at once, without echoing them', async () => {
    const secretLooking = 'c2VjcmV0LXNlY3JldC1zZWNyZXQ';
    const err = await failure(
      loadOrCreateKeys({
        dataDir: dir,
        env: { SP_GATEWAY_KEY: generateRawKeyPair().privateKey, SP_AUDIT_KEY: secretLooking, SP_JWT_KEY: `-----BEGIN PRIVATE KEY-----\\n${secretLooking}\\n-----END PRIVATE KEY-----`, SP_JWT_KEY_FILE: '/x' },
        generate: true,
        logger: new CapturingLogger(),
      }),
    );
    expect(err.problems).toHaveLength(3);
    expect(err.message).toContain('SP_GATEWAY_KEY is set, so SP_GATEWAY_KID must be too');
    expect(err.message).toMatch(/audit key: SP_AUDIT_KEY: not a base64url 32-byte Ed25519 seed/);
    expect(err.message).toContain('set SP_JWT_KEY or SP_JWT_KEY_FILE, not both');
    expect(err.message).not.toContain(secretLooking);
  });

  it('refuses a JWT key that is not P-256, a tampered key file, and the same key for gateway and audit', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const same = generateRawKeyPair();
    const err = await failure(
      loadOrCreateKeys({
        dataDir: dir,
        env: { SP_JWT_KEY: rsa, SP_GATEWAY_KEY: same.privateKey, SP_GATEWAY_KID: 'gw-1', SP_AUDIT_KEY: same.privateKey },
        generate: false,
        logger: new CapturingLogger(),
      }),
    );
    expect(err.message).toMatch(/JWT signing key: SP_JWT_KEY: must be an EC P-256/);
    expect(err.message).toMatch(/audit key: must differ from the gateway signing key/);

    await loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() });
    const file = join(dir, 'keys', 'gateway.json');
    const doc = JSON.parse(await readFile(file, 'utf8')) as { publicKey: string };
    doc.publicKey = generateRawKeyPair().publicKey;
    await chmod(file, 0o600);
    await writeFile(file, JSON.stringify(doc));
    const tampered = await failure(loadOrCreateKeys({ dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() }));
    expect(tampered.message).toMatch(/gateway\.json: publicKey does not match privateKey/);
  });

  it('lets two starts race on an empty data dir and agree on one set of keys', async () => {
    const opts = { dataDir: dir, env: {}, generate: true, logger: new CapturingLogger() };
    const [a, b] = await Promise.all([loadOrCreateKeys(opts), loadOrCreateKeys(opts)]);
    expect(a.gateway.current.publicKey).toBe(b.gateway.current.publicKey);
    expect(a.audit.publicKey).toBe(b.audit.publicKey);
    expect(a.jwt).toEqual(b.jwt);
  });
});
