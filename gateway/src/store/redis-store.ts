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
 * The audit trail (DESIGN §8), under `a:`. Index members are `<at>:<id>`, `at` in 15 digits and
 * the id in 16, all with score 0: their lex order is the (at, id) order, so ZRANGEBYLEX starts
 * exactly at a query cursor however many entries share a millisecond.
 *   a:id                             string the last audit id given (INCRBY; ids are never reused)
 *   a:e                              hash  audit id → item JSON without its `id`
 *   a:t                              zset  index members of every entry (queries over all chains)
 *   a:c:<chain>                      zset  index members of the chain's entries. Within a chain the
 *                                          (at, id) order is seq order and it holds exactly seqs
 *                                          trimmed+1..size, so seq s is at rank s - trimmed - 1
 *   a:h:<chain>                      hash  the chain's head: size, hash, at, trimmed
 *   a:chains                         set   every chain appended to
 *   a:d                              hash  dedupe key → audit id
 *   a:dk                             hash  audit id → its dedupe key (so a trim can remove it)
 *   a:lo                             string no stored entry has a lower id (raised after trims)
 *   a:cp:<chain>                     zset  checkpoints, score = size, member = JSON
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
import { AUDIT_GENESIS, classifyEventSeq, type AuditCheckpoint, type AuditItem, type EventSeqState, type Logger } from '@smart-passage/protocol';
import {
  INDEXES,
  StoreConflictError,
  StoreUnavailableError,
  UNIQUE,
  type AuditAppend,
  type AuditAppendResult,
  type AuditCursor,
  type AuditHead,
  type AuditPage,
  type AuditQuery,
  type CollectionName,
  type Collections,
  type EventSeqVerdict,
  type ListOptions,
  type RefreshTokenRecord,
  type StorePort,
} from './port.js';
import { MAX_AT, DECIMAL_ID, checkAuditBatch, checkLimit, checkCursor, checkFromSeq, checkAfterId, checkOrder } from './audit-checks.js';

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

// ── Audit trail scripts (DESIGN §8) ─────────────────────────────────────────────────────────────
// Index members are `<at, 15 digits>:<id, 16 digits>` with score 0, so the lex order is the
// (at, id) order and ZRANGEBYLEX starts exactly at any cursor; the id is `string.sub(m, 17)`.

/** Lua: the entries of index members, as a flat list id, JSON (false when trimmed meanwhile). */
const LUA_ENTRIES = `
local function entries(members, hash)
  if #members == 0 then return {} end
  local ids = {}
  for i, m in ipairs(members) do ids[i] = string.format('%d', tonumber(string.sub(m, 17))) end
  local jsons = redis.call('HMGET', hash, unpack(ids))
  local out = {}
  for i = 1, #ids do
    out[2 * i - 1] = ids[i]
    out[2 * i] = jsons[i]
  end
  return out
end
`;

/**
 * Compare-and-append (port auditAppend), all or nothing.
 * KEYS: head, id counter, entries, time index, chain index, dedupe, dedupe by id, chains set.
 * ARGV: expected size, expected hash, genesis, chain, n, last seq, last hash, last at, then per
 * item: at (15 digits), dedupe ('' for none), JSON.
 * Returns {'moved', size, hash, at, trimmed} | {'back', head at} | {'duplicate', index, id} | {'ok', first id}.
 */
