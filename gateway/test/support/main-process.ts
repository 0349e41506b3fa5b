/**
 * `npm start` as a real process for tests: spawn gateway/dist/main.js with only the SP_ settings
 * given, collect its output, and end every process started here by its PID (never anything else).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateRawKeyPair } from '@smart-passage/protocol';

const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface Proc {
  pid: number;
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const procs = new Set<Proc>();

/** Start main in `cwd` with only the SP_ settings given (none inherited from the test's environment). */
export function startMain(settings: Record<string, string>, cwd: string): Proc {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SP_')) env[k] = v;
  const child = spawn(process.execPath, [MAIN], { env: { ...env, ...settings }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not spawn main');
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const p: Proc = { pid: child.pid, child, out: () => out, err: () => err, exited };
  procs.add(p);
  void exited.then(() => procs.delete(p));
  return p;
}

/** Signal a process started here, by PID; it may have exited already. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

/** End every process still running that startMain started: SIGTERM, then SIGKILL after a grace period. */
export async function endAll(graceMs = 3_000): Promise<void> {
  await Promise.all(
    [...procs].map(async (p) => {
      signal(p.pid, 'SIGTERM');
      const timer = setTimeout(() => signal(p.pid, 'SIGKILL'), graceMs);
      await p.exited;
      clearTimeout(timer);
    }),
  );
}

/**
 * Keys for gateway processes that must share them (several instances on one Redis): the
 * settings, and the gateway key's public half for controllers' bundles.
 */
export function sharedKeys(run: string): { env: Record<'SP_GATEWAY_KEY' | 'SP_GATEWAY_KID' | 'SP_AUDIT_KEY' | 'SP_AUDIT_KID' | 'SP_JWT_KEY', string>; gatewayPublicKey: string } {
  const gateway = generateRawKeyPair();
  return {
    env: {
      SP_GATEWAY_KEY: gateway.privateKey,
      SP_GATEWAY_KID: `gw-${run}`,
      SP_AUDIT_KEY: generateRawKeyPair().privateKey,
      SP_AUDIT_KID: `audit-${run}`,
      SP_JWT_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    },
    gatewayPublicKey: gateway.publicKey,
  };
}

/** One of several instances on a shared broker and Redis (DESIGN §11), demo off, data in `<dir>/<id>`. */
export function startInstance(o: { id: string; port: number; keys: Record<string, string>; mqttUrl: string; redisUrl: string; prefix: string; dir: string; settings?: Record<string, string> }): Proc {
  return startMain(
    {
      ...o.keys,
      SP_PORT: String(o.port),
      SP_MQTT_URL: o.mqttUrl,
      SP_REDIS_URL: o.redisUrl,
      SP_REDIS_PREFIX: o.prefix,
      SP_INSTANCE_ID: o.id,
      SP_DEMO: 'off',
      SP_DATA_DIR: join(o.dir, o.id),
      SP_LOG_LEVEL: 'warn',
      ...o.settings,
    },
    o.dir,
  );
}

/** Until GET /api/v1/ready answers 200; fails early, with its stderr, if the process exits. */
export async function untilReady(proc: Proc, base: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fetch(`${base}/api/v1/ready`).then((r) => r.ok, () => false)) return;
    if (proc.child.exitCode !== null) throw new Error(`gateway process ${proc.pid} exited (${proc.child.exitCode})\n${proc.err()}`);
    if (Date.now() > deadline) throw new Error(`gateway process ${proc.pid} not ready after ${ms} ms\n${proc.err()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
