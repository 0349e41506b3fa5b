/**
 * The offline codes of the selected incident (issue 8, PROTOCOL §2.6): fetched when a route door's
 * controller is offline, again when another one drops or the 15-minute window rolls over, and
 * forgotten when none is offline. The gateway audits every fetch; the codes live only here.
 */
import type { OfflineCode } from '../api/types';
import { needsOfflineCodes } from '../logic/offline-codes';

export interface OfflineCodeSource {
  offlineCodes(incidentId: string, signal?: AbortSignal): Promise<{ items: OfflineCode[]; nextWindowAt: number }>;
}

export class OfflineCodesState {
  #byDoor = $state<Record<string, OfflineCode>>({});
  #last: { key: string; nextWindowAt: number } | undefined;
  #inFlight: AbortController | undefined;
  #error = $state<string | undefined>(undefined);
  readonly #api: OfflineCodeSource;

  constructor(api: OfflineCodeSource) {
    this.#api = api;
  }

  /** The code for a door, when its controller is offline and the gateway gave one. */
  forDoor(doorId: string): OfflineCode | undefined {
    return this.#byDoor[doorId];
  }
  get error(): string | undefined {
    return this.#error;
  }

  /**
   * Call on every tick and presence change: `key` is offlineRouteKey(…) for the incident (empty
   * when no route controller is offline). Fetches only when something changed.
   */
  async sync(incidentId: string | undefined, key: string, now: number): Promise<void> {
    const fullKey = incidentId === undefined || key === '' ? '' : `${incidentId}|${key}`;
    if (fullKey === '') {
      this.#inFlight?.abort();
      this.#inFlight = undefined;
      this.#last = undefined;
      if (Object.keys(this.#byDoor).length > 0) this.#byDoor = {};
      this.#error = undefined;
      return;
    }
    if (!needsOfflineCodes(this.#last, fullKey, now) || this.#inFlight) return;
    const ac = new AbortController();
    this.#inFlight = ac;
    try {
      const r = await this.#api.offlineCodes(incidentId!, ac.signal);
      if (ac.signal.aborted) return;
      this.#byDoor = Object.fromEntries(r.items.map((c) => [c.doorId, c]));
      this.#last = { key: fullKey, nextWindowAt: r.nextWindowAt };
      this.#error = undefined;
    } catch (err) {
      if (ac.signal.aborted) return;
      this.#error = err instanceof Error ? err.message : String(err);
      // Try again at the next tick after a short pause, not in a tight loop.
      this.#last = { key: fullKey, nextWindowAt: now + 5000 };
    } finally {
      if (this.#inFlight === ac) this.#inFlight = undefined;
    }
  }
}
