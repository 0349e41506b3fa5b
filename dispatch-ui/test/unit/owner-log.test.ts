// The owner's log against a fake Api injected through its constructor (no module mocking): newest
// first, "Load more" continues to older entries with the API's cursor, filters become the query,
// and an API error is shown as text.
import { describe, expect, it } from 'vitest';
import { ApiError, type Api, type RequestOptions } from '../../src/lib/api/client';
import type { AuditItem, Page } from '../../src/lib/api/types';
import { AuditLogState } from '../../src/lib/state/owner.svelte';

const entry = (id: number): AuditItem => ({ id: String(id), hash: 'h', v: 1, chain: 'building:bld-1', seq: id, at: 1_800_000_000_000 + id, type: 'access.granted', actor: { kind: 'controller', id: 'ctl-1' }, buildingId: 'bld-1' });

/** Answers GET /api/v1/audit newest first from `all`, two a page, and records each query. */
function fakeApi(all: AuditItem[], fail = false): { api: Api; queries: Record<string, unknown>[] } {
  const queries: Record<string, unknown>[] = [];
  const newest = [...all].sort((a, b) => Number(b.id) - Number(a.id));
  const get = (path: string, o: RequestOptions = {}): Promise<unknown> => {
    expect(path).toBe('/api/v1/audit');
    const q = o.query ?? {};
    queries.push(q);
    if (fail) return Promise.reject(new ApiError(503, 'unavailable', 'service unavailable'));
    const start = q.cursor === undefined ? 0 : newest.findIndex((e) => e.id === q.cursor) + 1;
    const items = newest.slice(start, start + 2);
    const page: Page<AuditItem> = { items, ...(start + 2 < newest.length ? { next: items[items.length - 1]!.id } : {}) };
    return Promise.resolve(page);
  };
  return { api: { get } as unknown as Api, queries };
}

describe('AuditLogState (owner portal)', () => {
  it('asks for the newest first and pages back to older entries', async () => {
    const { api, queries } = fakeApi([1, 2, 3, 4, 5].map(entry));
    const log = new AuditLogState(api);
    await log.search({ buildingId: 'bld-1', from: '', to: '', incidentId: '', groups: ['access'] });
    expect(queries[0]).toMatchObject({ order: 'desc', buildingId: 'bld-1', cursor: undefined });
    expect(String(queries[0]?.type)).toContain('access.granted');
    expect(log.items.map((e) => e.id)).toEqual(['5', '4']);
    await log.loadMore();
    await log.loadMore();
    expect(log.items.map((e) => e.id)).toEqual(['5', '4', '3', '2', '1']);
    expect(log.next).toBeUndefined();
    expect(queries[1]).toMatchObject({ cursor: '4', order: 'desc' });
  });

  it('shows an API error as text and keeps what it had', async () => {
    const { api } = fakeApi([], true);
    const log = new AuditLogState(api);
    await log.search({ buildingId: '', from: '', to: '', incidentId: '', groups: [] });
    expect(log.error).toMatch(/unavailable/i);
    expect(log.items).toEqual([]);
  });
});
