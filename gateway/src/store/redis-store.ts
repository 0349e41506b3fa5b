/**
 * The Redis store (ioredis) for scale-out: N gateway instances share it, so every method is
 * atomic across instances, not only within one process (DESIGN §11).
 *
 * Key layout, all under `prefix`:
 *   d:<collection>                   hash  id → document JSON
 *   ids:<collection>                 zset  ids, score 0, so ZRANGEBYLEX lists by id with a cursor
 *   i:<collection>:<field>:<value>   zset  ids holding that value (one entry per array element)
 *   u:<collection>:<field>           hash  unique value → id of its holder
 *   ctr:seq, ctr:desired             hash  controller id → counter
 *   ev:<ctrl>                        hash  boot → EventSeqState JSON
 *   sched                            zset  key, score = due time
 *   lease:<name>                     string owner, with a PX expiry
 *   rt:<id>                          string refresh token JSON, expiring with the token
 *   rfam                             set   revoked refresh families
 *   jti:<jti>                        string, expiring when the access token would have
 *   hit:<key>                        zset  rate-limit hits, score = time
 *
 * Writes that touch several keys run as Lua scripts so a document and its index and unique
 * entries change together. update() runs `mutate` in JS, so it is optimistic: read, mutate,
 * then a compare-and-set script that writes only if the stored JSON is still what was read,
 * retrying otherwise. We use that rather than WATCH/MULTI because WATCH is per connection and
 * every call of this instance shares one connection: a concurrent EXEC would clear another
 * call's WATCH and let a lost update through.
 *
 * The scripts derive index key names from the prefix, which standalone Redis allows; Redis
 * Cluster would need every key in one hash slot (a `{…}` prefix) and declared keys.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { classifyEventSeq, type EventSeqState, type Logger } from '@smart-passage/protocol';
import {
  INDEXES,
  StoreConflictError,
  StoreUnavailableError,
  UNIQUE,
  type CollectionName,
  type Collections,
  type EventSeqVerdict,
  type ListOptions,
  type RefreshTokenRecord,
  type StorePort,
} from './port.js';

export interface RedisStoreOptions {
  /** `redis://[user:password@]host:port[/db]`; never logged (it may carry a password, DESIGN §7). */
  url: string;
  /** Every key lives under it, e.g. `sp:`. */
  prefix: string;
  logger: Logger;
  /** How long a connection attempt may take (default 2 s). */
  connectTimeoutMs?: number;
  /** How long one command may take before the store counts as unavailable (default 5 s). */
  commandTimeoutMs?: number;
}

interface Script {
  lua: string;
  sha: string;
}
function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Insert, put, compare-and-set or delete one document with its index and unique entries.
 * KEYS: docs hash, ids zset. ARGV: prefix, collection, mode, id, expected JSON (cas), new JSON
 * ('' to delete), index fields JSON, unique fields JSON.
 * Returns {'ok'} | {'conflict', field} | {'missing'} | {'retry'}.
 */
