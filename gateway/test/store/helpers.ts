// Harnesses for the store contract suite: each gives a fresh, empty backing store and opens as
// many started instances on it as a test wants (two instances = two gateways, DESIGN §11).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { LogFields, Logger } from '@smart-passage/protocol';
import { EmbeddedStore, RedisStore, type StorePort } from '../../src/store/index.js';

/** The machine's Redis; shared with other tests and projects, so we only touch our own prefix. */
export const REDIS_URL = process.env.SP_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface Harness {
  /** A new started instance on this harness's backing store. */
  open(): Promise<StorePort>;
  /** Stop every instance opened and remove the backing data. */
  close(): Promise<void>;
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: LogFields | undefined;
}

/** A logger that remembers what it was told, for asserting on warnings. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export async function makeEmbedded(): Promise<Harness & { path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sp-store-'));
  const path = join(dir, 'store.sqlite');
  const opened: StorePort[] = [];
  return Promise.resolve({
    path,
    async open() {
      const s = new EmbeddedStore({ path });
      await s.start();
      opened.push(s);
      return s;
    },
    async close() {
      for (const s of opened) await s.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

export function uniquePrefix(): string {
  return `sp-test-${randomBytes(6).toString('hex')}:`;
}

/** Delete every key under `prefix` (SCAN + DEL): never FLUSHDB on a shared server. */
export async function deletePrefix(prefix: string): Promise<void> {
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await admin.del(...keys);
    } while (cursor !== '0');
  } finally {
    await admin.quit();
  }
}

/** Keys under `prefix` right now. */
export async function keysUnder(prefix: string): Promise<string[]> {
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  try {
    const out: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
    return out;
  } finally {
    await admin.quit();
  }
}

export function makeRedis(url = REDIS_URL, logger: Logger = memoryLogger()): Promise<Harness & { prefix: string }> {
  const prefix = uniquePrefix();
  const opened: StorePort[] = [];
  return Promise.resolve({
    prefix,
    async open() {
      const s = new RedisStore({ url, prefix, logger });
      await s.start();
      opened.push(s);
      return s;
    },
    async close() {
      for (const s of opened) await s.stop();
      await deletePrefix(prefix);
    },
  });
}

/**
 * A TCP proxy in front of the shared Redis that a test can cut and restore, so an outage can
 * be simulated without touching the server other tests use (DESIGN §10 "Redis unreachable").
 */
export class RedisProxy {
  #server: net.Server | undefined;
  #sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  static forUrl(url: string): RedisProxy {
    const u = new URL(url);
    return new RedisProxy({ host: u.hostname, port: Number(u.port || 6379) });
  }

  /** The proxy's URL, keeping the target's credentials and db. */
  url(base: string): string {
    const u = new URL(base);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  async listen(): Promise<void> {
    const server = net.createServer((down) => {
      const up = net.connect(this.target);
      for (const s of [down, up]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    this.#server = server;
  }

  /** Refuse new connections and drop the open ones: Redis is "down". */
  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
