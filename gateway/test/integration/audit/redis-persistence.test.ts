// The gateway says at start whether its Redis keeps what it writes (issue 4, DESIGN §10). Two
// private redis-server processes on ports of their own (started here, ended by their PIDs): one
// as docker-compose runs it (AOF, fsync always), one that persists nothing.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRedisPersistence } from '../../../src/adapters/redis-persistence.js';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { Gateway } from '../../../src/gateway.js';
import { memoryLogger } from '../../store/helpers.js';
import { freePort } from '../../support/services.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      process.kill(c.pid, 'SIGKILL');
      await exited;
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});


async function startRedis(args: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'sp-redis-'));
  dirs.push(dir);
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, ...args], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (up) return `redis://127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('redis-server did not start');
}

describe('Redis persistence check', () => {
  it('tells durable (AOF, fsync always), lossy and none apart', async () => {
    expect((await checkRedisPersistence(await startRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--save', '']))).level).toBe('durable');
    expect((await checkRedisPersistence(await startRedis(['--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '']))).level).toBe('lossy');
    expect((await checkRedisPersistence(await startRedis(['--appendonly', 'no', '--save', '']))).level).toBe('none');
    expect((await checkRedisPersistence('redis://127.0.0.1:1')).level).toBe('unknown');
  });

  it('the gateway warns at start when its Redis persists nothing', async () => {
    const url = await startRedis(['--appendonly', 'no', '--save', '']);
    const dir = mkdtempSync(join(tmpdir(), 'sp-gw-'));
    dirs.push(dir);
    const logger = memoryLogger();
    const { generateRawKeyPair } = await import('@smart-passage/protocol');
    const { generateKeyPairSync } = await import('node:crypto');
    const gw = new Gateway({
      dataDir: dir,
      http: { host: '127.0.0.1', port: 0 },
      mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
      redisUrl: url,
      redisPrefix: 'sp-test:',
      demo: false,
      env: {
        SP_GATEWAY_KEY: generateRawKeyPair().privateKey,
        SP_GATEWAY_KID: 'gw-t',
        SP_AUDIT_KEY: generateRawKeyPair().privateKey,
        SP_AUDIT_KID: 'audit-t',
        SP_JWT_KEY: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      },
      logger,
      cleanSession: true,
      hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
    });
    try {
      await gw.start();
      const warning = logger.lines.find((l) => l.level === 'warn' && l.msg.includes('REDIS MAY LOSE DATA'));
      expect(warning?.msg).toContain('appendonly yes');
    } finally {
      await gw.stop();
    }
  }, 30_000);
});
