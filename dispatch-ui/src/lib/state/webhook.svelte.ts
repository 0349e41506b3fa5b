/**
 * An owner organisation's webhook (issue 8): its URL, the signing secret shown once after it is
 * made (or rotated), and the delivery log. GET answers `configured: false` while there is none.
 */
import { api, type Api } from '../api/client';
import { errorText } from '../logic/format';

export interface OrgWebhook {
  orgId: string;
  url: string;
  createdAt: number;
  updatedAt: number;
  secret?: string;
}

export interface WebhookDelivery {
  id: string;
  event: string;
  auditId: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: { at: number; status?: number; error?: string; ms: number }[];
  nextAt?: number;
  createdAt: number;
  finishedAt?: number;
}

/** One line of the log: "Delivered (200)", "Retrying (500) in 4 s", "Failed after 20 attempts (timeout)". */
export function deliveryText(d: WebhookDelivery, now: number): string {
  const last = d.attempts.at(-1);
  const why = last ? ` (${last.status ?? last.error ?? '?'})` : '';
  if (d.state === 'delivered') return `Delivered${why}`;
  if (d.state === 'failed') return `Failed after ${d.attempts.length} attempt${d.attempts.length === 1 ? '' : 's'}${why}`;
  if (d.attempts.length === 0) return 'Sending…';
  const wait = Math.max(0, Math.round(((d.nextAt ?? now) - now) / 1000));
  return `Retrying${why} in ${wait < 60 ? `${wait} s` : `${Math.round(wait / 60)} min`}`;
}

export class WebhookState {
  #hook = $state<OrgWebhook | undefined>(undefined);
  #secret = $state<string | undefined>(undefined);
  #deliveries = $state<WebhookDelivery[]>([]);
  #loading = $state(false);
  #saving = $state(false);
  #error = $state<string | undefined>(undefined);
  readonly #api: Api;
  readonly #orgId: string;

  constructor(orgId: string, client: Api = api) {
    this.#orgId = orgId;
    this.#api = client;
  }

  get webhook(): OrgWebhook | undefined {
    return this.#hook;
  }
  /** The signing secret, present only right after it was made; gone once dismissed. */
  get secret(): string | undefined {
    return this.#secret;
  }
  get deliveries(): WebhookDelivery[] {
    return this.#deliveries;
  }
  get loading(): boolean {
    return this.#loading;
  }
  get saving(): boolean {
    return this.#saving;
  }
  get error(): string | undefined {
    return this.#error;
  }

  get #path(): string {
    return `/api/v1/organisations/${encodeURIComponent(this.#orgId)}/webhook`;
  }

  async load(): Promise<void> {
    this.#loading = true;
    this.#error = undefined;
    try {
      const w = await this.#api.get<Partial<OrgWebhook> & { orgId: string; configured: boolean }>(this.#path);
      this.#hook = w.configured && w.url !== undefined ? { orgId: w.orgId, url: w.url, createdAt: w.createdAt ?? 0, updatedAt: w.updatedAt ?? 0 } : undefined;
      await this.refreshLog();
    } catch (err) {
      this.#error = errorText(err);
    } finally {
      this.#loading = false;
    }
  }

  async refreshLog(): Promise<void> {
    if (!this.#hook) {
      this.#deliveries = [];
      return;
    }
    const r = await this.#api.get<{ items: WebhookDelivery[] }>(`${this.#path}/deliveries`, { query: { limit: 50 } });
    this.#deliveries = r.items;
  }

  /** Set or change the URL; a new secret (first time, or `rotate`) is kept to show once. */
  async save(url: string, rotate = false): Promise<boolean> {
    this.#saving = true;
    this.#error = undefined;
    try {
      const w = await this.#api.put<OrgWebhook>(this.#path, { url: url.trim(), ...(rotate ? { rotateSecret: true } : {}) });
      const { secret, ...rest } = w;
      this.#hook = rest;
      if (secret !== undefined) this.#secret = secret;
      return true;
    } catch (err) {
      this.#error = errorText(err);
      return false;
    } finally {
      this.#saving = false;
    }
  }

  dismissSecret(): void {
    this.#secret = undefined;
  }

  async remove(): Promise<void> {
    this.#error = undefined;
    try {
      await this.#api.del(this.#path);
      this.#hook = undefined;
      this.#secret = undefined;
      this.#deliveries = [];
    } catch (err) {
      this.#error = errorText(err);
    }
  }
}