const AUDIT_APPEND = script(`
local h = redis.call('HMGET', KEYS[1], 'size', 'hash', 'at', 'trimmed')
local size, hash, at, trimmed = h[1] or '0', h[2] or ARGV[3], h[3] or '0', h[4] or '0'
if size ~= ARGV[1] or hash ~= ARGV[2] then return { 'moved', size, hash, at, trimmed } end
if tonumber(ARGV[9]) < tonumber(at) then return { 'back', at } end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local d = ARGV[10 + 3 * i]
  if d ~= '' then
    local holder = redis.call('HGET', KEYS[6], d)
    if holder then return { 'duplicate', tostring(i), holder } end
  end
end
local first = redis.call('INCRBY', KEYS[2], n) - n + 1
for i = 0, n - 1 do
  local id = string.format('%d', first + i)
  local member = ARGV[9 + 3 * i] .. ':' .. string.format('%016d', first + i)
  redis.call('HSET', KEYS[3], id, ARGV[11 + 3 * i])
  redis.call('ZADD', KEYS[4], 0, member)
  redis.call('ZADD', KEYS[5], 0, member)
  local d = ARGV[10 + 3 * i]
  if d ~= '' then
    redis.call('HSET', KEYS[6], d, id)
    redis.call('HSET', KEYS[7], id, d)
  end
end
redis.call('HSET', KEYS[1], 'size', ARGV[6], 'hash', ARGV[7], 'at', ARGV[8], 'trimmed', trimmed)
redis.call('SADD', KEYS[8], ARGV[4])
return { 'ok', string.format('%d', first) }
`);

/**
 * One chain by seq: seq s sits at rank s - trimmed - 1 of the chain index (its (at, id) order is
 * seq order, and it holds exactly seqs trimmed+1..size), read with the head in one snapshot.
 * KEYS: head, chain index, entries. ARGV: from seq, limit. Returns flat id, JSON.
 */
const AUDIT_RANGE = script(`${LUA_ENTRIES}
local h = redis.call('HMGET', KEYS[1], 'size', 'trimmed')
local size, trimmed = tonumber(h[1] or '0'), tonumber(h[2] or '0')
local from = math.max(math.ceil(tonumber(ARGV[1])), trimmed + 1)
if from > size then return {} end
local rank = from - trimmed - 1
return entries(redis.call('ZRANGE', KEYS[2], rank, rank + tonumber(ARGV[2]) - 1), KEYS[3])
`);

/**
 * Every chain, by id: ids are dense, so read them straight from the entries hash, skipping the
 * gaps trims left (and everything below a:lo at once). Scans at most ARGV[3] ids per call.
 * KEYS: id counter, a:lo, entries. ARGV: after id, limit, scan budget.
 * Returns {next id to look at, last id given, id, JSON, id, JSON, …}.
 */
const AUDIT_SINCE_ALL = script(`
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local pos = math.max(tonumber(ARGV[1]) + 1, tonumber(redis.call('GET', KEYS[2]) or '1'))
local limit, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = { '', string.format('%d', last) }
local found = 0
while found < limit and pos <= last and budget > 0 do
  local n = math.min(limit - found, last - pos + 1, budget)
  local ids = {}
  for i = 1, n do ids[i] = string.format('%d', pos + i - 1) end
  local jsons = redis.call('HMGET', KEYS[3], unpack(ids))
  for i = 1, n do
    if jsons[i] then
      out[#out + 1] = ids[i]
      out[#out + 1] = jsons[i]
      found = found + 1
    end
  end
  pos = pos + n
  budget = budget - n
end
out[1] = string.format('%d', pos)
return out
`);

/**
 * Some chains, by id. Within a chain the index order is id order, so a binary search by rank
 * finds each chain's first id after the cursor; the chains' next `limit` ids are merged.
 * KEYS: chain indexes…, entries (last). ARGV: after id (16 digits), limit. Returns flat id, JSON.
 */
const AUDIT_SINCE_CHAINS = script(`${LUA_ENTRIES}
local after, limit = ARGV[1], tonumber(ARGV[2])
local picked = {}
for k = 1, #KEYS - 1 do
  local key = KEYS[k]
  local last = redis.call('ZRANGE', key, -1, -1)[1]
  if last and string.sub(last, 17) > after then
    local lo, hi = 0, redis.call('ZCARD', key) - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if string.sub(redis.call('ZRANGE', key, mid, mid)[1], 17) > after then hi = mid else lo = mid + 1 end
    end
    for _, m in ipairs(redis.call('ZRANGE', key, lo, lo + limit - 1)) do picked[#picked + 1] = string.sub(m, 17) .. m end
  end
end
table.sort(picked)
local members = {}
for i = 1, math.min(limit, #picked) do members[i] = string.sub(picked[i], 17) end
return entries(members, KEYS[#KEYS])
`);

