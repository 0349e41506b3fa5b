/**
 * A real gateway PROCESS for the end-to-end tests (STYLE "end to end": the built UI served by a
 * real gateway): `node gateway/dist/main.js` with the demo district, its data in a temp dir, the
 * HTTP API and embedded broker on free ports of their own. Ended by its PID (SIGTERM, then
 * SIGKILL), never by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const MAIN = join(ROOT, 'gateway/dist/main.js');
const UI_INDEX = join(ROOT, 'dispatch-ui/dist/index.html');

export interface E2eGateway {
  /** `http://127.0.0.1:PORT`: the UI at `/`, the API under `/api/v1`. */
  url: string;
  /** The embedded broker: `mqtt://127.0.0.1:PORT`. */
  mqttUrl: string;
  dataDir: string;
  pid: number;
  /** The demo users' passwords, from `<dataDir>/demo/secrets.json`. */
  passwords: Readonly<Record<string, string>>;
  /** What the process printed so far (stdout: the banner; stderr: the log). */
  output: () => string;
  /** SIGTERM, SIGKILL after `graceMs`; removes the data dir. Safe to call twice. */
  stop: (graceMs?: number) => Promise<void>;
}

/** A port nobody listens on right now (the OS picks it; we close and hand it on). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The demo secrets file's shape (gateway/src/demo/demo-runtime.ts): users' passwords and controllers' bundles. */
interface DemoSecrets {
  passwords: Record<string, string>;
  bundles: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Start `node gateway/dist/main.js` with the demo on, and wait until `/api/v1/ready` answers 200.
 * `env` adds SP_ settings (SP_TILE_URL …); none is inherited from the test's own environment.
 */
export async function startGateway(o: { env?: Record<string, string>; readyTimeoutMs?: number } = {}): Promise<E2eGateway> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run npm run build (npm test does) before the e2e tests`);
  if (!existsSync(UI_INDEX)) throw new Error(`${UI_INDEX} is missing: run npm run build (npm test does) before the e2e tests`);
  const dataDir = mkdtempSync(join(tmpdir(), 'sp-e2e-'));
  const [port, mqttPort] = [await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SP_')) env[k] = v;
  Object.assign(env, {
    SP_DATA_DIR: dataDir,
    SP_HOST: '127.0.0.1',
    SP_PORT: String(port),
    SP_MQTT_HOST: '127.0.0.1',
    SP_MQTT_PORT: String(mqttPort),
    SP_DEMO: 'on',
    SP_LOG_LEVEL: 'warn',
    ...o.env,
  });
  const child: ChildProcess = spawn(process.execPath, [MAIN], { env, cwd: dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not spawn the gateway');
  const pid = child.pid;
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, sig) => {
      exited = { code, signal: sig };
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async (graceMs = 5000): Promise<void> => {
    if (!stopped) {
      stopped = true;
      if (!exited) {
        signal(pid, 'SIGTERM');
        const timer = setTimeout(() => signal(pid, 'SIGKILL'), graceMs);
        await exit;
        clearTimeout(timer);
      }
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`the gateway exited (${JSON.stringify(exited)}) before it was ready:\n${out}`);
    }
    const ready = await fetch(`${url}/api/v1/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready && existsSync(join(dataDir, 'demo', 'secrets.json'))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the gateway was not ready within ${o.readyTimeoutMs ?? 60_000} ms:\n${out}`);
    }
    await sleep(100);
  }
  const secrets = JSON.parse(readFileSync(join(dataDir, 'demo', 'secrets.json'), 'utf8')) as DemoSecrets;
  return { url, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, dataDir, pid, passwords: secrets.passwords, output: () => out, stop };
}

/**
 * Log in over the API (for setting up what a test needs without clicking): the access token.
 * @example const token = await apiLogin(gw, 'dispatch'); await api(gw, token, 'POST', '/api/v1/incidents', {...})
 */
export async function apiLogin(gw: E2eGateway, username: string): Promise<string> {
  const password = gw.passwords[username];
  if (password === undefined) throw new Error(`no demo user ${username}`);
  const r = await api<{ accessToken: string }>(gw, undefined, 'POST', '/api/v1/auth/login', { username, password });
  return r.accessToken;
}

/** One API call; throws with the answer on a non-2xx status. */
export async function api<T = Record<string, unknown>>(gw: E2eGateway, token: string | undefined, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}
