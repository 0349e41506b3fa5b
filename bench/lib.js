// Helpers the bench scripts share: option checks, timing, the markdown table they print, the
// machine line under it, and the way each script runs its main().
import * as os from 'node:os';

/** @param {unknown} err */
export const errorText = (err) => (err instanceof Error ? err.message : JSON.stringify(err));

/** Milliseconds from a monotonic clock. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/**
 * An option that must be a whole number from 1 to `max`.
 * @param {string} name @param {string} raw @param {number} max
 */
export function positiveInt(name, raw, max) {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}, got ${raw}`);
  return n;
}

/**
 * A markdown table padded to its columns: numeric columns right-aligned (and marked so in the rule
 * line), the rest left-aligned; `notes` (if any) go under it as a list after a blank line.
 * @param {string[]} head @param {string[][]} body @param {(column: number) => boolean} numeric
 * @param {string[]} [notes]
 */
export function markdownTable(head, body, numeric, notes = []) {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (/** @type {string[]} */ cells) => `| ${cells.map((c, i) => (numeric(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(head), rule, ...body.map(line), ...(notes.length > 0 ? ['', ...notes.map((n) => `- ${n}`)] : [])].join('\n');
}

/** What a result depends on besides the code: the machine, how busy it was, and when. */
export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    node: process.version,
    date: new Date().toISOString(),
    // Other work on a 2-core machine shows up in p99 first; record how busy it was.
    load: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

/** The machine on one line, printed under a table. @param {ReturnType<typeof machine>} m */
export const machineLine = (m) => `${m.cpu} × ${m.cores}, ${m.memory}, ${m.os}, Node ${m.node}, load ${m.load}, ${m.date}`;

/**
 * Delete every key under `prefix` (SCAN + DEL; never FLUSHDB on a shared server).
 * @param {import('ioredis').Redis} client @param {string} prefix
 */
export async function deletePrefix(client, prefix) {
  let cursor = '0';
  do {
    const [nextCursor, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== '0');
}

/**
 * Run a script's main(): its result is the exit status; a throw prints its message and exits 1.
 * @param {() => Promise<number>} main
 */
export function runMain(main) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (/** @type {unknown} */ err) => {
      console.error(errorText(err));
      process.exitCode = 1;
    },
  );
}