/**
 * Remove a chain's oldest entries, at most ARGV[2] per call (so a large trim never blocks Redis
 * for long), with their index members and dedupe keys; head.trimmed moves with them.
 * KEYS: head, chain index, time index, entries, dedupe, dedupe by id. ARGV: up to seq, chunk.
 * Returns {removed, 1 when more remain to remove}.
 */
const AUDIT_TRIM = script(`
local h = redis.call('HMGET', KEYS[1], 'size', 'trimmed')
local size, trimmed = tonumber(h[1] or '0'), tonumber(h[2] or '0')
local target = math.min(math.floor(tonumber(ARGV[1])), size)
if target <= trimmed then return { 0, 0 } end
local n = math.min(target - trimmed, tonumber(ARGV[2]))
local members = redis.call('ZRANGE', KEYS[2], 0, n - 1)
if #members > 0 then
  local ids = {}
  for i, m in ipairs(members) do ids[i] = string.format('%d', tonumber(string.sub(m, 17))) end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, #members - 1)
  redis.call('ZREM', KEYS[3], unpack(members))
  redis.call('HDEL', KEYS[4], unpack(ids))
  local dedupes = {}
  for _, d in ipairs(redis.call('HMGET', KEYS[6], unpack(ids))) do
    if d then dedupes[#dedupes + 1] = d end
  end
  if #dedupes > 0 then redis.call('HDEL', KEYS[5], unpack(dedupes)) end
  redis.call('HDEL', KEYS[6], unpack(ids))
end
redis.call('HSET', KEYS[1], 'trimmed', string.format('%d', trimmed + n))
if trimmed + n < target then return { #members, 1 } end
return { #members, 0 }
`);

/**
 * After a trim: raise a:lo to the lowest id still stored (or the next id to be given), so
 * auditSince skips the gap trims leave at the start. KEYS: id counter, a:lo, chains set.
 * ARGV: key prefix of the chain indexes (`<prefix>a:c:`).
 */
const AUDIT_RAISE_LO = script(`
local lo = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
for _, c in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local m = redis.call('ZRANGE', ARGV[1] .. c, 0, 0)[1]
  if m then lo = math.min(lo, tonumber(string.sub(m, 17))) end
end
if lo > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], string.format('%d', lo)) end
return 0
`);

