/**
 * The owner portal's state (DESIGN §4.6, §8; issue 5): the owner's buildings and their emergency
 * doors, the filterable audit log (paged by the API's cursor, topped up live from the socket
 * feed), integrity per building (server-side verify + newest signed checkpoint), and the policy.
 * The API scopes everything to the owner's organisation; nothing here filters for safety.
 */
import { api, type Api } from '../api/client';
import type { AuditCheckpoint, AuditItem, Building, Door, EmergencyPolicy, Page } from '../api/types';
import { auditTypesParam, matchesAuditFilter, mergeAudit, type AuditGroup } from '../logic/audit-text';
import { dayBound, errorText } from '../logic/format';

/** Save a Blob as a file through an object URL and a transient `<a download>`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: some browsers read the URL after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The log's filters as the form holds them (dates as `YYYY-MM-DD`, local). */
export interface LogFilterForm {
  buildingId: string;
  from: string;
  to: string;
  incidentId: string;
  groups: AuditGroup[];
}

export type VerifyResult = { ok: boolean; entries: number; chains: { chain: string; lastSeq: number }[]; problem?: { code: string; message: string }; verifiedAt: number };

export interface Integrity {
  state: 'loading' | 'ok' | 'bad' | 'error';
  entries?: number;
  message?: string;
  verifiedAt?: number;
}

export const chainOf = (buildingId: string): string => `building:${buildingId}`;

const PAGE = 100;

/** The emergency access log: one query at a time, `next` followed on demand. */
export class AuditLogState {
  #items = $state<AuditItem[]>([]);
  #next = $state<string | undefined>(undefined);
  #loading = $state(false);
  #error = $state<string | undefined>(undefined);
  #exporting = $state<string | undefined>(undefined);
  #form: LogFilterForm = { buildingId: '', from: '', to: '', incidentId: '', groups: [] };
  #abort: AbortController | undefined;
  readonly #api: Api;

  constructor(client: Api = api) {
    this.#api = client;
  }

  get items(): AuditItem[] {
    return this.#items;
  }
  get next(): string | undefined {
    return this.#next;
  }
  get loading(): boolean {
    return this.#loading;
  }
  get error(): string | undefined {
    return this.#error;
  }
  /** The format being exported, if any. */
  get exporting(): string | undefined {
    return this.#exporting;
  }

  #query(): Record<string, string | undefined> {
    const f = this.#form;
    return {
      buildingId: f.buildingId || undefined,
      from: f.from ? dayBound(f.from, false) : undefined,
      to: f.to ? dayBound(f.to, true) : undefined,
    };
  }

  /** Start over with these filters. */
  async search(form: LogFilterForm): Promise<void> {
    this.#form = { ...form, groups: [...form.groups] };
    this.#items = [];
    this.#next = undefined;
    await this.#page(undefined);
  }

  async loadMore(): Promise<void> {
    if (this.#next === undefined || this.#loading) return;
    await this.#page(this.#next);
  }

  async #page(cursor: string | undefined): Promise<void> {
    this.#abort?.abort();
    const abort = new AbortController();
    this.#abort = abort;
    this.#loading = true;
    this.#error = undefined;
    try {
      const f = this.#form;
      const page = await this.#api.get<Page<AuditItem>>('/api/v1/audit', {
        query: {
          ...this.#query(),
          incidentId: f.incidentId.trim() || undefined,
          type: auditTypesParam(f.groups),
          cursor,
          limit: PAGE,
          // Newest first; "Load more" continues to older entries.
          order: 'desc',
        },
        signal: abort.signal,
      });
      if (abort.signal.aborted) return;
      this.#items = mergeAudit(this.#items, page.items);
      this.#next = page.next;
    } catch (err) {
      if (abort.signal.aborted) return;
      this.#error = errorText(err);
    } finally {
      if (this.#abort === abort) this.#loading = false;
    }
  }

  /** Entries from the live feed that match the current filters go in (once each). */
  ingest(feed: readonly AuditItem[]): void {
    const f = this.#form;
    const from = f.from ? dayBound(f.from, false) : undefined;
    const to = f.to ? dayBound(f.to, true) : undefined;
    const filter = {
      buildingId: f.buildingId || undefined,
      incidentId: f.incidentId.trim() || undefined,
      from: from ? Date.parse(from) : undefined,
      to: to ? Date.parse(to) : undefined,
      groups: f.groups,
    };
    const fresh = feed.filter((a) => matchesAuditFilter(a, filter));
    if (fresh.length > 0) this.#items = mergeAudit(this.#items, fresh);
  }

  /** Download the export of the current building and dates (the API exports whole chains: the kind and incident filters do not apply). */
  async export(format: 'csv' | 'jsonl'): Promise<void> {
    this.#exporting = format;
    this.#error = undefined;
    try {
      const { blob, filename } = await this.#api.download('/api/v1/audit/export', { query: { ...this.#query(), format } });
      saveBlob(blob, filename === 'download' ? `audit.${format}` : filename);
    } catch (err) {
      this.#error = `Export failed: ${errorText(err)}`;
    } finally {
      this.#exporting = undefined;
    }
  }

  cancel(): void {
    this.#abort?.abort();
  }
}

