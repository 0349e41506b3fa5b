/**
 * The checks both audit stores apply alike (port auditAppend, auditQuery, auditRange, auditSince):
 * one copy, so the two cannot drift apart on what they refuse.
 */
import type { AuditCursor, AuditAppend, AuditHead } from './port.js';

/** `at` is ms epoch; the Redis store's index writes it as 15 digits, so both refuse more. */
export const MAX_AT = 999_999_999_999_999;
export const DECIMAL_ID = /^[0-9]{1,20}$/;

/**
 * The pure checks of an append (port auditAppend): a violation is a bug in the caller, so it
 * throws and nothing is written. `at` against the stored head is checked inside the store's atomic step.
 */
export function checkAuditBatch(chain: string, expected: Pick<AuditHead, 'size' | 'hash'>, batch: readonly AuditAppend[]): void {
  if (batch.length === 0) throw new Error(`audit append to ${chain}: empty batch`);
  const dedupes = new Set<string>();
  batch.forEach(({ item, dedupe }, i) => {
    if (item.chain !== chain) throw new Error(`audit append to ${chain}: item ${i} is of chain ${String(item.chain)}`);
    if (item.seq !== expected.size + 1 + i) throw new Error(`audit append to ${chain}: item ${i} has seq ${item.seq}, expected ${expected.size + 1 + i}`);
    if (!Number.isSafeInteger(item.at) || item.at < 0 || item.at > MAX_AT) throw new Error(`audit append to ${chain}: item ${i} has a bad at ${item.at}`);
    if (i > 0 && item.at < batch[i - 1]!.item.at) throw new Error(`audit append to ${chain}: item ${i} goes back in time`);
    if (dedupe !== undefined) {
      // Two of one batch could not both be stored, and neither has an id to answer `duplicate` with.
      if (dedupe === '' || dedupes.has(dedupe)) throw new Error(`audit append to ${chain}: item ${i} has an empty or repeated dedupe key`);
      dedupes.add(dedupe);
    }
  });
}

export function checkLimit(limit: number, what: string): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`${what}: limit must be an integer from 1 to 1000, got ${limit}`);
  return limit;
}

export function checkCursor(c: AuditCursor): AuditCursor {
  if (!Number.isSafeInteger(c.at) || c.at < 0 || c.at > MAX_AT || !DECIMAL_ID.test(c.id)) throw new RangeError('auditQuery: after must be a cursor the store returned');
  return c;
}

/** auditQuery's order: 'asc' (the default) or 'desc'; anything else is a caller bug. */
export function checkOrder(order: unknown): 'asc' | 'desc' {
  if (order === undefined || order === 'asc') return 'asc';
  if (order === 'desc') return 'desc';
  throw new RangeError(`auditQuery: order must be 'asc' or 'desc', got ${JSON.stringify(order) ?? typeof order}`);
}

export function checkFromSeq(fromSeq: number): number {
  if (!Number.isFinite(fromSeq)) throw new RangeError(`auditRange: fromSeq must be a finite number, got ${fromSeq}`);
  return fromSeq;
}

export function checkAfterId(afterId: string): number {
  if (!DECIMAL_ID.test(afterId)) throw new RangeError(`auditSince: afterId must be a decimal id, got ${afterId}`);
  return Number(afterId);
}
