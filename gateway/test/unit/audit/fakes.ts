// Fakes for the audit unit tests, injected through constructors (STYLE: no module mocking): a sink
// that keeps what it is given (with the store's dedupe rule), and a way to call a route's handler.
import { silentLogger, type AuditItem } from '@smart-passage/protocol';
import { afterEach } from 'vitest';
import type { AuditInput, AuditSink } from '../../../src/features/audit/audit-log.js';
import type { Principal, RouteDef } from '../../../src/http/routes.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';

/** Collects inputs; a second record with the same `dedupe` returns the first entry, as the store does. */
export class CollectingSink implements AuditSink {
  readonly inputs: AuditInput[] = [];
  readonly calls: AuditInput[] = [];
  readonly #byDedupe = new Map<string, AuditItem>();
  /** The next `failures` records reject with this error (and store nothing). */
  failures = 0;
  /** Records of these types reject (until removed). */
  readonly failing = new Set<string>();
  error: Error = new Error('store unavailable: audit');

  record(input: AuditInput): Promise<AuditItem> {
    this.calls.push(input);
    if (this.failures > 0 || this.failing.has(input.type)) {
      if (this.failures > 0) this.failures -= 1;
      return Promise.reject(this.error);
    }
    const seen = input.dedupe !== undefined ? this.#byDedupe.get(input.dedupe) : undefined;
    if (seen) return Promise.resolve(seen);
    this.inputs.push(input);
    const { dedupe, ...rest } = input;
    const entry = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    const item = { v: 1, chain: input.buildingId ? `building:${input.buildingId}` : 'system', seq: this.inputs.length, at: 0, ...entry, id: String(this.inputs.length), hash: '0'.repeat(64) } as AuditItem;
    if (dedupe !== undefined) this.#byDedupe.set(dedupe, item);
    return Promise.resolve(item);
  }

  types(): string[] {
    return this.inputs.map((i) => i.type);
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The embedded store in memory: the real store code, no I/O outside the process. */
export async function memoryStore(): Promise<EmbeddedStore> {
  const store = new EmbeddedStore({ path: ':memory:' });
  await store.start();
  cleanups.push(() => store.stop());
  return store;
}

export function onCleanup(f: () => Promise<void>): void {
  cleanups.push(f);
}

/** Call the handler of `method path` as the app would after validation and auth. */
export function call(
  routes: readonly RouteDef[],
  method: string,
  path: string,
  ctx: { params?: unknown; body?: unknown; query?: unknown; principal?: Principal; ip?: string },
): Promise<unknown> {
  const r = routes.find((x) => x.method === method && x.path === path);
  if (!r) throw new Error(`no route ${method} ${path}`);
  return r.handler({
    requestId: 'req-1',
    ip: ctx.ip ?? '203.0.113.7',
    log: silentLogger,
    setHeader: () => undefined,
    signal: new AbortController().signal,
    params: ctx.params ?? {},
    query: ctx.query ?? {},
    body: ctx.body ?? {},
    principal: ctx.principal,
  });
}

export const DISPATCHER: Principal = { userId: 'usr-disp', role: 'dispatcher' };
export const ADMIN: Principal = { userId: 'usr-admin', role: 'admin' };
