/**
 * The audit trail's data formats (DESIGN §8, protocol/AUDIT.md): entries, hash chains, signed
 * checkpoints, and the export that an owner verifies offline. Pure, no I/O: the gateway appends
 * and exports with these functions, `sp-audit-verify` checks with them, so both agree byte for byte.
 *
 * - An entry belongs to one chain: `building:<id>` for everything about a building, `system` for
 *   the rest (logins, rejected connections of unknown clients).
 * - `hash = SHA-256(prev ‖ JCS(entry))` in lowercase hex, `prev` the previous entry's hash as 32
 *   raw bytes (32 zero bytes before the first entry). The entry carries its chain and its `seq`
 *   (1, 2, …), so an entry moved to another place or another chain no longer hashes right.
 * - A checkpoint `{v, chain, size, head, at, kid}` says "the first `size` entries of `chain` end in
 *   `head`"; it is signed with the gateway's audit key (Ed25519 over `sp-audit/v1\n` + JCS).
 *
 * @example
 *   const e: AuditEntry = { v: 1, chain: 'system', seq: 1, at: 1764000000000, type: 'auth.login', actor: { kind: 'user', id: 'usr-1' } };
 *   const h = auditHash(AUDIT_GENESIS, e); // 64 hex chars; the next entry hashes on top of h
 */
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { jcs } from './jcs.js';
import type { SigningKey, TrustedKeys } from './keys.js';
import type { AuditCheckpoint, AuditCheckpointBody, AuditEntry, AuditItem } from './audit-types.js';

/** The hash before the first entry of every chain. */
export const AUDIT_GENESIS = '0'.repeat(64);
/** Domain separation: an audit signature can never be mistaken for an MQTT envelope's (`sp/v1\n`). */
export const AUDIT_SIGNING_PREFIX = 'sp-audit/v1\n';
export const AUDIT_EXPORT_FORMAT = 'smart-passage-audit-export/1';
export const SYSTEM_CHAIN = 'system';

// The pure types live apart so the browser can import them (see audit-types.ts); re-exported here
// so every existing import keeps working.
export { AUDIT_TYPES } from './audit-types.js';
export type { AuditType, AuditActor, AuditEntry, AuditItem, AuditCheckpointBody, AuditCheckpoint } from './audit-types.js';

/** The hashed part of an item (drops `id`, `hash` and an export line's `record`). */
export function auditEntryOf(item: object): AuditEntry {
  const { id: _id, hash: _hash, record: _record, ...entry } = item as Record<string, unknown>;
  return entry as unknown as AuditEntry;
}

/** `SHA-256(prev ‖ JCS(entry))`, lowercase hex. `prev` is 64 hex chars. */
export function auditHash(prev: string, entry: AuditEntry): string {
  if (!/^[0-9a-f]{64}$/.test(prev)) throw new TypeError('prev must be 64 lowercase hex characters');
  return createHash('sha256').update(Buffer.from(prev, 'hex')).update(jcs(entry), 'utf8').digest('hex');
}

/** The bytes an audit signature covers: the prefix and the JCS of everything but `sig`. */
export function auditSigningBytes(body: Record<string, unknown>): Buffer {
  const { sig: _sig, ...rest } = body;
  return Buffer.from(AUDIT_SIGNING_PREFIX + jcs(rest), 'utf8');
}

export function signAuditCheckpoint(body: Omit<AuditCheckpointBody, 'kid'>, key: SigningKey): AuditCheckpoint {
  const full: AuditCheckpointBody = { ...body, kid: key.kid };
  return { ...full, sig: sign(null, auditSigningBytes({ ...full }), key.key).toString('base64url') };
}

/** Check an Ed25519 signature over `auditSigningBytes(body)` with the key named by `body.kid`. */
export function verifyAuditSignature(body: Record<string, unknown>, keys: TrustedKeys): 'ok' | 'unknown-key' | 'bad-signature' {
  const kid = body.kid;
  const sig = body.sig;
  const key: KeyObject | undefined = typeof kid === 'string' ? keys.get(kid) : undefined;
  if (!key) return 'unknown-key';
  if (typeof sig !== 'string') return 'bad-signature';
  try {
    const bytes = Buffer.from(sig, 'base64url');
    // One spelling only: the decoder ignores the last character's spare bits (see envelope.ts).
    if (bytes.toString('base64url') !== sig) return 'bad-signature';
    return verify(null, auditSigningBytes(body), key, bytes) ? 'ok' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}

// ── Export lines (protocol/AUDIT.md §4) ─────────────────────────────────────────────────────────

export interface ExportHeader {
  record: 'header';
  format: typeof AUDIT_EXPORT_FORMAT;
  exportedAt: number;
  /** What was asked for; the export is widened to the enclosing checkpoints so it verifies. */
  query: { chains: string[]; from?: number; to?: number };
  /** Informational: the verifier trusts only keys given to it, never these. */
  keys: { kid: string; publicKey: string }[];
}
export type ExportEntryLine = AuditItem & { record: 'entry' };
export type ExportCheckpointLine = AuditCheckpoint & { record: 'checkpoint' };
export interface ExportChainSummary {
  chain: string;
  firstSeq: number;
  lastSeq: number;
  head: string;
}
/** Last line, signed like a checkpoint: cutting the file short loses it. */
export interface ExportTrailer {
  record: 'trailer';
  v: 1;
  format: typeof AUDIT_EXPORT_FORMAT;
  exportedAt: number;
  entries: number;
  chains: ExportChainSummary[];
  kid: string;
  sig: string;
}
export type ExportLine = ExportHeader | ExportEntryLine | ExportCheckpointLine | ExportTrailer;

export function signExportTrailer(body: Omit<ExportTrailer, 'kid' | 'sig'>, key: SigningKey): ExportTrailer {
  const full = { ...body, kid: key.kid };
  return { ...full, sig: sign(null, auditSigningBytes(full), key.key).toString('base64url') };
}
