/**
 * Audit exports (DESIGN §8, protocol/AUDIT.md §5): the lines of a verifiable export, produced
 * page by page so a million entries stream through constant memory (the HTTP layer pulls the
 * next line only when the socket drains).
 *
 * Each chain's segment is widened to the enclosing checkpoints: it starts right after the last
 * checkpoint before the first entry asked for (that checkpoint is the segment's signed anchor; or
 * at seq 1 on the genesis hash) and ends at a checkpoint, which the export makes first if the
 * chain moved since the last one. So an export always verifies on its own, at the price of up to
 * one checkpoint interval of extra entries on each side.
 */
import {
  AUDIT_EXPORT_FORMAT,
  signExportTrailer,
  type AuditCheckpoint,
  type ExportChainSummary,
  type ExportLine,
  type SigningKey,
} from '@smart-passage/protocol';
import type { StorePort } from '../../store/port.js';

export interface ExportRequest {
  chains: readonly string[];
  /** ms epoch, inclusive. */
  from?: number | undefined;
  to?: number | undefined;
  /** End a chain at this checkpoint instead of its head (retention archives a trimmed prefix). */
  ends?: Readonly<Record<string, AuditCheckpoint>>;
}

export interface ExportDeps {
  store: StorePort;
  /** Sign the chain's head now unless a checkpoint covers it (AuditLog.checkpoint). */
  checkpoint: (chain: string) => Promise<AuditCheckpoint | undefined>;
  key: SigningKey & { publicKey: string };
  now?: () => number;
}

const PAGE = 1000;

/** What an export held, for the `audit.exported` entry written after it. */
export interface ExportStats {
  entries: number;
  chains: ExportChainSummary[];
}

/**
 * The export's lines: header, then per chain (anchor checkpoint, entries with their checkpoints),
 * then the signed trailer. `stats` is filled as lines are produced.
 */
export async function* exportLines(d: ExportDeps, req: ExportRequest, stats: ExportStats = { entries: 0, chains: [] }): AsyncGenerator<ExportLine> {
  const now = d.now ?? Date.now;
  const exportedAt = now();
  yield {
    record: 'header',
    format: AUDIT_EXPORT_FORMAT,
    exportedAt,
    query: { chains: [...req.chains], ...(req.from !== undefined ? { from: req.from } : {}), ...(req.to !== undefined ? { to: req.to } : {}) },
    keys: [{ kid: d.key.kid, publicKey: d.key.publicKey }],
  };
  for (const chain of req.chains) yield* chainLines(d, chain, req, stats);
  yield signExportTrailer({ record: 'trailer', v: 1, format: AUDIT_EXPORT_FORMAT, exportedAt, entries: stats.entries, chains: stats.chains }, d.key);
}

async function* chainLines(d: ExportDeps, chain: string, req: ExportRequest, stats: ExportStats): AsyncGenerator<ExportLine> {
  const { store } = d;
  // The end: a checkpoint covering everything in the chain now; entries appended later are not exported.
  const end = req.ends?.[chain] ?? (await d.checkpoint(chain));
  if (!end) return;
  const first = await firstSeqFrom(store, chain, req.from);
  if (first === undefined || first > end.size) return;
  const [firstEntry] = await store.auditRange(chain, first, 1);
  if (!firstEntry || (req.to !== undefined && firstEntry.at > req.to)) return;

  const [anchor] = first > 1 ? await store.auditCheckpoints(chain, { maxSize: first - 1, order: 'desc', limit: 1 }) : [];
  const start = anchor ? anchor.size + 1 : 1;
  if (anchor) yield { ...anchor, record: 'checkpoint' };

  let checkpoints = await store.auditCheckpoints(chain, { minSize: start, maxSize: end.size, order: 'asc', limit: PAGE });
  let ci = 0;
  let seq = start;
  let pastRange = false;
  let summary: ExportChainSummary | undefined;
  let ranOut = false;
  while (seq <= end.size) {
    const page = await store.auditRange(chain, seq, Math.min(PAGE, end.size - seq + 1));
    if (page.length === 0) {
      ranOut = true; // entries missing from the store's end
      break;
    }
    for (const item of page) {
      if (item.seq > end.size) break;
      yield { ...item, record: 'entry' };
      stats.entries++;
      summary = summary ? { ...summary, lastSeq: item.seq, head: item.hash } : { chain, firstSeq: item.seq, lastSeq: item.seq, head: item.hash };
      if (req.to !== undefined && item.at > req.to) pastRange = true;
      seq = item.seq + 1;
      // Checkpoints at this size go right after it (they may also refer to sizes whose entries are gone).
      let covered = false;
      for (;;) {
        if (ci >= checkpoints.length && checkpoints.length === PAGE) {
          checkpoints = await store.auditCheckpoints(chain, { minSize: checkpoints[PAGE - 1]!.size + 1, maxSize: end.size, order: 'asc', limit: PAGE });
          ci = 0;
        }
        const cp = checkpoints[ci];
        if (!cp || cp.size > item.seq) break;
        ci++;
        if (cp.size === item.seq) {
          covered = true;
          yield { ...cp, record: 'checkpoint' };
        }
      }
      if (pastRange && covered) {
        seq = end.size + 1;
        break;
      }
    }
  }
  // Checkpoints beyond the last entry found: entries were removed from the store's end. Export
  // them so the verifier reports it, rather than ending quietly at an earlier checkpoint.
  while (ranOut) {
    const cp = checkpoints[ci++];
    if (!cp) break;
    if (summary && cp.size > summary.lastSeq) yield { ...cp, record: 'checkpoint' };
  }
  if (summary) stats.chains.push(summary);
}

/** The seq of the chain's first entry at or after `from` (its first kept entry without one). */
async function firstSeqFrom(store: StorePort, chain: string, from: number | undefined): Promise<number | undefined> {
  if (from === undefined) {
    const head = await store.auditHead(chain);
    return head.size > head.trimmed ? head.trimmed + 1 : undefined;
  }
  let after: Awaited<ReturnType<StorePort['auditQuery']>>['next'];
  for (;;) {
    const page = await store.auditQuery({ chains: [chain], from, limit: 1, ...(after ? { after } : {}) });
    if (page.items[0]) return page.items[0].seq;
    if (!page.next) return undefined;
    after = page.next;
  }
}