const WRITE = script(`
local docs, ids = KEYS[1], KEYS[2]
local prefix, c, mode, id, expected, newJson = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local indexFields, uniqueFields = cjson.decode(ARGV[7]), cjson.decode(ARGV[8])
local function values(doc, f)
  local v = doc[f]
  if type(v) == 'string' then return { v } end
  local out = {}
  if type(v) == 'table' then
    for _, e in ipairs(v) do if type(e) == 'string' then out[#out + 1] = e end end
  end
  return out
end
local cur = redis.call('HGET', docs, id)
if mode == 'insert' and cur then return { 'conflict', 'id' } end
if (mode == 'cas' or mode == 'delete') and not cur then return { 'missing' } end
if mode == 'cas' and cur ~= expected then return { 'retry' } end
local new = nil
if newJson ~= '' then new = cjson.decode(newJson) end
if new then
  for _, f in ipairs(uniqueFields) do
    for _, v in ipairs(values(new, f)) do
      local holder = redis.call('HGET', prefix .. 'u:' .. c .. ':' .. f, v)
      if holder and holder ~= id then return { 'conflict', f } end
    end
  end
end
if cur then
  local old = cjson.decode(cur)
  for _, f in ipairs(indexFields) do
    for _, v in ipairs(values(old, f)) do redis.call('ZREM', prefix .. 'i:' .. c .. ':' .. f .. ':' .. v, id) end
  end
  for _, f in ipairs(uniqueFields) do
    local k = prefix .. 'u:' .. c .. ':' .. f
    for _, v in ipairs(values(old, f)) do
      if redis.call('HGET', k, v) == id then redis.call('HDEL', k, v) end
    end
  end
end
if new then
  redis.call('HSET', docs, id, newJson)
  redis.call('ZADD', ids, 0, id)
  for _, f in ipairs(indexFields) do
    for _, v in ipairs(values(new, f)) do redis.call('ZADD', prefix .. 'i:' .. c .. ':' .. f .. ':' .. v, 0, id) end
  end
  for _, f in ipairs(uniqueFields) do
    for _, v in ipairs(values(new, f)) do redis.call('HSET', prefix .. 'u:' .. c .. ':' .. f, v, id) end
  end
else
  redis.call('HDEL', docs, id)
  redis.call('ZREM', ids, id)
end
return { 'ok' }
`);

/** KEYS: an id zset, the docs hash. ARGV: ZRANGEBYLEX min, limit. One round trip, one snapshot. */
const LIST = script(`
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))
`);

/** KEYS: counter hash. ARGV: field, atLeast (integer string). max(stored, atLeast) + 1. */
const BUMP = script(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
`);

/** KEYS: hash. ARGV: field, expected value ('' = absent), next value. 1 when written. */
const CAS_FIELD = script(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`);

