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

const decimal =
  (min: number, max: number) =>
  (raw: string): Parsed<number> => {
    const n = Number(raw);
    return Number.isFinite(n) && n >= min && n <= max ? { ok: true, value: n } : { ok: false, problem: `must be a number from ${min} to ${max}, got '${raw}'` };
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

/** Every setting the gateway reads, with its default. */
export const CONFIG_SCHEMA = {
  mqttUrl: optional('SP_MQTT_URL', 'use this MQTT broker instead of starting the embedded one', mqttUrl),
  mqttHost: setting('SP_MQTT_HOST', 'interface the embedded broker listens on', '127.0.0.1', host),
  mqttPort: setting('SP_MQTT_PORT', 'port the embedded broker listens on (0 = any free port)', 1883, int(0, 65535)),
  dataDir: setting('SP_DATA_DIR', 'where runtime data (fleet file, controller state) lives', './data', path),
  demoControllers: setting('SP_DEMO_CONTROLLERS', 'controllers in the demo fleet (0 = none)', 15, int(0, 10_000)),
  demoDoors: setting('SP_DEMO_DOORS', 'doors per demo controller', 3, int(1, 64)),
  demoRate: setting('SP_DEMO_RATE', 'demo tag presentations per second across the fleet', 2, decimal(0, 10_000)),
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
  if (problems.length > 0) return { ok: false, problems };
  const notes: string[] = [];
  if (values.mqttUrl !== undefined) {
    for (const s of [CONFIG_SCHEMA.mqttHost, CONFIG_SCHEMA.mqttPort]) {
      if (env[s.env]?.trim()) notes.push(`${s.env} is ignored: SP_MQTT_URL is set, so no embedded broker runs`);
    }
  }
  return { ok: true, config: values as Config, notes };
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
  return Object.values(CONFIG_SCHEMA).map((s) => `${s.env.padEnd(20)} ${s.doc}${s.default === undefined ? '' : ` (default ${String(s.default)})`}`);
}
