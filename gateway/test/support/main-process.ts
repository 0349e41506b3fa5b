/**
 * `npm start` as a real process for tests: spawn gateway/dist/main.js with only the SP_ settings
 * given, collect its output, and end every process started here by its PID (never anything else).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
