/**
 * The audit API (DESIGN §6, §8; issue 4): query, streamed export (JSON lines or CSV, both
 * verifiable offline with `sp-audit-verify`), checkpoints, the public audit keys, and a
 * server-side verification for the integrity badge.
 *
 * Scope (DESIGN §7): admin and dispatcher read every chain; an owner reads the chains of its
 * organisation's buildings only, and another organisation's building is "not found".
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  AUDIT_TYPES,
  AuditExportVerifier,
  SYSTEM_CHAIN,
  csvHeaderLine,
  csvLine,
  jsonlLine,
  trustedKeys,
  type SigningKey,
} from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Building } from '../../domain/types.js';
import { RawReply, route, type Principal, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { AuditCursor, StorePort } from '../../store/port.js';
import { visibleBuilding } from '../admin/common.js';
import { chainOf, buildingOfChain, type AuditLog } from './audit-log.js';
import { exportLines, type ExportStats } from './export.js';

export interface AuditRoutesDeps {
  store: StorePort;
  /** AuditLog: records `audit.exported`, signs the head before an export. */
  log: Pick<AuditLog, 'record' | 'checkpoint'>;
  key: SigningKey & { publicKey: string };
  now?: () => number;
}

const READERS = ['admin', 'dispatcher', 'owner'] as const;
const EXPORTERS = ['admin', 'owner'] as const;
const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });
const TYPE_LIST = `^(${AUDIT_TYPES.map((t) => t.replace(/\./g, '\\.')).join('|')})(,(${AUDIT_TYPES.map((t) => t.replace(/\./g, '\\.')).join('|')}))*$`;

const Actor = Type.Union([
  Type.Object({ kind: Type.Literal('user'), id: Type.String(), name: Type.Optional(Type.String()) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('controller'), id: Type.String() }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('integration'), id: Type.String() }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('system'), id: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);

export const AuditItemView = Type.Object(
  {
    id: Type.String({ description: 'Global position, increasing in append order; the live feed resumes after it.' }),
    hash: Type.String({ description: 'SHA-256(prev ‖ JCS(entry)), hex (protocol/AUDIT.md).' }),
    v: Type.Literal(1),
    chain: Type.String({ description: '`building:<id>` or `system`.' }),
    seq: Type.Integer({ minimum: 1 }),
    at: Type.Integer({ description: 'ms epoch' }),
    type: Type.Union(AUDIT_TYPES.map((t) => Type.Literal(t))),
    actor: Actor,
    buildingId: Type.Optional(Type.String()),
    incidentId: Type.Optional(Type.String()),
    grantId: Type.Optional(Type.String()),
    doorId: Type.Optional(Type.String()),
    unitId: Type.Optional(Type.String()),
    tagId: Type.Optional(Type.String()),
    controllerId: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String()),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);

export const CheckpointView = Type.Object(
  {
    v: Type.Literal(1),
    chain: Type.String(),
    size: Type.Integer({ minimum: 1 }),
    head: Type.String(),
    at: Type.Integer(),
    kid: Type.String(),
    sig: Type.String({ description: 'Ed25519 over "sp-audit/v1\\n" + JCS(checkpoint without sig), base64url.' }),
  },
  { additionalProperties: false },
);

const Range = {
  buildingId: Type.Optional(Id),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Inclusive, ISO 8601.' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Inclusive, ISO 8601.' })),
};

const Problem = Type.Object({
  code: Type.String(),
  line: Type.Integer(),
  chain: Type.Optional(Type.String()),
  seq: Type.Optional(Type.Integer()),
  id: Type.Optional(Type.String()),
  message: Type.String(),
});

export const VerifyView = Type.Object({
  ok: Type.Boolean(),
  entries: Type.Integer(),
  chains: Type.Array(Type.Object({ chain: Type.String(), firstSeq: Type.Integer(), lastSeq: Type.Integer(), head: Type.String() })),
  problem: Type.Optional(Problem),
  verifiedAt: Type.Integer(),
});
export type VerifyView = Static<typeof VerifyView>;

function time(iso: string | undefined, field: string): number | undefined {
  if (iso === undefined) return undefined;
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) throw AppError.badRequest(`/${field}`, 'not a valid date-time', 'query');
  return t;
}

function encodeCursor(c: AuditCursor): string {
  return `${c.at}.${c.id}`;
}
function decodeCursor(s: string): AuditCursor {
  const [at, id] = s.split('.');
  return { at: Number(at), id: String(id) };
}

