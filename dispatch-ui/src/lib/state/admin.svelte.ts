/**
 * Admin state (issue 5 admin): one small list class per resource, loaded along the API's `next`
 * cursor and patched in place after a write, so each tab shows what the gateway answered.
 */
import { api, type Api } from '../api/client';
import type { MapConfig, Page } from '../api/types';
import { errorText } from '../logic/format';

/** The admin tabs, in order; the first is the default of `#/admin`. */
export const ADMIN_TABS = ['buildings', 'controllers', 'units', 'users'] as const;
export type AdminTab = (typeof ADMIN_TABS)[number];
export const ADMIN_TAB_LABEL: Record<AdminTab, string> = { buildings: 'Buildings & doors', controllers: 'Controllers', units: 'Units & tags', users: 'Users' };

export function adminTabOf(rest: readonly string[]): AdminTab {
  const t = rest[0];
  return (ADMIN_TABS as readonly string[]).includes(t ?? '') ? (t as AdminTab) : 'buildings';
}

/** Pages the list routes hand out at most; following `next` beyond it would be a paged table. */
const MAX_PAGES = 20;

/** A list resource (`GET path` → `{items, next}`), kept as the API last answered. */
export class ListState<T extends { id: string }> {
  #items = $state<T[]>([]);
  #loading = $state(false);
  #error = $state<string | undefined>(undefined);
  #loaded = $state(false);
  readonly #api: Api;
  readonly #path: () => string;
  readonly #limit: number;
  readonly #query: () => Record<string, string | undefined>;

  constructor(path: string | (() => string), o: { api?: Api; limit?: number; query?: () => Record<string, string | undefined> } = {}) {
    this.#api = o.api ?? api;
    this.#path = typeof path === 'string' ? () => path : path;
    this.#limit = o.limit ?? 100;
    this.#query = o.query ?? (() => ({}));
  }

  get items(): T[] {
    return this.#items;
  }
  get loading(): boolean {
    return this.#loading;
  }
  get loaded(): boolean {
    return this.#loaded;
  }
  get error(): string | undefined {
    return this.#error;
  }

  async load(): Promise<void> {
    this.#loading = true;
    this.#error = undefined;
    try {
      const all: T[] = [];
      let after: string | undefined;
      for (let i = 0; i < MAX_PAGES; i++) {
        const page = await this.#api.get<Page<T>>(this.#path(), { query: { ...this.#query(), after, limit: this.#limit } });
        all.push(...page.items);
        after = page.next;
        if (after === undefined) break;
      }
      this.#items = all;
      this.#loaded = true;
    } catch (err) {
      this.#error = errorText(err);
    } finally {
      this.#loading = false;
    }
  }

  /** Put the API's answer in place (or at the end). */
  upsert(item: T): void {
    const i = this.#items.findIndex((x) => x.id === item.id);
    this.#items = i < 0 ? [...this.#items, item] : this.#items.map((x) => (x.id === item.id ? item : x));
  }

  remove(id: string): void {
    this.#items = this.#items.filter((x) => x.id !== id);
  }

  clear(): void {
    this.#items = [];
    this.#loaded = false;
  }
}

/** GET /api/v1/map once per page load (the base layer under the door picker); undefined when it fails. */
let mapConfig: Promise<MapConfig | undefined> | undefined;
export function loadMapConfig(client: Api = api): Promise<MapConfig | undefined> {
  mapConfig ??= client.get<MapConfig>('/api/v1/map').catch(() => {
    mapConfig = undefined;
    return undefined;
  });
  return mapConfig;
}
