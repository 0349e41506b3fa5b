/**
 * The store package: the port, both implementations, and the choice between them (DESIGN §2:
 * Redis when a URL is configured, for scale-out; otherwise the embedded store on disk).
 */
import { join } from 'node:path';
import type { Logger } from '@smart-passage/protocol';
import { EmbeddedStore } from './embedded-store.js';
import type { StorePort } from './port.js';
import { RedisStore } from './redis-store.js';

export * from './port.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded-store.js';
export { RedisStore, type RedisStoreOptions } from './redis-store.js';

/** The settings createStore reads; the gateway's Config carries them (SP_DATA_DIR, SP_REDIS_URL …). */
export interface StoreConfig {
  dataDir: string;
  redisUrl?: string | undefined;
  /** Key prefix in Redis (default `sp:`), so several deployments can share one server. */
  redisPrefix?: string | undefined;
}

export const DEFAULT_REDIS_PREFIX = 'sp:';

/**
 * Build (not start) the store the configuration asks for.
 * @example createStore({ dataDir: './data' }, log) → EmbeddedStore on ./data/store.sqlite
 */
export function createStore(config: StoreConfig, logger: Logger): StorePort {
  if (config.redisUrl !== undefined && config.redisUrl !== '') {
    return new RedisStore({ url: config.redisUrl, prefix: config.redisPrefix ?? DEFAULT_REDIS_PREFIX, logger });
  }
  return new EmbeddedStore({ path: join(config.dataDir, 'store.sqlite') });
}
