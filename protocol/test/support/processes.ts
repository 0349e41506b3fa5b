/**
 * Child processes for tests: spawn a built CLI with node, read its output line by line, and end
 * it by its own PID (never by name: other processes on this machine are not ours).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout, one entry a line, in order. */
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  #stderr = '';
  #exit: Exit | undefined;
  #waiters = new Set<() => void>();

  constructor(script: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    this.child = spawn(process.execPath, [script, ...args], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    if (this.child.pid === undefined) throw new Error(`could not spawn ${script}`);
    this.pid = this.child.pid;
    const rl = createInterface({ input: this.child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      this.lines.push(line);
      for (const w of this.#waiters) w();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString('utf8')));
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        for (const w of this.#waiters) w();
        resolve(this.#exit);
      });
    });
    // A closed stdin on a dead child must not crash the test process.
    this.child.stdin?.on('error', () => undefined);
  }

  get stdout(): string {
    return this.lines.join('\n');
  }
  get stderr(): string {
    return this.#stderr;
  }
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Write one line to its stdin. */
  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  /** Lines from index `from` on, parsed as JSON (lines that are not JSON are skipped). */
  json(from = 0): { index: number; value: Record<string, unknown> }[] {
    const out: { index: number; value: Record<string, unknown> }[] = [];
    for (let i = from; i < this.lines.length; i++) {
      try {
        const v = JSON.parse(this.lines[i] as string) as unknown;
        if (typeof v === 'object' && v !== null) out.push({ index: i, value: v as Record<string, unknown> });
      } catch {
        // a banner or summary line
      }
    }
    return out;
  }

  /** The first stdout line from `from` on that matches, waiting up to `timeoutMs`. */
  async waitForLine(match: (line: string) => boolean, { from = 0, timeoutMs = 10_000 } = {}): Promise<{ index: number; line: string }> {
    return this.#wait(() => {
      for (let i = from; i < this.lines.length; i++) if (match(this.lines[i] as string)) return { index: i, line: this.lines[i] as string };
      return undefined;
    }, timeoutMs, 'a matching stdout line');
  }

  /** The first JSON stdout line from `from` on that matches. */
  async waitForJson(
    match: (v: Record<string, unknown>) => boolean,
    { from = 0, timeoutMs = 10_000 } = {},
  ): Promise<{ index: number; value: Record<string, unknown> }> {
    return this.#wait(() => this.json(from).find((j) => match(j.value)), timeoutMs, 'a matching JSON line');
  }

  /** Send a signal to this process by its PID, if it still runs. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async end(graceMs = 3_000): Promise<Exit> {
    if (!this.running && this.#exit) return this.#exit;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  #wait<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const hit = probe();
        if (hit !== undefined) {
          done();
          resolve(hit);
        } else if (!this.running) {
          done();
          reject(new Error(`process ${this.pid} exited (${JSON.stringify(this.#exit)}) before ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.#stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.#stderr}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }
}

/** Tracks what a test file spawned, so afterEach can end each one by PID. */
export class ProcessSet {
  readonly #all = new Set<Spawned>();
  spawn(script: string, args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string }): Spawned {
    const p = new Spawned(script, args, opts);
    this.#all.add(p);
    return p;
  }
  async endAll(): Promise<void> {
    await Promise.all([...this.#all].map((p) => p.end()));
    this.#all.clear();
  }
}