/** The chains `p` may read, narrowed to `buildingId`; undefined = every chain. */
async function chainsFor(store: StorePort, p: Principal, buildingId: string | undefined): Promise<string[] | undefined> {
  if (buildingId !== undefined) {
    await visibleBuilding(store, buildingId, p);
    return [chainOf(buildingId)];
  }
  return chainsInScope(store, p);
}

/** The chains a caller may read (REST and live feed alike): undefined = every chain. */
export async function chainsInScope(store: StorePort, p: Pick<Principal, 'role' | 'orgId'>): Promise<string[] | undefined> {
  if (p.role === 'admin' || p.role === 'dispatcher') return undefined;
  if (p.role === 'owner' && p.orgId !== undefined) return (await listAll(store, 'buildings', { field: 'orgId', value: p.orgId })).map((b: Building) => chainOf(b.id));
  return [];
}

export function auditRoutes(d: AuditRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  const exportDeps = { store: d.store, checkpoint: (c: string) => d.log.checkpoint(c), key: d.key, now };

  /** Every chain of an export or verification: all of them (admin), or those in scope. */
  const exportChains = async (p: Principal, buildingId: string | undefined): Promise<string[]> => {
    const scoped = await chainsFor(d.store, p, buildingId);
    return (scoped ?? (await d.store.auditChains())).sort();
  };

  return [
    route({
      method: 'get',
      path: '/api/v1/audit',
      summary: 'Audit entries in scope, oldest or newest first, with filters and a cursor',
      description:
        'Ordered by (at, id): oldest first by default, newest first with `order=desc`. A page may hold fewer than `limit` entries and still have `next`: follow `next` (as `cursor`, with the same `order` and filters) until it is absent. The cursor of a `desc` page continues backwards, to older entries.',
      tags: ['audit'],
      auth: READERS,
      query: Type.Object({
        ...Range,
        type: Type.Optional(Type.String({ pattern: TYPE_LIST, description: 'One or more audit types, comma-separated.' })),
        incidentId: Type.Optional(Id),
        cursor: Type.Optional(Type.String({ pattern: '^\\d{1,16}\\.\\d{1,20}$' })),
        order: Type.Optional(
          Type.Union([Type.Literal('asc'), Type.Literal('desc')], {
            default: 'asc',
            description: '`asc`: oldest first. `desc`: newest first; its `next` cursor continues backwards (to older entries).',
          }),
        ),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
      }),
      responses: { 200: Type.Object({ items: Type.Array(AuditItemView), next: Type.Optional(Type.String()) }) },
      handler: async ({ query, principal }) => {
        const chains = await chainsFor(d.store, principal, query.buildingId);
        const from = time(query.from, 'from');
        const to = time(query.to, 'to');
        const page = await d.store.auditQuery({
          ...(chains !== undefined ? { chains } : {}),
          ...(from !== undefined ? { from } : {}),
          ...(to !== undefined ? { to } : {}),
          ...(query.type !== undefined ? { types: query.type.split(',') } : {}),
          ...(query.incidentId !== undefined ? { incidentId: query.incidentId } : {}),
          ...(query.cursor !== undefined ? { after: decodeCursor(query.cursor) } : {}),
          order: query.order ?? 'asc',
          limit: query.limit ?? 100,
        });
        return { items: page.items, ...(page.next ? { next: encodeCursor(page.next) } : {}) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/audit/export',
      summary: 'Export the audit trail, streamed (JSON lines or CSV), verifiable offline',
      description:
        'Each chain is widened to the enclosing signed checkpoints so the file verifies on its own with `sp-audit-verify` and the keys from /audit/keys (protocol/AUDIT.md). Without `buildingId`, every chain in scope.',
      tags: ['audit'],
      auth: EXPORTERS,
      query: Type.Object({ ...Range, format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('csv')], { default: 'jsonl' })) }),
      responses: { 200: Type.String({ description: 'application/x-ndjson or text/csv' }) },
      handler: async ({ query, principal, log }) => {
        const chains = await exportChains(principal, query.buildingId);
        const from = time(query.from, 'from');
        const to = time(query.to, 'to');
        const format = query.format ?? 'jsonl';
        const stats: ExportStats = { entries: 0, chains: [] };
        const lines = exportLines(exportDeps, { chains, from, to }, stats);
        const record = async () => {
          // DESIGN §8 "export made": in each exported building's chain (the system chain for the rest).
          for (const chain of chains) {
            const summary = stats.chains.find((c) => c.chain === chain);
            await d.log.record({
              type: 'audit.exported',
              actor: { kind: 'user', id: principal.userId },
              buildingId: buildingOfChain(chain),
              data: { format, entries: summary ? summary.lastSeq - summary.firstSeq + 1 : 0, ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) },
            });
          }
        };
        async function* body(): AsyncGenerator<string> {
          if (format === 'csv') yield csvHeaderLine();
          for await (const line of lines) yield format === 'csv' ? csvLine(line) : jsonlLine(line);
          await record().catch((err: unknown) => log.warn('audit.exported entry not recorded', { err: err instanceof Error ? err.message : String(err) }));
        }
        const stamp = new Date(now()).toISOString().replace(/[:.]/g, '-');
        const name = `audit-${query.buildingId ?? (chains.length === 1 && chains[0] === SYSTEM_CHAIN ? 'system' : 'all')}-${stamp}.${format}`;
        return new RawReply(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8', body(), {
          'Content-Disposition': `attachment; filename="${name}"`,
          'Cache-Control': 'no-store',
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/audit/checkpoints',
      summary: "A building chain's signed checkpoints by size, or the latest of every chain in scope",
      description:
        'With `buildingId`: that chain\'s checkpoints in size order, paged by `after`. Without: the newest checkpoint of each chain the caller may read (at most 1000 chains). Keep them: `sp-audit-verify --checkpoints` checks a later export against checkpoints saved earlier, so a rewritten history shows even if the operator re-signs it.',
      tags: ['audit'],
      auth: READERS,
      query: Type.Object({
        buildingId: Type.Optional(Id),
        after: Type.Optional(Type.Integer({ minimum: 0, description: 'With buildingId: only checkpoints with a larger size.' })),
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
      }),
      responses: { 200: Type.Object({ items: Type.Array(CheckpointView), next: Type.Optional(Type.Integer()) }) },
      handler: async ({ query, principal }) => {
        const limit = query.limit ?? 100;
        if (query.buildingId === undefined) {
          const chains = (await exportChains(principal, undefined)).slice(0, 1000);
          const latest = await Promise.all(chains.map(async (c) => (await d.store.auditCheckpoints(c, { order: 'desc', limit: 1 }))[0]));
          return { items: latest.filter((cp) => cp !== undefined) };
        }
        const [chain] = (await chainsFor(d.store, principal, query.buildingId)) ?? [];
        const items = await d.store.auditCheckpoints(chain!, { minSize: (query.after ?? 0) + 1, order: 'asc', limit });
        const last = items[items.length - 1];
        return { items, ...(items.length === limit && last ? { next: last.size } : {}) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/audit/keys',
      summary: 'Public keys that sign audit checkpoints and exports',
      tags: ['audit'],
      auth: ['admin', 'dispatcher', 'owner', 'responder'],
      responses: { 200: Type.Object({ keys: Type.Array(Type.Object({ kid: Type.String(), alg: Type.Literal('Ed25519'), publicKey: Type.String({ description: 'base64url, raw 32 bytes' }) })) }) },
      handler: () => Promise.resolve({ keys: [{ kid: d.key.kid, alg: 'Ed25519' as const, publicKey: d.key.publicKey }] }),
    }),
    route({
      method: 'get',
      path: '/api/v1/audit/verify',
      summary: 'Verify the stored chains in scope against their signed checkpoints',
      description: 'The same check as `sp-audit-verify` on a full export, run by the gateway: for the integrity badge. An owner who does not trust the operator runs the CLI on an export instead.',
      tags: ['audit'],
      auth: EXPORTERS,
      query: Type.Object({ buildingId: Type.Optional(Id) }),
      responses: { 200: VerifyView },
      handler: async ({ query, principal }) => verifyStored(exportDeps, await exportChains(principal, query.buildingId), now),
    }),
  ];
}

/** Run a full export of `chains` through the offline verifier (nothing leaves the process). */
export async function verifyStored(deps: Parameters<typeof exportLines>[0], chains: readonly string[], now: () => number): Promise<VerifyView> {
  const verifier = new AuditExportVerifier({ keys: trustedKeys([{ kid: deps.key.kid, publicKey: deps.key.publicKey }]) });
  let n = 0;
  for await (const line of exportLines(deps, { chains })) {
    // Through JSON, as a file would carry it.
    if (!verifier.push(JSON.parse(jsonlLine(line)) as unknown, ++n)) break;
  }
  const r = verifier.finish();
  return r.ok
    ? { ok: true, entries: r.entries, chains: r.chains, verifiedAt: now() }
    : { ok: false, entries: r.entries, chains: [], problem: r.problem, verifiedAt: now() };
}
