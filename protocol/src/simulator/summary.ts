/**
 * The simulator's progress line: one line a user can watch while a fleet runs, and the same
 * figures at the end. Goes to stdout; logs go to stderr, so either can be redirected alone.
 */
import type { FleetStats } from './fleet.js';

/**
 * @example formatSummary(fleet.stats())
 *   → 'online 20/20 · applied 12 · access 150 (granted 40, denied 110) · events 230, acked 230 · backlog 0 · rejected 0 · 12.3 s'
 */
export function formatSummary(s: FleetStats): string {
  return [
    `online ${s.online}/${s.controllers}`,
    `applied ${s.applied}`,
    `access ${s.access} (granted ${s.granted}, denied ${s.denied})`,
    `events ${s.events}, acked ${s.acked}`,
    `backlog ${s.backlog}`,
    `rejected ${s.rejected}`,
    ...(s.demoSyncs === undefined ? [] : [`demo syncs ${s.demoSyncs}`]),
    `${(s.elapsedMs / 1000).toFixed(1)} s`,
  ].join(' · ');
}

export interface LiveSummaryOptions {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  line: () => string;
  /** Defaults to whether `out` is a terminal. */
  tty?: boolean;
}

/**
 * On a terminal one line rewritten in place every 500 ms; otherwise (a log file, CI, a pipe) a
 * new line every 5 s, so the output stays readable and small.
 */
export class LiveSummary {
  readonly #o: LiveSummaryOptions;
  readonly #tty: boolean;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;

  constructor(o: LiveSummaryOptions) {
    this.#o = o;
    this.#tty = o.tty ?? o.out.isTTY === true;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#print(), this.#tty ? 500 : 5_000);
    this.#timer.unref();
  }

  /** Stop updating; on a terminal, end the line being rewritten so what follows starts clean. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty && this.#dirty) this.#o.out.write('\n');
    this.#dirty = false;
  }

  #print(): void {
    if (this.#tty) {
      // \r back to column 0, then erase what a longer previous line left (ESC [ K).
      this.#o.out.write(`\r${this.#o.line()}\u001b[K`);
      this.#dirty = true;
    } else {
      this.#o.out.write(`${this.#o.line()}\n`);
    }
  }
}
