/**
 * Gateway configuration: environment variables with one prefix (`SP_…`), described once in
 * CONFIG_SCHEMA, from which both the checks and the `Config` type come (STYLE.md: never a config
 * type written apart from its schema). Every problem is reported at once; main prints them and
 * exits 1.
 */
import type { LogLevel } from '@smart-passage/protocol';

type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

interface Setting<T> {
  env: string;
  doc: string;
  /** undefined: optional, absent unless set. */
  default: T | undefined;
  parse: (raw: string) => Parsed<T>;
}

function setting<T>(env: string, doc: string, fallback: T, parse: (raw: string) => Parsed<T>): Setting<T> {
  return { env, doc, default: fallback, parse };
}
function optional<T>(env: string, doc: string, parse: (raw: string) => Parsed<T>): Setting<T | undefined> {
  return { env, doc, default: undefined, parse };
}

const int =
  (min: number, max: number) =>
  (raw: string): Parsed<number> => {
    if (!/^-?\d+$/.test(raw)) return { ok: false, problem: `must be a whole number from ${min} to ${max}, got '${raw}'` };
    const n = Number(raw);
    return Number.isSafeInteger(n) && n >= min && n <= max ? { ok: true, value: n } : { ok: false, problem: `must be from ${min} to ${max}, got ${raw}` };
  };

const oneOf =
  <const T extends readonly string[]>(values: T) =>
  (raw: string): Parsed<T[number]> =>
    values.includes(raw) ? { ok: true, value: raw } : { ok: false, problem: `must be one of ${values.join('|')}, got '${raw}'` };

const host = (raw: string): Parsed<string> =>
  /^[A-Za-z0-9.:-]{1,253}$/.test(raw) ? { ok: true, value: raw } : { ok: false, problem: `must be a host name or IP address, got '${raw}'` };

const path = (raw: string): Parsed<string> => ({ ok: true, value: raw });

const mqttUrl = (raw: string): Parsed<string> => {
  try {
    const u = new URL(raw);
    if ((u.protocol === 'mqtt:' || u.protocol === 'mqtts:') && u.hostname !== '') return { ok: true, value: raw };
  } catch {
    // reported below
  }
  return { ok: false, problem: `must be an mqtt:// or mqtts:// URL such as mqtt://127.0.0.1:1883, got '${redactUrl(raw)}'` };
};

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const satisfies readonly LogLevel[];