/** KEYS: checkpoints zset. ARGV: size, JSON. The first checkpoint of a size stays. */
const AUDIT_PUT_CHECKPOINT = script(`
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) == 0 then redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end
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

// ── Audit helpers (the embedded store holds the same checks: both stores must refuse alike) ────

/** Index members hold `at` in 15 digits and the id in 16 (see the key layout). */
const AT_DIGITS = 15;
const ID_DIGITS = 16;
/** auditQuery with filters examines at most this many index entries per call (port AuditPage). */
const QUERY_WINDOW = 1000;
/** Up to this many chains a query merges their own indexes; beyond, it filters the time index. */
const MERGE_MAX_CHAINS = 16;
/** Ids one auditSince script call may look at before it hands back (gaps left by trims). */
const SINCE_SCAN_BUDGET = 10_000;
/** Entries one trim script call removes. */
const TRIM_CHUNK = 500;

const padAt = (at: number): string => String(at).padStart(AT_DIGITS, '0');
const padId = (id: number | string): string => String(id).padStart(ID_DIGITS, '0');
const memberOf = (at: number, id: string): string => `${padAt(at)}:${padId(Number(id))}`;
const idOfMember = (member: string): string => String(Number(member.slice(AT_DIGITS + 1)));
const cursorOfMember = (member: string): AuditCursor => ({ at: Number(member.slice(0, AT_DIGITS)), id: idOfMember(member) });

/** The stored form: the item without its `id` (the entries hash is keyed by it). */
function storedJson(item: AuditItem): string {
  const { id: _id, ...rest } = item;
  return JSON.stringify(rest);
}

function itemOf(id: string, json: string): AuditItem {
  return { ...(JSON.parse(json) as Omit<AuditItem, 'id'>), id };
}

/** A script's flat id, JSON list; entries trimmed meanwhile (null) are left out. */
function itemsOf(flat: readonly (string | null)[]): AuditItem[] {
  const out: AuditItem[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const json = flat[i + 1];
    if (json !== null && json !== undefined) out.push(itemOf(flat[i]!, json));
  }
  return out;
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

  // ── Audit trail (DESIGN §8) ───────────────────────────────────────────────────────────────

  #auditKeys(chain: string): { head: string; index: string } {
    return { head: this.#key('a', 'h', chain), index: this.#key('a', 'c', chain) };
  }

  auditHead(chain: string): Promise<AuditHead> {
    return this.#call(async (r) => {
      const [size, hash, at, trimmed] = await r.hmget(this.#auditKeys(chain).head, 'size', 'hash', 'at', 'trimmed');
      return { size: Number(size ?? 0), hash: hash ?? AUDIT_GENESIS, at: Number(at ?? 0), trimmed: Number(trimmed ?? 0) };
    });
  }

  async auditAppend(chain: string, expected: Pick<AuditHead, 'size' | 'hash'>, batch: readonly AuditAppend[]): Promise<AuditAppendResult> {
    checkAuditBatch(chain, expected, batch);
    const { head, index } = this.#auditKeys(chain);
    const last = batch[batch.length - 1]!.item;
    const args: (string | number)[] = [String(expected.size), expected.hash, AUDIT_GENESIS, chain, batch.length, String(last.seq), last.hash, String(last.at)];
    for (const { item, dedupe } of batch) args.push(padAt(item.at), dedupe ?? '', storedJson(item));
    const reply = (await this.#eval(
      AUDIT_APPEND,
      [head, this.#key('a', 'id'), this.#key('a', 'e'), this.#key('a', 't'), index, this.#key('a', 'd'), this.#key('a', 'dk'), this.#key('a', 'chains')],
      args,
    )) as string[];
    const [status, a, b, c, d] = reply;
    if (status === 'ok') {
      const first = Number(a);
      return { kind: 'ok', ids: batch.map((_, i) => String(first + i)) };
    }
    if (status === 'moved') return { kind: 'moved', head: { size: Number(a), hash: b ?? '', at: Number(c), trimmed: Number(d) } };
    if (status === 'duplicate') return { kind: 'duplicate', index: Number(a), id: b ?? '' };
    if (status === 'back') throw new Error(`audit append to ${chain}: at ${batch[0]!.item.at} is before the head's ${a ?? '?'}`);
    throw new Error(`unexpected reply from the audit append script: ${String(status)}`);
  }

  auditGet(id: string): Promise<AuditItem | undefined> {
    return this.#call(async (r) => {
      if (!DECIMAL_ID.test(id)) return undefined;
      const canonical = String(Number(id));
      const json = await r.hget(this.#key('a', 'e'), canonical);
      return json === null ? undefined : itemOf(canonical, json);
    });
  }

  /**
   * Scans a bounded window of the (at, id) order (ZRANGEBYLEX), or of its reverse for 'desc'
   * (ZREVRANGEBYLEX on the same members); `from`, `to` and the cursor are index bounds, the other
   * filters are applied in JS to what the window holds. Both orders use the same windows:
   * - No chains, or up to MERGE_MAX_CHAINS: read from the time index (a:t), or merged from the
   *   chains' own indexes. Without `types`/`incidentId` the window is `limit` entries, so pages
   *   are full; with them it is about QUERY_WINDOW entries (each of k chains gives
   *   QUERY_WINDOW / k, the merge stops where one of them runs out).
   * - More chains: the time index, QUERY_WINDOW entries, the chain filter applied in JS too.
   * A page holds the matches of its window, up to `limit`; `next` is the last returned item when
   * the page is full, else the last entry examined (both in the page's order), and is absent only
   * when the window reached the end of the range (its start, for 'desc').
   */
  async auditQuery(q: AuditQuery): Promise<AuditPage> {
    const limit = checkLimit(q.limit, 'auditQuery');
    const desc = checkOrder(q.order) === 'desc';
    const after = q.after === undefined ? undefined : checkCursor(q.after);
    for (const [name, v] of [['from', q.from], ['to', q.to]] as const) {
      if (v !== undefined && !Number.isFinite(v)) throw new RangeError(`auditQuery: ${name} must be a finite number`);
    }
    const chains = q.chains === undefined ? undefined : [...new Set(q.chains)];
    if (chains?.length === 0 || q.types?.length === 0) return { items: [] };
    const from = Math.max(0, Math.ceil(q.from ?? 0));
    const to = Math.min(MAX_AT, Math.floor(q.to ?? MAX_AT));
    if (from > to) return { items: [] };
    // ZRANGEBYLEX bounds: `[` + 15 digits sorts before every member of that millisecond.
    let min = from > 0 ? `[${padAt(from)}` : '-';
    let max = to < MAX_AT ? `(${padAt(to + 1)}` : '+';
    if (after) {
      // The cursor narrows the side the page moves away from: the lower bound ascending, the upper descending.
      const cursor = memberOf(after.at, after.id);
      if (!desc && (min === '-' || cursor >= min.slice(1))) min = `(${cursor}`;
      if (desc && (max === '+' || cursor <= max.slice(1))) max = `(${cursor}`;
    }
    const types = q.types === undefined ? undefined : new Set(q.types);
    const filtered = types !== undefined || q.incidentId !== undefined;
    /** `a` comes before `b` in the page's order. */
    const before = (a: string, b: string): boolean => (desc ? a > b : a < b);

    return this.#call(async (r) => {
      let examined: string[];
      let more: boolean;
      let chainFilter: Set<string> | undefined;
      if (chains === undefined || chains.length > MERGE_MAX_CHAINS) {
        chainFilter = chains === undefined ? undefined : new Set(chains);
        const n = filtered || chainFilter ? QUERY_WINDOW : limit;
        const key = this.#key('a', 't');
        const members = desc ? await r.zrevrangebylex(key, max, min, 'LIMIT', 0, n + 1) : await r.zrangebylex(key, min, max, 'LIMIT', 0, n + 1);
        more = members.length > n;
        examined = members.slice(0, n);
      } else {
        // k-way merge: each chain gives its next m in the page's order (+1 to see whether it has
        // more). Past the earliest (in that order) last member of a chain that has more, another
        // of its entries could come first, so the page stops there.
        const m = filtered ? Math.max(1, Math.ceil(QUERY_WINDOW / chains.length)) : limit;
        const p = r.pipeline();
        for (const chain of chains) {
          const key = this.#auditKeys(chain).index;
          if (desc) p.zrevrangebylex(key, max, min, 'LIMIT', 0, m + 1);
          else p.zrangebylex(key, min, max, 'LIMIT', 0, m + 1);
        }
        const replies = (await p.exec()) ?? [];
        let bound: string | undefined;
        const all: string[] = [];
        for (const [err, value] of replies) {
          if (err) throw err;
          const list = value as string[];
          if (list.length > m) {
            list.length = m;
            const lastKept = list[m - 1]!;
            if (bound === undefined || before(lastKept, bound)) bound = lastKept;
          }
          all.push(...list);
        }
        all.sort();
        if (desc) all.reverse();
        examined = bound === undefined ? all : all.filter((x) => x === bound || before(x, bound));
        more = bound !== undefined;
      }
      if (examined.length === 0) return { items: [] };
      const jsons = await r.hmget(this.#key('a', 'e'), ...examined.map(idOfMember));
      const items: AuditItem[] = [];
      for (const [i, member] of examined.entries()) {
        const json = jsons[i];
        if (json === null || json === undefined) continue; // trimmed since the index was read
        const item = itemOf(idOfMember(member), json);
        if (chainFilter && !chainFilter.has(item.chain)) continue;
        if (types && !types.has(item.type)) continue;
        if (q.incidentId !== undefined && item.incidentId !== q.incidentId) continue;
        items.push(item);
        if (items.length === limit) {
          const rest = more || i < examined.length - 1;
          return { items, ...(rest ? { next: cursorOfMember(member) } : {}) };
        }
      }
      return { items, ...(more ? { next: cursorOfMember(examined[examined.length - 1]!) } : {}) };
    });
  }

  async auditRange(chain: string, fromSeq: number, limit: number): Promise<AuditItem[]> {
    checkLimit(limit, 'auditRange');
    checkFromSeq(fromSeq);
    const { head, index } = this.#auditKeys(chain);
    return itemsOf((await this.#eval(AUDIT_RANGE, [head, index, this.#key('a', 'e')], [fromSeq, limit])) as (string | null)[]);
  }

  async auditSince(afterId: string, limit: number, chains?: readonly string[]): Promise<AuditItem[]> {
    checkLimit(limit, 'auditSince');
    const after = checkAfterId(afterId);
    if (after >= 10 ** ID_DIGITS || chains?.length === 0) return [];
    if (chains !== undefined) {
      const keys = [...new Set(chains)].map((c) => this.#auditKeys(c).index);
      return itemsOf((await this.#eval(AUDIT_SINCE_CHAINS, [...keys, this.#key('a', 'e')], [padId(after), limit])) as (string | null)[]);
    }
    // Each call scans a bounded stretch of ids; keep going while gaps left the page short.
    const out: AuditItem[] = [];
    for (let pos = after; ; ) {
      const reply = (await this.#eval(
        AUDIT_SINCE_ALL,
        [this.#key('a', 'id'), this.#key('a', 'lo'), this.#key('a', 'e')],
        [pos, limit - out.length, SINCE_SCAN_BUDGET],
      )) as (string | null)[];
      const next = Number(reply[0]);
      const last = Number(reply[1]);
      out.push(...itemsOf(reply.slice(2)));
      if (out.length >= limit || next > last) return out;
      pos = next - 1;
    }
  }

  auditChains(): Promise<string[]> {
    return this.#call(async (r) => (await r.smembers(this.#key('a', 'chains'))).sort());
  }

  async auditPutCheckpoint(cp: AuditCheckpoint): Promise<void> {
    await this.#eval(AUDIT_PUT_CHECKPOINT, [this.#key('a', 'cp', cp.chain)], [cp.size, JSON.stringify(cp)]);
  }

  async auditCheckpoints(chain: string, o: { minSize?: number; maxSize?: number; order: 'asc' | 'desc'; limit: number }): Promise<AuditCheckpoint[]> {
    const limit = checkLimit(o.limit, 'auditCheckpoints');
    return await this.#call(async (r) => {
      const key = this.#key('a', 'cp', chain);
      const min = o.minSize ?? '-inf';
      const max = o.maxSize ?? '+inf';
      const raw =
        o.order === 'desc' ? await r.zrevrangebyscore(key, max, min, 'LIMIT', 0, limit) : await r.zrangebyscore(key, min, max, 'LIMIT', 0, limit);
      return raw.map((json) => JSON.parse(json) as AuditCheckpoint);
    });
  }

  /** Trims in chunks of TRIM_CHUNK entries: each chunk is atomic, and every state between is a smaller trim. */
  async auditTrim(chain: string, uptoSeq: number): Promise<number> {
    if (!Number.isFinite(uptoSeq)) throw new RangeError(`auditTrim: uptoSeq must be a finite number, got ${uptoSeq}`);
    const { head, index } = this.#auditKeys(chain);
    const keys = [head, index, this.#key('a', 't'), this.#key('a', 'e'), this.#key('a', 'd'), this.#key('a', 'dk')];
    let removed = 0;
    for (;;) {
      const [n, again] = (await this.#eval(AUDIT_TRIM, keys, [Math.floor(uptoSeq), TRIM_CHUNK])) as [number, number];
      removed += n;
      if (again !== 1) break;
    }
    if (removed > 0) {
      await this.#eval(AUDIT_RAISE_LO, [this.#key('a', 'id'), this.#key('a', 'lo'), this.#key('a', 'chains')], [this.#key('a', 'c', '')]);
    }
    return removed;
  }
}
