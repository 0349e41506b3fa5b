/**
 * The responder page's state (DESIGN §4.2, §7; issue 5): the unit's active grants from
 * GET /api/v1/me/grants (the only place a responder sees the PIN), a ticking clock for time left,
 * and the state of each "Open door" request.
 */
import { api, ApiError, type Api } from '../api/client';
import type { MyGrant } from '../api/types';
import { isLiveGrant } from './live.svelte';
import { errorText } from '../logic/format';

export type OpenState = { state: 'pending' } | { state: 'ok'; at: number } | { state: 'error'; message: string };

export class ResponderState {
  #items = $state<MyGrant[]>([]);
  #loaded = $state(false);
  #error = $state<string | undefined>(undefined);
  #unsupported = $state(false);
  #now = $state(Date.now());
  #opening = $state<Record<string, OpenState>>({});
  #timer: ReturnType<typeof setInterval> | undefined;
  #abort: AbortController | undefined;
  readonly #api: Api;

  constructor(client: Api = api) {
    this.#api = client;
  }

  /** Grants still running at `now`, soonest to end first. */
  get items(): MyGrant[] {
    return this.#items.filter((m) => isLiveGrant(m.grant, this.#now)).sort((a, b) => a.grant.notAfter - b.grant.notAfter);
  }
  get loaded(): boolean {
    return this.#loaded;
  }
  get error(): string | undefined {
    return this.#error;
  }
  /** The gateway has no /me/grants yet (404). */
  get unsupported(): boolean {
    return this.#unsupported;
  }
  get now(): number {
    return this.#now;
  }
  openState(grantId: string, doorId: string): OpenState | undefined {
    return this.#opening[`${grantId}/${doorId}`];
  }

  /** Tick once a second for the countdowns; returns the stop function. */
  start(): () => void {
    this.#timer ??= setInterval(() => (this.#now = Date.now()), 1000);
    return () => {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#timer = undefined;
      this.#abort?.abort();
    };
  }

  async load(): Promise<void> {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    try {
      const r = await this.#api.get<{ items: MyGrant[] }>('/api/v1/me/grants', { signal: abort.signal });
      if (abort.signal.aborted) return;
      this.#items = r.items;
      this.#error = undefined;
      this.#unsupported = false;
    } catch (err) {
      if (abort.signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        this.#unsupported = true;
        this.#items = [];
      } else this.#error = errorText(err);
    } finally {
      if (this.#abort === abort) {
        this.#loaded = true;
        this.#now = Date.now();
      }
    }
  }

  async open(grantId: string, doorId: string): Promise<void> {
    const key = `${grantId}/${doorId}`;
    this.#opening = { ...this.#opening, [key]: { state: 'pending' } };
    let next: OpenState;
    try {
      await this.#api.post(`/api/v1/me/doors/${encodeURIComponent(doorId)}/open`, { grantId });
      next = { state: 'ok', at: Date.now() };
    } catch (err) {
      next = { state: 'error', message: errorText(err) };
    }
    this.#opening = { ...this.#opening, [key]: next };
  }
}
