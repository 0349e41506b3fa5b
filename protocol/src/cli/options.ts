/**
 * Command-line option parsing for the protocol package's CLIs, on node:util `parseArgs`.
 *
 * `parseArgs` in strict mode throws at the first problem; a user fixing a long command line one
 * error per run is the experience STYLE.md ("every problem at once") rules out. So we parse
 * leniently with tokens and judge every token ourselves, collecting all problems.
 */
import { parseArgs } from 'node:util';

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

export interface ParsedOptions {
  /** string options → their text, boolean options → true; absent options are absent. */
  values: Record<string, string | true>;
  problems: string[];
}

/**
 * Parse `argv` against `spec`, never throwing.
 * @example parseOptions(['--rate', '5', '--x'], { rate: { type: 'string' } })
 *   → { values: { rate: '5' }, problems: ['unknown option --x'] }
 */
export function parseOptions(argv: readonly string[], spec: OptionSpec): ParsedOptions {
  const { tokens } = parseArgs({ args: [...argv], options: spec, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, string | true> = {};
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind === 'positional') {
      problems.push(`unexpected argument '${token.value}'`);
      continue;
    }
    if (token.kind === 'option-terminator') continue;
    const def = Object.hasOwn(spec, token.name) ? spec[token.name] : undefined;
    if (!def) {
      problems.push(`unknown option ${token.rawName}`);
      continue;
    }
    if (seen.has(token.name)) problems.push(`--${token.name} given more than once`);
    seen.add(token.name);
    if (def.type === 'boolean') {
      if (token.value !== undefined) problems.push(`--${token.name} takes no value`);
      else values[token.name] = true;
      continue;
    }
    // Lenient parsing takes the next word as the value even when it is the next option.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      problems.push(`--${token.name} needs a value`);
      continue;
    }
    values[token.name] = token.value;
  }
  return { values, problems };
}

type Bounds = { min: number; max: number; fallback: number };

/** A numeric option within bounds, or a problem; `parse` says what counts as a number here. */
function boundedOption(
  values: Record<string, string | true>,
  name: string,
  { min, max, fallback }: Bounds,
  problems: string[],
  parse: { ok: (raw: string) => boolean; what: string },
): number {
  const raw = values[name];
  if (raw === undefined || raw === true) return fallback;
  if (!parse.ok(raw)) {
    problems.push(`--${name} must be ${parse.what}, got '${raw}'`);
    return fallback;
  }
  const n = Number(raw);
  if (n < min || n > max) {
    problems.push(`--${name} must be between ${min} and ${max}, got ${n}`);
    return fallback;
  }
  return n;
}

/** An integer option within bounds, or a problem. */
export function intOption(values: Record<string, string | true>, name: string, bounds: Bounds, problems: string[]): number {
  return boundedOption(values, name, bounds, problems, {
    ok: (raw) => /^-?\d+$/.test(raw.trim()) && Number.isSafeInteger(Number(raw)),
    what: 'a whole number',
  });
}

/** A decimal option within bounds, or a problem. */
export function numberOption(values: Record<string, string | true>, name: string, bounds: Bounds, problems: string[]): number {
  return boundedOption(values, name, bounds, problems, { ok: (raw) => raw.trim() !== '' && Number.isFinite(Number(raw)), what: 'a number' });
}

/** A string option's text (undefined when absent). */
export function stringOption(values: Record<string, string | true>, name: string): string | undefined {
  const raw = values[name];
  return typeof raw === 'string' ? raw : undefined;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
