/**
 * Does the Redis we were given keep what we write? (issue 4, DESIGN §10) The audit trail and the
 * grants live there: a Redis with neither AOF nor snapshots loses them all on a restart, and one
 * with `appendfsync everysec` may lose the last second. We cannot change that from here (it is the
 * operator's Redis), so the gateway says it loudly at start.
 */
import { Redis } from 'ioredis';

export interface RedisPersistence {
  /** `durable`: AOF with fsync always; `lossy`: some persistence, may lose recent writes; `none`; `unknown`: CONFIG refused. */
  level: 'durable' | 'lossy' | 'none' | 'unknown';
  detail: string;
}

export async function checkRedisPersistence(url: string): Promise<RedisPersistence> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, enableOfflineQueue: false });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const get = async (name: string): Promise<string> => {
      const r = (await redis.config('GET', name)) as string[];
      return r[1] ?? '';
    };
    const appendonly = await get('appendonly');
    const fsync = await get('appendfsync');
    const save = await get('save');
    if (appendonly === 'yes' && fsync === 'always') return { level: 'durable', detail: 'appendonly yes, appendfsync always' };
    if (appendonly === 'yes') return { level: 'lossy', detail: `appendonly yes but appendfsync ${fsync}: up to a second of writes may be lost on a crash` };
    if (save.trim() !== '') return { level: 'lossy', detail: `no AOF, only snapshots (save "${save}"): writes since the last snapshot are lost on a crash` };
    return { level: 'none', detail: 'neither AOF nor snapshots: a Redis restart loses every grant and audit entry' };
  } catch (err) {
    return { level: 'unknown', detail: `could not read the persistence settings (${err instanceof Error ? err.message : String(err)})` };
  } finally {
    redis.disconnect();
  }
}
