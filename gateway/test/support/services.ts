/**
 * Private Redis and Mosquitto servers for fault tests (issue 6, DESIGN §10): each on a free port of
 * its own, its generated config and its data in a temp dir of its own, started — and killed,
 * restarted, ended — only by the PID this module started. The machine's shared Redis (6379) and
 * Mosquitto (1883) are never touched: other tests and people use them.
 *
 * A server keeps its port and its data dir across kill() and start(), so a restart is the same
 * server coming back: Redis replays its append-only file, Mosquitto loads its persistence file.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** Binaries as Debian installs them; overridable for other machines. */
const REDIS_SERVER = process.env.SP_TEST_REDIS_SERVER ?? '/usr/bin/redis-server';
const MOSQUITTO = process.env.SP_TEST_MOSQUITTO ?? '/usr/sbin/mosquitto';
const MOSQUITTO_PASSWD = process.env.SP_TEST_MOSQUITTO_PASSWD ?? '/usr/bin/mosquitto_passwd';
const MOSQUITTO_CTRL = process.env.SP_TEST_MOSQUITTO_CTRL ?? '/usr/bin/mosquitto_ctrl';
/** Mosquitto's Dynamic Security plugin (eclipse-mosquitto:2 has it at /usr/lib/mosquitto_dynamic_security.so). */
const MOSQUITTO_DYNSEC = process.env.SP_TEST_MOSQUITTO_DYNSEC ?? '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

/** Keep at most this much of a server's output, for the message of a failing test. */
const MAX_LOG = 32_000;

/** A port nobody listens on right now (the kernel's pick; released before we use it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One exchange on a fresh TCP connection: write `send` (if any), resolve with the first bytes back. */
async function probe(port: number, send: string | undefined, timeoutMs = 500): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.once('error', () => done(undefined));
    s.once('connect', () => {
      if (send === undefined) done('');
      else s.write(send);
    });
    s.once('data', (b: Buffer) => done(b.toString('utf8')));
  });
}

interface ServerSpec {
  name: string;
  bin: string;
  args: string[];
  /** Resolves true once the server answers on its port. */
  ready: (port: number) => Promise<boolean>;
}

