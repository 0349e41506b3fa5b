/**
 * `sp-sim` command line: parsed and checked as a whole, so a user sees every problem in one run
 * (STYLE.md). Pure: no I/O, no randomness; the CLI turns the result into a running fleet.
 */
import { intOption, LOG_LEVELS, numberOption, parseOptions, stringOption, type OptionSpec } from '../cli/options.js';
import type { LogLevel } from '../log.js';

export const SIMULATOR_USAGE = `Usage: sp-sim [fleet] [options]

Runs a fleet of reference controllers (DESIGN §5.8) against an MQTT broker, with responders
presenting tags at random doors, and prints a live summary.

Fleet (pick one; default: generate 10 controllers with 3 doors):
  --controllers N      generate N controllers (ids sim-0001 …) with fresh keys, and write the
                       fleet file <data-dir>/fleet.json (mode 0600) for a gateway or sp-conformance
  --doors M            doors per generated controller, d1 … dM (default 3)
  --prefix P           generated controller id prefix (default sim)
  --bundles DIR        one provisioning bundle (§5.9) JSON per file in DIR
  --fleet FILE         a fleet file {gateway, controllers:[bundles]}

Options:
  --url URL            MQTT broker, mqtt:// or mqtts:// (default mqtt://127.0.0.1:1883; with
                       --bundles/--fleet, default each bundle's own URL)
  --state memory|file  controller state in memory (default) or one file per controller under
                       <data-dir>/state/
  --data-dir DIR       where the fleet file and state files go (default ./data/sim)
  --tags A,B,C         responders' tag uids (hex), or
  --tag-count K        K generated tag uids (default 8)
  --rate R             presentations per second across the fleet (default 5; 0 = none)
  --duration S         run S seconds, then print the summary and stop (default 0 = until Ctrl-C)
  --concurrency C      controllers connecting at once (default 50)
  --grant-demo         act as a stand-in dispatcher: sign grants.sync messages granting some of
                       the tags for 60 s, so presentations get granted (needs the gateway key:
                       generated fleet or --fleet)
  --log-level L        debug|info|warn|error, logs on stderr (default warn)
  -h, --help           this text
`;

