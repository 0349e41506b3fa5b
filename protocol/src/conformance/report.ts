/**
 * What the conformance suite found, requirement by requirement, and how it is printed.
 */
import { REQUIREMENTS, type Requirement, type RequirementId } from './requirements.js';

/**
 * - `pass`: every part of the requirement was exercised and held;
 * - `fail`: some part was exercised and did not hold;
 * - `manual`: nothing failed, but some part could not be observed from outside (a hook or an
 *   input was missing, or it cannot be seen over MQTT): `detail` says what to check by hand.
 */
export type CheckStatus = 'pass' | 'fail' | 'manual';

/** The verdict on one requirement, with what was seen (or what to check by hand). */
export interface CheckResult extends Requirement {
  status: CheckStatus;
  detail: string;
}

/** What `runConformance` resolves with. Holds no key material, PINs or passwords. */
export interface ConformanceReport {
  controllerId: string;
  startedAt: string;
  durationMs: number;
  /** One entry per requirement, in PROTOCOL.md order. */
  results: CheckResult[];
  /** What the run did to the controller (counters advanced, cleanup) and anything odd it saw. */
  notes: string[];
}

interface Evidence {
  passed: string[];
  failed: string[];
  manual: string[];
}

/**
 * Collects evidence per requirement while the suite runs. A requirement fails if any part
 * failed; is manual if some part could not be checked; passes only if parts were checked and
 * none failed or was left to the operator.
 */
export class Findings {
  readonly #by = new Map<RequirementId, Evidence>();

  #of(id: RequirementId): Evidence {
    let e = this.#by.get(id);
    if (!e) {
      e = { passed: [], failed: [], manual: [] };
      this.#by.set(id, e);
    }
    return e;
  }

  pass(id: RequirementId, what: string): void {
    add(this.#of(id).passed, what);
  }

  fail(id: RequirementId, what: string): void {
    add(this.#of(id).failed, what);
  }

  /** Something the operator has to verify by hand. */
  manual(id: RequirementId, what: string): void {
    add(this.#of(id).manual, what);
  }

  /** `pass(what)` when `ok`, else `fail("what — got: why")`. Returns `ok`. */
  expect(id: RequirementId, ok: boolean, what: string, why: string): boolean {
    if (ok) this.pass(id, what);
    else this.fail(id, `${what} — got: ${why}`);
    return ok;
  }

  failed(id: RequirementId): boolean {
    return (this.#by.get(id)?.failed.length ?? 0) > 0;
  }

  results(): CheckResult[] {
    return REQUIREMENTS.map((r) => {
      const e = this.#by.get(r.id) ?? { passed: [], failed: [], manual: [] };
      if (e.failed.length > 0) return { ...r, status: 'fail', detail: e.failed.join('; ') };
      if (e.manual.length > 0 || e.passed.length === 0) {
        const todo = e.manual.length > 0 ? e.manual : ['not exercised by this run'];
        const done = e.passed.length > 0 ? ` (checked: ${e.passed.join('; ')})` : '';
        return { ...r, status: 'manual', detail: `verify by hand: ${todo.join('; ')}${done}` };
      }
      return { ...r, status: 'pass', detail: e.passed.join('; ') };
    });
  }
}

/** The same finding seen twice (e.g. after each of several checks) is reported once. */
function add(list: string[], what: string): void {
  if (!list.includes(what)) list.push(what);
}

/** Counts by status. */
export function summarize(report: ConformanceReport): Record<CheckStatus, number> {
  const counts: Record<CheckStatus, number> = { pass: 0, fail: 0, manual: 0 };
  for (const r of report.results) counts[r.status] += 1;
  return counts;
}

/**
 * A plain-text table (id, status, level, title, detail) with a summary and the notes.
 * @example process.stdout.write(formatReport(await runConformance(opts)));
 */
export function formatReport(report: ConformanceReport, { width = 160 }: { width?: number } = {}): string {
  const titleWidth = Math.max(...report.results.map((r) => r.title.length));
  const head = `${'ID'.padEnd(5)} ${'STATUS'.padEnd(6)} ${'LEVEL'.padEnd(6)} ${'TITLE'.padEnd(titleWidth)}  DETAIL`;
  const indent = 5 + 1 + 6 + 1 + 6 + 1 + titleWidth + 2;
  const lines = [`Smart Passage conformance — controller ${report.controllerId}`, '', head];
  for (const r of report.results) {
    const detail = wrap(r.detail, Math.max(40, width - indent));
    const first = `${r.id.padEnd(5)} ${r.status.padEnd(6)} ${r.level.padEnd(6)} ${r.title.padEnd(titleWidth)}  ${detail[0] ?? ''}`;
    lines.push(first, ...detail.slice(1).map((l) => `${' '.repeat(indent)}${l}`));
  }
  const c = summarize(report);
  lines.push(
    '',
    `${report.results.length} requirements: ${c.pass} pass, ${c.fail} fail, ${c.manual} manual — ${(report.durationMs / 1000).toFixed(1)} s`,
  );
  if (report.notes.length > 0) lines.push('', 'Notes:', ...report.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line.length > 0 && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line.length > 0 ? `${line} ${word}` : word;
    }
  }
  if (line.length > 0) out.push(line);
  return out;
}