/** A server process started here. */
export class PrivateServer {
  readonly name: string;
  readonly port: number;
  /** Config and data live here for the server's whole life (restarts included). */
  readonly dir: string;
  readonly url: string;
  readonly #spec: ServerSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  constructor(spec: ServerSpec, port: number, dir: string, scheme: string) {
    this.#spec = spec;
    this.name = spec.name;
    this.port = port;
    this.dir = dir;
    this.url = `${scheme}://127.0.0.1:${port}`;
  }

  /** The PID of the running process, if one runs. */
  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** What the server wrote to stdout and stderr (the latest part). */
  get log(): string {
    return this.#log;
  }

  /** Start (or start again, on the same port and data dir) and wait until it answers. */
  async start(timeoutMs = 10_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} already runs (pid ${String(this.#child?.pid)})`);
    const child = spawn(this.#spec.bin, this.#spec.args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error(`could not spawn ${this.#spec.bin}`);
    this.#child = child;
    const keep = (b: Buffer) => {
      this.#log = (this.#log + b.toString('utf8')).slice(-MAX_LOG);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited at start (code ${String(child.exitCode)}):\n${this.#log}`);
      if (await this.#spec.ready(this.port)) return;
      await sleep(50);
    }
    await this.kill('SIGKILL');
    throw new Error(`${this.name} did not answer on port ${this.port} within ${timeoutMs} ms:\n${this.#log}`);
  }

  /** Signal the process started here, by its PID, and wait until it has exited. */
  async kill(sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!this.running || child?.pid === undefined) return;
    try {
      process.kill(child.pid, sig);
    } catch {
      // gone already
    }
    await this.#exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; then the data dir goes. */
  async end(graceMs = 3_000): Promise<void> {
    if (this.running) {
      const timer = setTimeout(() => void this.kill('SIGKILL'), graceMs);
      await this.kill('SIGTERM');
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const started = new Set<PrivateServer>();

/** End every server this module started (afterAll): by PID, then remove their dirs. */
export async function endServices(): Promise<void> {
  await Promise.all([...started].map((s) => s.end()));
  started.clear();
}

/** redis-server answers PING with PONG (not -LOADING while it replays its AOF). */
const redisReady = async (port: number) => (await probe(port, 'PING\r\n'))?.startsWith('+PONG') ?? false;

/**
 * A private redis-server. By default as docker-compose runs it (DESIGN §10): append-only file,
 * fsync on every write, no RDB snapshots — so a SIGKILL loses nothing acknowledged.
 */
export async function startRedis(o: { appendOnly?: boolean } = {}): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sp-fault-redis-'));
  const port = await freePort();
  const aof = o.appendOnly ?? true;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--appendonly', aof ? 'yes' : 'no'];
  if (aof) args.push('--appendfsync', 'always');
  const server = new PrivateServer({ name: `redis-server:${port}`, bin: REDIS_SERVER, args, ready: redisReady }, port, dir, 'redis');
  started.add(server);
  await server.start();
  return server;
}

export interface MosquittoOptions {
  /** Let clients in without a username (default true). */
  anonymous?: boolean;
  /** Accounts in a generated password file (mosquitto_passwd); none = no password file. */
  users?: Record<string, string>;
  /** Keep retained messages and persistent sessions in the data dir across restarts (default true). */
  persistence?: boolean;
  /**
   * Load the Dynamic Security plugin with a config made by `mosquitto_ctrl dynsec init` for this
   * admin account (kept in the server's dir, so across restarts). Replaces `users`.
   */
  dynsec?: { admin: { username: string; password: string } };
}

/**
 * A private Mosquitto 2 with a config generated for it. With persistence on it saves every second
 * (autosave_interval 1), so what it held a second before a SIGKILL survives it — as close to a
 * crash-safe broker as Mosquitto gets (it writes its state only periodically and at a clean stop).
 */
export async function startMosquitto(o: MosquittoOptions = {}): Promise<PrivateServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sp-fault-mosquitto-'));
  const port = await freePort();
  const lines = [
    `listener ${port} 127.0.0.1`,
    `allow_anonymous ${o.anonymous ?? true ? 'true' : 'false'}`,
    'set_tcp_nodelay true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'connection_messages true',
  ];
  // Run as root, Mosquitto would drop to the `mosquitto` user, who may not write our temp dir.
  if (userInfo().uid === 0) lines.push('user root');
  if (o.persistence ?? true) {
    mkdirSync(join(dir, 'data'));
    lines.push('persistence true', `persistence_location ${join(dir, 'data')}/`, 'autosave_interval 1');
  }
  const users = Object.entries(o.users ?? {});
  if (o.dynsec) {
    const file = join(dir, 'dynamic-security.json');
    execFileSync(MOSQUITTO_CTRL, ['dynsec', 'init', file, o.dynsec.admin.username, o.dynsec.admin.password], { stdio: 'ignore' });
    lines.push(`plugin ${MOSQUITTO_DYNSEC}`, `plugin_opt_config_file ${file}`);
  } else if (users.length > 0) {
    const file = join(dir, 'passwd');
    writeFileSync(file, '', { mode: 0o600 });
    for (const [user, password] of users) execFileSync(MOSQUITTO_PASSWD, ['-b', file, user, password], { stdio: 'ignore' });
    lines.push(`password_file ${file}`);
  }
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const server = new PrivateServer({ name: `mosquitto:${port}`, bin: MOSQUITTO, args: ['-c', conf], ready: async (p) => (await probe(p, undefined)) !== undefined }, port, dir, 'mqtt');
  started.add(server);
  await server.start();
  return server;
}

/**
 * `mosquitto_ctrl dynsec <args>` against a private broker as `admin` (the tool deployment uses):
 * returns its output. mosquitto_ctrl exits 0 even when the plugin refuses a command, so its
 * output says whether it worked ("Error: …").
 */
export function dynsecCtrl(server: PrivateServer, admin: { username: string; password: string }, args: string[]): string {
  return execFileSync(MOSQUITTO_CTRL, ['-h', '127.0.0.1', '-p', String(server.port), '-u', admin.username, '-P', admin.password, 'dynsec', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