export const SIMULATOR_OPTIONS = {
  controllers: { type: 'string' },
  doors: { type: 'string' },
  prefix: { type: 'string' },
  bundles: { type: 'string' },
  fleet: { type: 'string' },
  url: { type: 'string' },
  state: { type: 'string' },
  'data-dir': { type: 'string' },
  tags: { type: 'string' },
  'tag-count': { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  concurrency: { type: 'string' },
  'grant-demo': { type: 'boolean' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export type FleetSource =
  | { kind: 'generate'; controllers: number; doors: number; prefix: string }
  | { kind: 'bundles'; dir: string }
  | { kind: 'fleet'; file: string };

export interface SimulatorArgs {
  source: FleetSource;
  /** Given with --url; undefined means "the default for the source". */
  url: string | undefined;
  state: 'memory' | 'file';
  dataDir: string;
  /** Explicit uids (upper-cased), or how many to generate. */
  tags: { kind: 'list'; uids: string[] } | { kind: 'count'; count: number };
  rate: number;
  durationSeconds: number;
  concurrency: number;
  grantDemo: boolean;
  logLevel: LogLevel;
}

export type ParsedSimulatorArgs = { kind: 'help' } | { kind: 'run'; args: SimulatorArgs } | { kind: 'invalid'; problems: string[] };

export const DEFAULT_MQTT_URL = 'mqtt://127.0.0.1:1883';

/**
 * @example parseSimulatorArgs(['--controllers', '1000', '--rate', '50', '--grant-demo'])
 *   → { kind: 'run', args: { source: { kind: 'generate', controllers: 1000, … }, … } }
 */
export function parseSimulatorArgs(argv: readonly string[]): ParsedSimulatorArgs {
  const { values, problems } = parseOptions(argv, SIMULATOR_OPTIONS);
  if (values.help === true) return { kind: 'help' };

  const bundles = stringOption(values, 'bundles');
  const fleet = stringOption(values, 'fleet');
  const generatedOnly = (['controllers', 'doors', 'prefix'] as const).filter((k) => values[k] !== undefined);
  if (bundles !== undefined && fleet !== undefined) problems.push('--bundles and --fleet cannot be used together');
  if ((bundles !== undefined || fleet !== undefined) && generatedOnly.length > 0) {
    problems.push(`${generatedOnly.map((k) => `--${k}`).join(', ')} only apply when generating a fleet, not with --bundles/--fleet`);
  }
  const controllers = intOption(values, 'controllers', { min: 1, max: 100_000, fallback: 10 }, problems);
  const doors = intOption(values, 'doors', { min: 1, max: 64, fallback: 3 }, problems);
  const prefix = stringOption(values, 'prefix') ?? 'sim';
  // The id becomes an MQTT username and topic level (schemas.ControllerId), so keep it to that alphabet.
  if (!/^[a-z0-9][a-z0-9-]{0,50}$/.test(prefix)) problems.push(`--prefix must be lower-case letters, digits and '-' (≤ 51), got '${prefix}'`);
  for (const [name, v] of [['bundles', bundles], ['fleet', fleet]] as const) {
    if (v !== undefined && v.trim() === '') problems.push(`--${name} needs a path`);
  }
  const source: FleetSource =
    bundles !== undefined ? { kind: 'bundles', dir: bundles } : fleet !== undefined ? { kind: 'fleet', file: fleet } : { kind: 'generate', controllers, doors, prefix };

  const url = stringOption(values, 'url');
  if (url !== undefined && !isMqttUrl(url)) problems.push(`--url must be an mqtt:// or mqtts:// URL, got '${url}'`);

  const stateRaw = stringOption(values, 'state') ?? 'memory';
  if (stateRaw !== 'memory' && stateRaw !== 'file') problems.push(`--state must be memory or file, got '${stateRaw}'`);
  const state = stateRaw === 'file' ? 'file' : 'memory';

  const dataDir = stringOption(values, 'data-dir') ?? './data/sim';
  if (dataDir.trim() === '') problems.push('--data-dir needs a path');

  const tagsRaw = stringOption(values, 'tags');
  if (tagsRaw !== undefined && values['tag-count'] !== undefined) problems.push('--tags and --tag-count cannot be used together');
  const tagCount = intOption(values, 'tag-count', { min: 1, max: 10_000, fallback: 8 }, problems);
  let tags: SimulatorArgs['tags'] = { kind: 'count', count: tagCount };
  if (tagsRaw !== undefined) {
    const uids = [...new Set(tagsRaw.split(',').map((t) => t.trim().toUpperCase()).filter((t) => t !== ''))];
    const bad = uids.filter((t) => !/^[0-9A-F]{4,32}$/.test(t));
    if (uids.length === 0) problems.push('--tags needs at least one uid');
    if (bad.length > 0) problems.push(`--tags: uids are 4–32 hex digits; not: ${bad.join(', ')}`);
    tags = { kind: 'list', uids };
  }

  const rate = numberOption(values, 'rate', { min: 0, max: 100_000, fallback: 5 }, problems);
  const durationSeconds = numberOption(values, 'duration', { min: 0, max: 31_536_000, fallback: 0 }, problems);
  const concurrency = intOption(values, 'concurrency', { min: 1, max: 10_000, fallback: 50 }, problems);
  const grantDemo = values['grant-demo'] === true;
  if (grantDemo && bundles !== undefined) {
    problems.push('--grant-demo needs the gateway private key: use a generated fleet or --fleet, not --bundles');
  }
  const level = stringOption(values, 'log-level') ?? 'warn';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) problems.push(`--log-level must be one of ${LOG_LEVELS.join('|')}, got '${level}'`);

  if (problems.length > 0) return { kind: 'invalid', problems };
  return {
    kind: 'run',
    args: { source, url, state, dataDir, tags, rate, durationSeconds, concurrency, grantDemo, logLevel: level as LogLevel },
  };
}

export function isMqttUrl(text: string): boolean {
  try {
    const u = new URL(text);
    return (u.protocol === 'mqtt:' || u.protocol === 'mqtts:') && u.hostname !== '';
  } catch {
    return false;
  }
}