const redisUrl = (raw: string): Parsed<string> => {
  try {
    const u = new URL(raw);
    if ((u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '') return { ok: true, value: raw };
  } catch {
    // reported below
  }
  return { ok: false, problem: `must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379, got '${redactUrl(raw)}'` };
};

/** A Redis key prefix: it also goes into MQTT client ids and a share group name, so plain characters only. */
const redisPrefix = (raw: string): Parsed<string> =>
  /^[A-Za-z0-9:_.-]{1,64}$/.test(raw) ? { ok: true, value: raw } : { ok: false, problem: `must be 1 to 64 of A-Z a-z 0-9 : _ . -, got '${raw}'` };

const instanceId = (raw: string): Parsed<string> =>
  /^[A-Za-z0-9_.-]{1,32}$/.test(raw) ? { ok: true, value: raw } : { ok: false, problem: `must be 1 to 32 of A-Z a-z 0-9 _ . -, got '${raw}'` };

/**
 * A map tile URL template (Leaflet's): https only, with {z}, {x} and {y}; `{s}` may stand for a
 * subdomain. Its origin goes into the UI's CSP img-src (tileOrigin).
 */
const tileUrl = (raw: string): Parsed<string> => {
  const bad: Parsed<string> = { ok: false, problem: `must be an https URL template with {z}, {x} and {y}, such as https://tile.openstreetmap.org/{z}/{x}/{y}.png, got '${redactUrl(raw)}'` };
  if (!raw.startsWith('https://') || !['{z}', '{x}', '{y}'].every((p) => raw.includes(p))) return bad;
  try {
    tileOrigin(raw);
    return { ok: true, value: raw };
  } catch {
    return bad;
  }
};

/** A bearer secret (SP_METRICS_TOKEN): long enough not to guess, and sendable in a header as is. */
const secret = (raw: string): Parsed<string> =>
  /^[\x21-\x7e]{16,512}$/.test(raw) ? { ok: true, value: raw } : { ok: false, problem: 'must be 16 to 512 printable ASCII characters without spaces (e.g. openssl rand -hex 32)' };

const list = (raw: string): Parsed<string[]> => ({ ok: true, value: raw.split(',').map((x) => x.trim()).filter(Boolean) });
const text = (max: number) => (raw: string): Parsed<string> => (raw.length <= max ? { ok: true, value: raw } : { ok: false, problem: `must be at most ${max} characters` });

/** Every setting the gateway reads, with its default. */
export const CONFIG_SCHEMA = {
  host: setting('SP_HOST', 'interface the HTTP API and UI listen on', '127.0.0.1', host),
  port: setting('SP_PORT', 'port of the HTTP API and UI (0 = any free port)', 8080, int(0, 65535)),
  mqttUrl: optional('SP_MQTT_URL', 'use this MQTT broker instead of starting the embedded one', mqttUrl),
  mqttUsername: optional('SP_MQTT_USERNAME', "the gateway's user on the SP_MQTT_URL broker", text(128)),
  mqttPasswordFile: optional('SP_MQTT_PASSWORD_FILE', "file holding the gateway's password on the SP_MQTT_URL broker", path),
  mqttAccounts: setting(
    'SP_MQTT_ACCOUNTS',
    "none|dynsec: who keeps controllers' accounts on the SP_MQTT_URL broker — the operator (none), or the gateway through Mosquitto 2's Dynamic Security plugin (dynsec; SP_MQTT_USERNAME must be allowed its $CONTROL/dynamic-security/# API, deploy/secrets/README.md)",
    'none',
    oneOf(['none', 'dynsec'] as const),
  ),
  mqttEvents: setting(
    'SP_MQTT_EVENTS',
    "all|shared: how instances sharing SP_REDIS_URL take controller events — each takes every event (all; deduplicated, safe across broker restarts) or one $share group per deployment spreads them (shared; on Mosquitto 2.0 events sent between a broker restart and the gateways' re-subscribe are lost, and a dead instance's share waits for it to return under its SP_INSTANCE_ID)",
    'all',
    oneOf(['all', 'shared'] as const),
  ),
  mqttHost: setting('SP_MQTT_HOST', 'interface the embedded broker listens on', '127.0.0.1', host),
  mqttPort: setting('SP_MQTT_PORT', 'port the embedded broker listens on (0 = any free port)', 1883, int(0, 65535)),
  redisUrl: optional('SP_REDIS_URL', 'keep state in this Redis instead of the embedded store', redisUrl),
  redisPrefix: setting('SP_REDIS_PREFIX', 'key prefix in SP_REDIS_URL: one per deployment, shared by its instances (also part of its MQTT client ids)', 'sp:', redisPrefix),
  instanceId: optional('SP_INSTANCE_ID', "this instance's name among those sharing SP_REDIS_URL (part of its MQTT client id; default the host name): set it apart for instances on one host", instanceId),
  dataDir: setting('SP_DATA_DIR', 'where runtime data (embedded store, generated keys, demo secrets) lives', './data', path),
  demo: optional('SP_DEMO', 'on|off: seed and run the demo district (default on for the embedded setup, off otherwise)', oneOf(['on', 'off'] as const)),
  adminUser: optional('SP_ADMIN_USER', 'username of the first admin (created at start if missing)', text(64)),
  adminPassword: optional('SP_ADMIN_PASSWORD', "the first admin's password", text(256)),
  corsOrigins: setting('SP_CORS_ORIGINS', 'comma-separated origins allowed to call the API from a browser', [] as string[], list),
  trustProxy: setting('SP_TRUST_PROXY', 'how many reverse proxies (TLS terminators) sit in front: their X-Forwarded-For/-Proto are trusted for client addresses (login limits) and HTTPS (0 = none)', 0, int(0, 10)),
  auditCheckpointEntries: setting('SP_AUDIT_CHECKPOINT_ENTRIES', 'sign an audit checkpoint after this many entries of a chain', 1000, int(1, 1_000_000)),
  auditCheckpointSeconds: setting('SP_AUDIT_CHECKPOINT_SECONDS', '…or after this many seconds when a chain moved', 60, int(1, 86_400)),
  auditRetentionDays: setting('SP_AUDIT_RETENTION_DAYS', 'archive (export) then trim audit entries older than this; 0 keeps everything', 0, int(0, 36_500)),
  auditArchiveDir: optional('SP_AUDIT_ARCHIVE_DIR', 'where trimmed audit entries are archived as verifiable exports (default <SP_DATA_DIR>/audit-archive)', path),
  tileUrl: optional('SP_TILE_URL', 'map tile URL template (https, with {z}/{x}/{y}) drawn over the offline base layer; its origin is allowed in the UI\'s CSP', tileUrl),
  tileAttribution: optional('SP_TILE_ATTRIBUTION', 'attribution shown with the SP_TILE_URL tiles (e.g. © OpenStreetMap contributors)', text(300)),
  basemapFile: optional('SP_BASEMAP_FILE', 'GeoJSON FeatureCollection to use as the offline base layer instead of the demo district\'s', path),
  metricsToken: optional('SP_METRICS_TOKEN', 'bearer token a Prometheus scraper must send to GET /metrics; unset, /metrics is off (404)', secret),
  webhookBackoffMs: setting('SP_WEBHOOK_BACKOFF_MS', 'first retry delay of a failed webhook; each retry waits twice as long (capped at 1 h)', 1000, int(10, 3_600_000)),
  webhookMaxAttempts: setting('SP_WEBHOOK_MAX_ATTEMPTS', 'attempts before a webhook delivery is failed (also given up 24 h after the event)', 20, int(1, 100)),
  webhookAllowHttp: setting('SP_WEBHOOK_ALLOW_HTTP', 'on|off: accept http:// webhook URLs (default off: https only)', 'off', oneOf(['on', 'off'] as const)),
  drillMaxAgeDays: setting('SP_DRILL_MAX_AGE_DAYS', 'a passed readiness drill older than this makes its building degraded (DESIGN §9); 0 = never too old', 0, int(0, 3650)),
  logLevel: setting('SP_LOG_LEVEL', 'debug|info|warn|error (logs go to stderr)', 'info', oneOf(LOG_LEVELS)),
} as const;

type Schema = typeof CONFIG_SCHEMA;
export type Config = { [K in keyof Schema]: Schema[K] extends Setting<infer T> ? T : never };

export type ConfigResult = { ok: true; config: Config; notes: string[] } | { ok: false; problems: string[] };

/**
 * Read the configuration from an environment. An empty variable counts as unset.
 * @example loadConfig({ SP_MQTT_PORT: 'abc' }) → { ok: false, problems: ["SP_MQTT_PORT must be a whole number …"] }
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): ConfigResult {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(CONFIG_SCHEMA) as [keyof Schema, Setting<unknown>][]) {
    const raw = env[s.env]?.trim();
    if (raw === undefined || raw === '') {
      values[key] = s.default;
      continue;
    }
    const parsed = s.parse(raw);
    if (parsed.ok) values[key] = parsed.value;
    else problems.push(`${s.env} ${parsed.problem}`);
  }
  if ((values.adminUser === undefined) !== (values.adminPassword === undefined)) problems.push('SP_ADMIN_USER and SP_ADMIN_PASSWORD go together: set both or neither');
  if (values.mqttEvents === 'shared' && (values.mqttUrl === undefined || values.redisUrl === undefined)) problems.push('SP_MQTT_EVENTS=shared needs SP_MQTT_URL and SP_REDIS_URL: it spreads events over instances sharing a broker and Redis (aedes has no shared subscriptions)');
  if (values.mqttAccounts === 'dynsec' && values.mqttUrl === undefined) problems.push('SP_MQTT_ACCOUNTS=dynsec needs SP_MQTT_URL: the embedded broker checks controllers itself');
  if (values.mqttAccounts === 'dynsec' && values.mqttUrl !== undefined && values.mqttUsername === undefined) problems.push('SP_MQTT_ACCOUNTS=dynsec needs SP_MQTT_USERNAME (and SP_MQTT_PASSWORD_FILE): the broker account allowed to use the Dynamic Security API');
  if (problems.length > 0) return { ok: false, problems };
  const notes: string[] = [];
  if (values.mqttUrl !== undefined) {
    for (const s of [CONFIG_SCHEMA.mqttHost, CONFIG_SCHEMA.mqttPort]) {
      if (env[s.env]?.trim()) notes.push(`${s.env} is ignored: SP_MQTT_URL is set, so no embedded broker runs`);
    }
  }
  if (values.tileAttribution !== undefined && values.tileUrl === undefined) notes.push('SP_TILE_ATTRIBUTION is ignored: SP_TILE_URL is not set');
  return { ok: true, config: values as Config, notes };
}

/**
 * The origin a tile URL template loads from, as CSP wants it: `https://tile.example.org`, or
 * `https://*.tile.example.org` for a `{s}.` subdomain template. Throws on anything else.
 * @example tileOrigin('https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png') → 'https://*.tile.openstreetmap.org'
 */
export function tileOrigin(template: string): string {
  const wildcard = template.startsWith('https://{s}.');
  const u = new URL(template.replace('{s}', 'a').replace(/\{[a-z]+\}/g, '0'));
  if (u.protocol !== 'https:' || u.hostname === '' || u.username !== '' || u.password !== '') throw new Error('not an https origin');
  const host = wildcard ? `*.${u.host.slice(2)}` : u.host;
  if (!/^(?:\*\.)?[a-z0-9.-]+(?::\d{1,5})?$/i.test(host)) throw new Error('not a plain host');
  return `https://${host}`;
}

/** A URL fit to print: any password replaced (DESIGN §7: secrets are never logged). */
export function redactUrl(text: string): string {
  try {
    const u = new URL(text);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return text.replace(/\/\/[^/@]*@/, '//***@');
  }
}

/** One line per setting, for `--help`-style listings and the banner. */
export function describeConfig(): string[] {
  return Object.values(CONFIG_SCHEMA).map((s) => `${s.env.padEnd(22)} ${s.doc}${s.default === undefined || (Array.isArray(s.default) && s.default.length === 0) ? '' : ` (default ${String(s.default)})`}`);
}