/** Buildings, doors, integrity and policy of the owner's organisation. */
export class OwnerState {
  #buildings = $state<Building[]>([]);
  #doors = $state<Record<string, Door[]>>({});
  #integrity = $state<Record<string, Integrity>>({});
  #checkpoints = $state<Record<string, AuditCheckpoint | undefined>>({});
  #loading = $state(false);
  #error = $state<string | undefined>(undefined);
  readonly log: AuditLogState;
  readonly #api: Api;

  constructor(client: Api = api) {
    this.#api = client;
    this.log = new AuditLogState(client);
  }

  get buildings(): Building[] {
    return this.#buildings;
  }
  get loading(): boolean {
    return this.#loading;
  }
  get error(): string | undefined {
    return this.#error;
  }
  doorsOf(buildingId: string): Door[] {
    return this.#doors[buildingId] ?? [];
  }
  integrityOf(buildingId: string): Integrity | undefined {
    return this.#integrity[buildingId];
  }
  checkpointOf(buildingId: string): AuditCheckpoint | undefined {
    return this.#checkpoints[buildingId];
  }

  async load(): Promise<void> {
    this.#loading = true;
    this.#error = undefined;
    try {
      const all: Building[] = [];
      let after: string | undefined;
      do {
        const page = await this.#api.get<Page<Building>>('/api/v1/buildings', { query: { after, limit: 500 } });
        all.push(...page.items);
        after = page.next;
      } while (after !== undefined);
      this.#buildings = all;
    } catch (err) {
      this.#error = errorText(err);
      return;
    } finally {
      this.#loading = false;
    }
    await Promise.all(this.#buildings.map(async (b) => Promise.all([this.loadDoors(b.id), this.verify(b.id), this.loadCheckpoint(b.id)])));
  }

  async loadDoors(buildingId: string): Promise<void> {
    try {
      const page = await this.#api.get<Page<Door>>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/doors`, { query: { limit: 500 } });
      this.#doors = { ...this.#doors, [buildingId]: page.items };
    } catch {
      this.#doors = { ...this.#doors, [buildingId]: [] };
    }
  }

  async verify(buildingId: string): Promise<void> {
    this.#integrity = { ...this.#integrity, [buildingId]: { state: 'loading' } };
    let next: Integrity;
    try {
      const r = await this.#api.get<VerifyResult>('/api/v1/audit/verify', { query: { buildingId } });
      next = r.ok
        ? { state: 'ok', entries: r.entries, verifiedAt: r.verifiedAt }
        : { state: 'bad', entries: r.entries, message: r.problem?.message ?? 'the chain does not verify', verifiedAt: r.verifiedAt };
    } catch (err) {
      next = { state: 'error', message: errorText(err) };
    }
    this.#integrity = { ...this.#integrity, [buildingId]: next };
  }

  /** The newest signed checkpoint of the building's chain (the API pages them oldest first). */
  async loadCheckpoint(buildingId: string): Promise<void> {
    try {
      let after: number | undefined;
      let newest: AuditCheckpoint | undefined;
      for (let i = 0; i < 50; i++) {
        const page = await this.#api.get<{ items: AuditCheckpoint[]; next?: number }>('/api/v1/audit/checkpoints', { query: { buildingId, after, limit: 1000 } });
        newest = page.items.at(-1) ?? newest;
        if (page.next === undefined) break;
        after = page.next;
      }
      this.#checkpoints = { ...this.#checkpoints, [buildingId]: newest };
    } catch {
      this.#checkpoints = { ...this.#checkpoints, [buildingId]: undefined };
    }
  }

  /** A checkpoint pushed live (socket `checkpoint`) replaces an older one. */
  noteCheckpoint(cp: AuditCheckpoint): void {
    const b = this.#buildings.find((x) => chainOf(x.id) === cp.chain);
    if (!b) return;
    const cur = this.#checkpoints[b.id];
    if (cur !== undefined && cp.size <= cur.size) return;
    this.#checkpoints = { ...this.#checkpoints, [b.id]: cp };
    // A new signed head: the badge checks the chain again so it never lags the checkpoint.
    if (this.#integrity[b.id]?.state !== 'loading') void this.verify(b.id);
  }

  /** PUT the policy; the API's validation errors come back as the thrown ApiError. */
  async savePolicy(buildingId: string, policy: EmergencyPolicy): Promise<Building> {
    const b = await this.#api.put<Building>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/policy`, policy);
    this.#buildings = this.#buildings.map((x) => (x.id === b.id ? b : x));
    return b;
  }

  async downloadKeys(): Promise<void> {
    try {
      const keys = await this.#api.get<unknown>('/api/v1/audit/keys');
      saveBlob(new Blob([JSON.stringify(keys, null, 2) + '\n'], { type: 'application/json' }), 'audit-keys.json');
    } catch (err) {
      this.#error = `Keys not downloaded: ${errorText(err)}`;
    }
  }
}