/** KEYS: lease. ARGV: owner, ttl ms. Free or own → (re)take it. */
const ACQUIRE = script(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

/** KEYS: lease. ARGV: owner. Only the holder may release. */
const RELEASE = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

/** KEYS: jti key. ARGV: until (ms epoch). Revoked before? Keep the later expiry. */
const REVOKE_UNTIL = script(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1]) end
return 0
`);

/** Replies that mean "this server cannot serve now" (loading, failover), not a bug of ours. */
const UNAVAILABLE_REPLY = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY)\b/;

/** Translate at the boundary (STYLE): connection trouble → StoreUnavailableError (503, DESIGN §10). */
function storeError(err: unknown): Error {
  if (err instanceof StoreConflictError || err instanceof StoreUnavailableError) return err;
  if (err instanceof Error && err.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(err.message)) return err;
  return new StoreUnavailableError(err);
}

type Doc = { id: string } & Record<string, unknown>;

function checkDoc(c: CollectionName, doc: { id: unknown }): asserts doc is Doc {
  if (typeof doc.id !== 'string' || doc.id === '') throw new Error(`${c}: a document needs a non-empty string id`);
}

/** Under contention update() retries; this many tries without winning means something is wrong. */
const MAX_UPDATE_ATTEMPTS = 200;

export class RedisStore implements StorePort {
  #client: Redis | undefined;

  constructor(private readonly options: RedisStoreOptions) {}

  async start(): Promise<void> {
    if (this.#client) return;
    const { logger } = this.options;
    const client = new Redis(this.options.url, {
      lazyConnect: true,
      // DESIGN §10: a call while Redis is away fails at once (→ 503) instead of queueing, and
      // the client keeps reconnecting in the background so the gateway recovers by itself.
      maxRetriesPerRequest: 1,
      connectTimeout: this.options.connectTimeoutMs ?? 2000,
      commandTimeout: this.options.commandTimeoutMs ?? 5000,
      retryStrategy: (times) => Math.min(times * 100, 2000),
    });
    let up = true;
    client.on('close', () => {
      // Log the outage once (not at every failed reconnect), and not when stop() closes it.
      if (!up || this.#client !== client) return;
      up = false;
      logger.warn('redis unreachable: store calls fail until it is back', { prefix: this.options.prefix });
    });
    client.on('error', (err: Error) => {
      // ioredis emits one per failed reconnect attempt; 'close' above already told the story.
      logger.debug('redis connection error', { error: err.message });
    });
    client.on('ready', () => {
      if (up) return;
      up = true;
      logger.info('redis reachable again', { prefix: this.options.prefix });
    });
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw new StoreUnavailableError(err);
    }
    // Only once connected: before that the offline queue lets the handshake through.
    client.options.enableOfflineQueue = false;
    let info: string;
    try {
      info = await client.info('server');
    } catch (err) {
      client.disconnect();
      throw storeError(err);
    }
    const version = /^redis_version:(\d+)\.(\d+)/m.exec(info);
    // GETDEL and SET … PXAT arrived in Redis 6.2.
    if (version && (Number(version[1]) < 6 || (Number(version[1]) === 6 && Number(version[2]) < 2))) {
      client.disconnect();
      throw new Error(`Redis ${version[1]}.${version[2]} is too old: the store needs 6.2 or later`);
    }
    this.#client = client;
    await this.#warnIfNotPersistent(client);
  }

  async #warnIfNotPersistent(client: Redis): Promise<void> {
    let settings: Map<string, string>;
    try {
      const reply = (await client.config('GET', 'appendonly', 'save')) as string[];
      settings = new Map<string, string>();
      for (let i = 0; i + 1 < reply.length; i += 2) settings.set(reply[i] ?? '', reply[i + 1] ?? '');
    } catch (err) {
      // Managed Redis often disables CONFIG; not knowing is no reason to refuse to start.
      this.options.logger.debug('could not read redis persistence settings', { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (settings.get('appendonly') === 'no' && settings.get('save') === '') {
      // DESIGN §10 ("no grant lost") wants a durable store; the design says warn, not refuse.
      this.options.logger.warn('redis persists nothing (appendonly no, save ""): a redis restart loses every grant and session', {
        prefix: this.options.prefix,
      });
    }
  }

  async stop(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    try {
      await client.quit();
    } catch {
      client.disconnect();
    }
  }

  ping(): Promise<void> {
    return this.#call(async (c) => {
      await c.ping();
    });
  }

  /** Run commands on the client, translating connection failures (DESIGN §10). */
  async #call<T>(work: (c: Redis) => Promise<T>): Promise<T> {
    const c = this.#client;
    if (!c) throw new StoreUnavailableError('redis store is not started');
    try {
      return await work(c);
    } catch (err) {
      throw storeError(err);
    }
  }

  /** EVALSHA, loading the script when the server does not know it (first use, or after a restart). */
  #eval(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.#call(async (c) => {
      try {
        return await c.evalsha(s.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return await c.eval(s.lua, keys.length, ...keys, ...args);
        throw err;
      }
    });
  }

  #key(...parts: string[]): string {
    return this.options.prefix + parts.join(':');
  }

  // ── Documents ─────────────────────────────────────────────────────────────────────────────

  async #write(c: CollectionName, mode: 'insert' | 'put' | 'cas' | 'delete', id: string, expected: string, next: string): Promise<'ok' | 'missing' | 'retry'> {
    const reply = (await this.#eval(
      WRITE,
      [this.#key('d', c), this.#key('ids', c)],
      [this.options.prefix, c, mode, id, expected, next, JSON.stringify(INDEXES[c]), JSON.stringify(UNIQUE[c] ?? [])],
    )) as string[];
    const [status, field] = reply;
    if (status === 'conflict') throw new StoreConflictError(c, field ?? 'id');
    if (status === 'ok' || status === 'missing' || status === 'retry') return status;
    throw new Error(`unexpected reply from the store write script: ${String(status)}`);
  }

  get<K extends CollectionName>(c: K, id: string): Promise<Collections[K] | undefined> {
    return this.#call(async (r) => {
      const raw = await r.hget(this.#key('d', c), id);
      return raw === null ? undefined : (JSON.parse(raw) as Collections[K]);
    });
  }

  async list<K extends CollectionName>(c: K, o: ListOptions<K> = {}): Promise<Collections[K][]> {
    const limit = Math.min(Math.floor(o.limit ?? 100), 1000);
    if (limit <= 0) return [];
    let ids = this.#key('ids', c);
    if (o.where) {
      if (!(INDEXES[c] as readonly string[]).includes(o.where.field)) throw new Error(`${c} has no index on ${o.where.field}`);
      ids = this.#key('i', c, o.where.field, o.where.value);
    }
    const reply = (await this.#eval(LIST, [ids, this.#key('d', c)], [o.after === undefined ? '-' : `(${o.after}`, limit])) as (string | null)[];
    return reply.filter((raw): raw is string => raw !== null).map((raw) => JSON.parse(raw) as Collections[K]);
  }

  async insert<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    checkDoc(c, doc);
    await this.#write(c, 'insert', doc.id, '', JSON.stringify(doc));
  }

  async update<K extends CollectionName>(
    c: K,
    id: string,
    mutate: (cur: Collections[K]) => Collections[K] | undefined,
  ): Promise<Collections[K] | undefined> {
    const docs = this.#key('d', c);
    for (let attempt = 1; ; attempt++) {
      const raw = await this.#call((r) => r.hget(docs, id));
      if (raw === null) return undefined;
      const next = mutate(JSON.parse(raw) as Collections[K]);
      if (next === undefined) return JSON.parse(raw) as Collections[K];
      checkDoc(c, next);
      if (next.id !== id) throw new Error(`${c}: update may not change a document's id`);
      const json = JSON.stringify(next);
      const status = await this.#write(c, 'cas', id, raw, json);
      if (status === 'ok') return JSON.parse(json) as Collections[K];
      if (status === 'missing') return undefined;
      if (attempt >= MAX_UPDATE_ATTEMPTS) throw new Error(`${c}/${id}: update lost ${attempt} races in a row`);
      // Jittered backoff once a few rounds were lost, so many writers of one document spread out.
      if (attempt > 2) await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
  }

  async put<K extends CollectionName>(c: K, doc: Collections[K]): Promise<void> {
    checkDoc(c, doc);
    await this.#write(c, 'put', doc.id, '', JSON.stringify(doc));
  }

  async delete<K extends CollectionName>(c: K, id: string): Promise<boolean> {
    return (await this.#write(c, 'delete', id, '', '')) === 'ok';
  }

  // ── Counters (PROTOCOL §4.4, §5.8) ────────────────────────────────────────────────────────

  async #bump(name: 'seq' | 'desired', ctrl: string, atLeast: number | undefined): Promise<number> {
    return Number(await this.#eval(BUMP, [this.#key('ctr', name)], [ctrl, String(Math.max(0, Math.floor(atLeast ?? 0)))]));
  }

  nextSeq(ctrl: string, atLeast?: number): Promise<number> {
    return this.#bump('seq', ctrl, atLeast);
  }

  bumpDesiredVersion(ctrl: string, atLeast?: number): Promise<number> {
    return this.#bump('desired', ctrl, atLeast);
  }

  desiredVersion(ctrl: string): Promise<number> {
    return this.#call(async (r) => Number((await r.hget(this.#key('ctr', 'desired'), ctrl)) ?? 0));
  }

  // ── Event dedupe (PROTOCOL §7.8, DESIGN §8) ───────────────────────────────────────────────

  async classifyEvent(ctrl: string, boot: string, seq: number): Promise<EventSeqVerdict> {
    const key = this.#key('ev', ctrl);
    // Same optimistic pattern as update(): the pure classifier runs here, the CAS in Redis, so
    // two instances of a shared subscription never both take one event (DESIGN §11).
    for (let attempt = 1; ; attempt++) {
      const raw = await this.#call((r) => r.hget(key, boot));
      const r = classifyEventSeq(raw === null ? undefined : (JSON.parse(raw) as EventSeqState), seq);
      if (r.kind === 'duplicate') return { kind: 'duplicate' };
      const written = Number(await this.#eval(CAS_FIELD, [key], [boot, raw ?? '', JSON.stringify(r.state)]));
      if (written === 1) return r.kind === 'new' ? { kind: 'new', missing: r.missing } : { kind: 'late' };
      if (attempt >= MAX_UPDATE_ATTEMPTS) throw new Error(`event seq of ${ctrl}: lost ${attempt} races in a row`);
      if (attempt > 2) await sleep(Math.random() * Math.min(2 ** attempt, 50));
    }
  }

  // ── Scheduler and leases (DESIGN §4, §11) ─────────────────────────────────────────────────

  scheduleAt(key: string, at: number): Promise<void> {
    return this.#call(async (r) => {
      await r.zadd(this.#key('sched'), at, key);
    });
  }

  unschedule(key: string): Promise<void> {
    return this.#call(async (r) => {
      await r.zrem(this.#key('sched'), key);
    });
  }

  due(now: number, limit: number): Promise<{ key: string; at: number }[]> {
    return this.#call(async (r) => {
      if (limit <= 0) return [];
      const flat = await r.zrangebyscore(this.#key('sched'), '-inf', now, 'WITHSCORES', 'LIMIT', 0, Math.floor(limit));
      const out: { key: string; at: number }[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push({ key: flat[i] ?? '', at: Number(flat[i + 1]) });
      return out;
    });
  }

  async acquireLease(name: string, owner: string, ttlMs: number): Promise<boolean> {
    return Number(await this.#eval(ACQUIRE, [this.#key('lease', name)], [owner, Math.max(1, Math.ceil(ttlMs))])) === 1;
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.#eval(RELEASE, [this.#key('lease', name)], [owner]);
  }

  // ── Sessions (DESIGN §7) ──────────────────────────────────────────────────────────────────

  saveRefreshToken(rec: RefreshTokenRecord): Promise<void> {
    return this.#call(async (r) => {
      const key = this.#key('rt', rec.id);
      // The key expires with the token, so spent-by-time tokens clean themselves up.
      if (rec.expiresAt <= Date.now()) await r.del(key);
      else await r.set(key, JSON.stringify(rec), 'PXAT', Math.ceil(rec.expiresAt));
    });
  }

  consumeRefreshToken(id: string): Promise<RefreshTokenRecord | undefined> {
    return this.#call(async (r) => {
      // GETDEL: one command, so of two concurrent callers exactly one gets the token.
      const raw = await r.getdel(this.#key('rt', id));
      return raw === null ? undefined : (JSON.parse(raw) as RefreshTokenRecord);
    });
  }

  revokeRefreshFamily(family: string): Promise<void> {
    return this.#call(async (r) => {
      await r.sadd(this.#key('rfam'), family);
    });
  }

  isRefreshFamilyRevoked(family: string): Promise<boolean> {
    return this.#call(async (r) => (await r.sismember(this.#key('rfam'), family)) === 1);
  }

  async revokeAccessToken(jti: string, until: number): Promise<void> {
    if (until <= Date.now()) return; // already expired: nothing left to refuse
    await this.#eval(REVOKE_UNTIL, [this.#key('jti', jti)], [String(Math.ceil(until))]);
  }

  isAccessTokenRevoked(jti: string): Promise<boolean> {
    return this.#call(async (r) => (await r.exists(this.#key('jti', jti))) === 1);
  }

  // ── Rate limits ───────────────────────────────────────────────────────────────────────────

  hit(key: string, windowMs: number, now: number): Promise<number> {
    return this.#call(async (r) => {
      const k = this.#key('hit', key);
      const replies = await r
        .multi()
        .zremrangebyscore(k, '-inf', now - windowMs)
        .zadd(k, now, `${now}:${randomUUID()}`)
        .zcard(k)
        .pexpire(k, Math.max(1, Math.ceil(windowMs)))
        .exec();
      if (!replies) throw new Error('rate-limit transaction was aborted');
      for (const [err] of replies) if (err) throw err;
      return Number(replies[2]?.[1]);
    });
  }
}
