/**
 * Runs due expiries (DESIGN §4 step 4): every tick, expire what the store says is due. Due times
 * live in the store, so a restarted gateway expires overdue grants on its first tick, and the
 * per-key lease in GrantService.expireDue makes each expiry run once across instances.
 */
import type { Logger } from '@smart-passage/protocol';
import type { Grant } from '../../domain/types.js';

export interface ExpiryTarget {
  expireDue(owner: string): Promise<Grant[]>;
}

export class ExpiryScheduler {
  readonly #target: ExpiryTarget;
  readonly #owner: string;
  readonly #tickMs: number;
  readonly #logger: Logger;
  readonly #onExpired: (g: Grant) => void;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(o: { target: ExpiryTarget; owner: string; logger: Logger; tickMs?: number; onExpired?: (g: Grant) => void }) {
    this.#target = o.target;
    this.#owner = o.owner;
    this.#logger = o.logger;
    this.#tickMs = o.tickMs ?? 500;
    this.#onExpired = o.onExpired ?? (() => undefined);
  }

  /** Runs a first tick at once (overdue grants at start), then every tickMs. */
  async start(): Promise<void> {
    await this.tick();
    this.#timer = setInterval(() => void this.tick(), this.#tickMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One pass; overlapping ticks are skipped, never stacked. */
  async tick(): Promise<void> {
    if (this.#running) return;
    this.#running = (async () => {
      try {
        for (const g of await this.#target.expireDue(this.#owner)) this.#onExpired(g);
      } catch (err) {
        this.#logger.warn('expiry pass failed; the next tick retries', { err: String(err) });
      }
    })();
    try {
      await this.#running;
    } finally {
      this.#running = undefined;
    }
  }
}
