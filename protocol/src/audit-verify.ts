/**
 * The offline verifier of audit exports (protocol/AUDIT.md §6). Pure, no I/O: `sp-audit-verify`
 * feeds it a file, the gateway may feed it its own export, a test feeds it strings.
 *
 * Streaming and constant memory per chain: it keeps, for the chain being read, its last seq and
 * hash and how far a signed checkpoint covers it, and for every chain seen its summary; never the
 * entries. It stops at the first problem and names the line, chain, seq and entry id.
 *
 * @example
 *   const v = new AuditExportVerifier({ keys: trustedKeys([{ kid: 'audit-1', publicKey }]) });
 *   lines.forEach((text, i) => v.pushText(text, i + 1));
 *   const r = v.finish(); // { ok: true, entries: 1200, chains: [...], checkpoints: 3, kids: ['audit-1'] }
 *
 *   // or a whole file, JSON Lines or CSV, read in chunks:
 *   const reader = new AuditExportReader({ keys });
 *   for await (const chunk of stream) if (!reader.write(chunk)) break;
 *   const result = reader.end();
 */
import {
  AUDIT_EXPORT_FORMAT,
  AUDIT_GENESIS,
  auditEntryOf,
  auditHash,
  verifyAuditSignature,
  type AuditCheckpoint,
  type ExportChainSummary,
  type ExportCheckpointLine,
  type ExportEntryLine,
  type ExportHeader,
  type ExportLine,
  type ExportTrailer,
} from './audit.js';
import { csvCells, CsvRowReader, EXPORT_CSV_COLUMNS, isoTime, MAX_EXPORT_LINE_CHARS } from './audit-export.js';
import type { TrustedKeys } from './keys.js';

/** Why an export failed (AUDIT.md §6.2). */
export const AUDIT_PROBLEM_CODES = [
  'format',
  'unknown-key',
  'bad-signature',
  'hash-mismatch',
  'seq-gap',
  'out-of-order',
  'unanchored',
  'checkpoint-mismatch',
  'truncated',
  'trailer-mismatch',
  'csv-mismatch',
] as const;
export type AuditProblemCode = (typeof AUDIT_PROBLEM_CODES)[number];

export interface AuditProblem {
  code: AuditProblemCode;
  /** 1-based line of the file (for CSV, the line the row starts on; line 1 is the column row). */
  line: number;
  chain?: string;
  seq?: number;
  /** The entry's `id`, when the problem is about one entry. */
  id?: string;
  /** For people: names the chain, seq and entry id. */
  message: string;
}

export type AuditVerifyResult =
  | {
      ok: true;
      entries: number;
      /** Each chain's segment, in the order of the file. */
      chains: ExportChainSummary[];
      /** Checkpoint lines of the export verified (start checkpoints included). */
      checkpoints: number;
      /** Saved checkpoints (`checkpoints` option) that fell inside the export and matched. */
      savedCheckpoints: number;
      /** Every kid that signed a checkpoint line or the trailer. */
      kids: string[];
    }
  | {
      ok: false;
      /** Entries verified before the problem. */
      entries: number;
      problem: AuditProblem;
    };

export interface AuditVerifierOptions {
  /** The audit public keys the owner trusts (GET /api/v1/audit/keys); never the export's header. */
  keys: TrustedKeys;
  /**
   * Checkpoints the owner saved earlier (GET /api/v1/audit/checkpoints). Each one whose (chain,
   * size) falls inside the export must match the recomputed chain; in an export not limited in
   * time (`query.to` absent) one beyond the end of a chain means entries were removed.
   */
  checkpoints?: readonly AuditCheckpoint[];
}

type Parsed<T> = T | { error: string; chain?: string; seq?: number; id?: string };

const HEX64 = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * Check the shape of one export line (AUDIT.md §5.1). Only what the verifier relies on is
 * checked; everything else an entry holds is covered by its hash.
 */
export function checkExportLine(value: unknown): Parsed<ExportLine> {
  if (!isObject(value)) return { error: 'not a JSON object' };
  const o = value;
  const chain = typeof o.chain === 'string' ? o.chain : undefined;
  switch (o.record) {
    case 'header':
      if (o.format !== AUDIT_EXPORT_FORMAT) return { error: `unsupported export format ${JSON.stringify(o.format)} (expected "${AUDIT_EXPORT_FORMAT}")` };
      if (!isTime(o.exportedAt)) return { error: 'header: exportedAt must be ms epoch' };
      if (!isObject(o.query) || !Array.isArray(o.query.chains) || !o.query.chains.every(isText)) return { error: 'header: query.chains must be a list of chains' };
      if ((o.query.from !== undefined && !isTime(o.query.from)) || (o.query.to !== undefined && !isTime(o.query.to)))
        return { error: 'header: query.from and query.to must be ms epoch' };
      if (!Array.isArray(o.keys)) return { error: 'header: keys must be a list' };
      return o as unknown as ExportHeader;
    case 'entry': {
      const seq = isPosInt(o.seq) ? o.seq : undefined;
      const id = typeof o.id === 'string' ? o.id : undefined;
      const at = { ...(chain !== undefined ? { chain } : {}), ...(seq !== undefined ? { seq } : {}), ...(id !== undefined ? { id } : {}) };
      if (o.v !== 1) return { error: `entry: unsupported version ${JSON.stringify(o.v)} (expected 1)`, ...at };
      if (!isText(chain)) return { error: 'entry: chain missing', ...at };
      if (seq === undefined) return { error: 'entry: seq must be a whole number ≥ 1', ...at };
      if (!isText(id)) return { error: 'entry: id missing', ...at };
      if (typeof o.hash !== 'string' || !HEX64.test(o.hash)) return { error: 'entry: hash must be 64 lowercase hex characters', ...at };
      if (!isTime(o.at)) return { error: 'entry: at must be ms epoch', ...at };
      if (!isText(o.type)) return { error: 'entry: type missing', ...at };
      if (!isObject(o.actor) || !isText(o.actor.kind)) return { error: 'entry: actor must be an object with a kind', ...at };
      return o as unknown as ExportEntryLine;
    }
    case 'checkpoint': {
      const seq = isPosInt(o.size) ? o.size : undefined;
      const at = { ...(chain !== undefined ? { chain } : {}), ...(seq !== undefined ? { seq } : {}) };
      if (o.v !== 1) return { error: `checkpoint: unsupported version ${JSON.stringify(o.v)} (expected 1)`, ...at };
      if (!isText(chain)) return { error: 'checkpoint: chain missing', ...at };
      if (seq === undefined) return { error: 'checkpoint: size must be a whole number ≥ 1', ...at };
      if (typeof o.head !== 'string' || !HEX64.test(o.head)) return { error: 'checkpoint: head must be 64 lowercase hex characters', ...at };
      if (!isTime(o.at)) return { error: 'checkpoint: at must be ms epoch', ...at };
      if (!isText(o.kid) || !isText(o.sig)) return { error: 'checkpoint: kid and sig required', ...at };
      return o as unknown as ExportCheckpointLine;
    }
    case 'trailer':
      if (o.v !== 1) return { error: `trailer: unsupported version ${JSON.stringify(o.v)} (expected 1)` };
      if (o.format !== AUDIT_EXPORT_FORMAT) return { error: `trailer: unsupported export format ${JSON.stringify(o.format)}` };
      if (!isTime(o.exportedAt)) return { error: 'trailer: exportedAt must be ms epoch' };
      if (typeof o.entries !== 'number' || !Number.isSafeInteger(o.entries) || o.entries < 0) return { error: 'trailer: entries must be a whole number' };
      if (
        !Array.isArray(o.chains) ||
        !o.chains.every((c) => isObject(c) && isText(c.chain) && isPosInt(c.firstSeq) && isPosInt(c.lastSeq) && typeof c.head === 'string' && HEX64.test(c.head))
      )
        return { error: 'trailer: chains must be a list of {chain, firstSeq, lastSeq, head}' };
      if (!isText(o.kid) || !isText(o.sig)) return { error: 'trailer: kid and sig required' };
      return o as unknown as ExportTrailer;
    default:
      return { error: o.record === undefined ? 'no record field' : `unknown record ${JSON.stringify(o.record)}` };
  }
}

/**
 * One line of the JSON Lines form, parsed and shape-checked.
 * @example parseExportLine('{"record":"entry",…}') → { ok: true, line: {record: 'entry', …} }
 */
export function parseExportLine(text: string): { ok: true; line: ExportLine } | { ok: false; message: string; chain?: string; seq?: number; id?: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's message quotes the text around the fault; a line is the owner's data, so say less.
    return { ok: false, message: 'not JSON' };
  }
  const line = checkExportLine(value);
  if ('error' in line) {
    const { error, ...at } = line;
    return { ok: false, message: error, ...at };
  }
  return { ok: true, line };
}

/** `chain building:bld-01 seq 7 (id 1042)`: how messages name an entry. */
function entryName(chain: string, seq: number, id?: string): string {
  return `chain ${chain} seq ${seq}${id !== undefined ? ` (id ${id})` : ''}`;
}

/** The chain being read. */
interface Block {
  chain: string;
  /** Size of the start checkpoint, if the segment starts after seq 1. */
  anchor: number | undefined;
  /** Entries so far: the seq of the last entry (or the anchor's size), and its hash. */
  size: number;
  head: string;
  firstSeq: number | undefined;
  lastId: string | undefined;
  lastLine: number;
  entries: number;
  /** Size covered by the last checkpoint line (or the anchor). */
  covered: number;
  lastCheckpointSig: string | undefined;
}

/** An entry whose seq jumped ahead: a gap, unless the very next line is the entry that belongs here (a swap). */
interface Pending {
  kind: 'gap' | 'unanchored';
  line: number;
  chain: string;
  seq: number;
  id: string;
  expected: number;
  lastId: string | undefined;
}

export class AuditExportVerifier {
  readonly #keys: TrustedKeys;
  /** Saved checkpoints by chain, then size. */
  readonly #saved = new Map<string, Map<number, AuditCheckpoint[]>>();
  #header: ExportHeader | undefined;
  #trailer = false;
  #block: Block | undefined;
  #pending: Pending | undefined;
  readonly #finished = new Set<string>();
  readonly #summaries: ExportChainSummary[] = [];
  readonly #kids = new Set<string>();
  #entries = 0;
  #lastEntryLine = 0;
  #checkpoints = 0;
  #savedMatched = 0;
  #lastLine = 0;
  #problem: AuditProblem | undefined;

  constructor(opts: AuditVerifierOptions) {
    this.#keys = opts.keys;
    for (const cp of opts.checkpoints ?? []) {
      const parsed = checkExportLine({ ...cp, record: 'checkpoint' });
      if ('error' in parsed) throw new TypeError(`saved checkpoint: ${parsed.error}`);
      let bySize = this.#saved.get(cp.chain);
      if (!bySize) {
        bySize = new Map<number, AuditCheckpoint[]>();
        this.#saved.set(cp.chain, bySize);
      }
      const list = bySize.get(cp.size);
      if (list) list.push(cp);
      else bySize.set(cp.size, [cp]);
    }
  }

  /** The first problem, once there is one. */
  get problem(): AuditProblem | undefined {
    return this.#problem;
  }

  /** One line of the JSON Lines form (its text, without the line break). */
  pushText(text: string, lineNo: number): boolean {
    if (this.#problem) return false;
    const parsed = parseExportLine(text);
    if (!parsed.ok) {
      const { ok: _ok, message, ...at } = parsed;
      return this.fail({ code: 'format', line: lineNo, ...at, message: `line ${lineNo}: ${message}` });
    }
    return this.push(parsed.line, lineNo);
  }

  /** One parsed line (a JSON value). Returns false once the export has failed. */
  push(value: unknown, lineNo: number): boolean {
    if (this.#problem) return false;
    this.#lastLine = lineNo;
    const line = checkExportLine(value);
    if (this.#pending) return this.#resolvePending(line, lineNo);
    if ('error' in line) {
      const { error, ...at } = line;
      return this.fail({ code: 'format', line: lineNo, ...at, message: `line ${lineNo}: ${error}` });
    }
    if (this.#trailer) return this.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: a ${line.record} line after the trailer` });
    if (!this.#header) {
      if (line.record !== 'header') return this.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: the export must start with its header line, found a ${line.record} line` });
      this.#header = line;
      return true;
    }
    switch (line.record) {
      case 'header':
        return this.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: a second header` });
      case 'entry':
        return this.#entry(line, lineNo);
      case 'checkpoint':
        return this.#checkpoint(line, lineNo);
      case 'trailer':
        return this.#trailerLine(line, lineNo);
    }
  }

  /**
   * Record a problem found outside the verifier (e.g. a CSV cell that differs from its `json`).
   * An entry held back as a possible gap is reported first: it came earlier.
   */
  fail(problem: AuditProblem): false {
    if (this.#problem) return false;
    if (this.#pending) {
      this.#failPending();
      return false;
    }
    // An entry counted on this very line is not verified after all.
    if (problem.line === this.#lastEntryLine && this.#entries > 0 && problem.code === 'csv-mismatch') this.#entries -= 1;
    this.#problem = problem;
    return false;
  }

  finish(): AuditVerifyResult {
    if (!this.#problem && this.#pending) this.#failPending();
    if (!this.#problem && !this.#header)
      this.fail({ code: 'format', line: this.#lastLine || 1, message: 'the export is empty: no header line' });
    if (!this.#problem && !this.#trailer)
      this.fail({
        code: 'truncated',
        line: this.#lastLine,
        message: `the export ends at line ${this.#lastLine} without its signed trailer: it was cut short, and entries after that point may be missing`,
      });
    if (this.#problem) return { ok: false, entries: this.#entries, problem: this.#problem };
    return {
      ok: true,
      entries: this.#entries,
      chains: [...this.#summaries],
      checkpoints: this.#checkpoints,
      savedCheckpoints: this.#savedMatched,
      kids: [...this.#kids],
    };
  }

  // ── entries ──────────────────────────────────────────────────────────────────────────────────

  #entry(e: ExportEntryLine, lineNo: number): boolean {
    let b = this.#block;
    if (!b || b.chain !== e.chain) {
      if (!this.#startBlock(e.chain, lineNo)) return false;
      b = this.#newBlock(e.chain, undefined, AUDIT_GENESIS, lineNo);
    }
    const expected = b.size + 1;
    if (e.seq > expected) {
      this.#pending = { kind: b.entries === 0 && b.anchor === undefined ? 'unanchored' : 'gap', line: lineNo, chain: e.chain, seq: e.seq, id: e.id, expected, lastId: b.lastId };
      return true;
    }
    if (e.seq < expected) {
      const name = entryName(e.chain, e.seq, e.id);
      const message =
        b.entries === 0
          ? `${name} comes right after the start checkpoint at size ${b.size}: the segment must start at seq ${expected}`
          : e.seq === b.size && e.id === b.lastId
            ? `${name} appears twice (duplicated line)`
            : `${name} comes after seq ${b.size}${b.lastId !== undefined ? ` (id ${b.lastId})` : ''}: entries are out of order`;
      return this.fail({ code: 'out-of-order', line: lineNo, chain: e.chain, seq: e.seq, id: e.id, message });
    }
    const computed = auditHash(b.head, auditEntryOf(e));
    if (computed !== e.hash) {
      const name = entryName(e.chain, e.seq, e.id);
      const before =
        b.entries > 0
          ? `, or the entry before it (seq ${b.size}${b.lastId !== undefined ? `, id ${b.lastId}` : ''}) was altered and its hash recomputed`
          : b.anchor !== undefined
            ? `, or it does not follow the start checkpoint at size ${b.anchor}`
            : '';
      return this.fail({
        code: 'hash-mismatch',
        line: lineNo,
        chain: e.chain,
        seq: e.seq,
        id: e.id,
        message: `${name} does not hash to its stated hash: this entry was altered${before}`,
      });
    }
    b.size = e.seq;
    b.head = e.hash;
    b.firstSeq ??= e.seq;
    b.lastId = e.id;
    b.lastLine = lineNo;
    b.entries += 1;
    this.#entries += 1;
    this.#lastEntryLine = lineNo;
    return this.#checkSaved(b, lineNo, e.id);
  }

  #resolvePending(line: Parsed<ExportLine>, lineNo: number): boolean {
    const p = this.#pending;
    if (p && !('error' in line) && line.record === 'entry' && line.chain === p.chain && line.seq >= p.expected && line.seq < p.seq) {
      this.#pending = undefined;
      return this.fail({
        code: 'out-of-order',
        line: p.line,
        chain: p.chain,
        seq: p.seq,
        id: p.id,
        message: `${entryName(p.chain, p.seq, p.id)} comes before seq ${line.seq} (id ${line.id}, line ${lineNo}): entries are out of order`,
      });
    }
    this.#failPending();
    return false;
  }

  #failPending(): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    const name = entryName(p.chain, p.seq, p.id);
    if (p.kind === 'unanchored') {
      this.fail({
        code: 'unanchored',
        line: p.line,
        chain: p.chain,
        seq: p.seq,
        id: p.id,
        message: `chain ${p.chain} starts at seq ${p.seq} (id ${p.id}) without a start checkpoint at size ${p.seq - 1}: nothing signed says where it begins`,
      });
      return;
    }
    const missing = p.seq - p.expected === 1 ? `entry seq ${p.expected} is missing` : `entries seq ${p.expected}…${p.seq - 1} are missing`;
    const after = p.expected > 1 ? `seq ${p.expected - 1}${p.lastId !== undefined ? ` (id ${p.lastId})` : ''} is followed by` : 'the start checkpoint is followed by';
    this.fail({ code: 'seq-gap', line: p.line, chain: p.chain, seq: p.seq, id: p.id, message: `chain ${p.chain}: ${missing} (${after} ${name})` });
  }

  // ── checkpoints ──────────────────────────────────────────────────────────────────────────────

  #signature(body: ExportCheckpointLine | ExportTrailer, lineNo: number, what: string, at: { chain?: string; seq?: number }): boolean {
    // A checkpoint is signed as the API serves it, without the export's `record`; the trailer is
    // signed as it stands, `record` included (AUDIT.md §5.1.3, §5.1.5).
    const { record, ...checkpoint } = body;
    const signed = record === 'checkpoint' ? checkpoint : body;
    const check = verifyAuditSignature(signed, this.#keys);
    if (check === 'ok') {
      this.#kids.add(body.kid);
      return true;
    }
    const message =
      check === 'unknown-key'
        ? `${what} is signed with key "${body.kid}", which is not among the trusted audit keys`
        : `${what} has a bad signature: it was altered or forged (key "${body.kid}")`;
    return this.fail({ code: check, line: lineNo, ...at, message });
  }

  #checkpoint(cp: ExportCheckpointLine, lineNo: number): boolean {
    const what = `the checkpoint of chain ${cp.chain} at size ${cp.size}`;
    if (!this.#signature(cp, lineNo, what, { chain: cp.chain, seq: cp.size })) return false;
    this.#checkpoints += 1;
    let b = this.#block;
    if (!b || b.chain !== cp.chain) {
      // A start checkpoint: the anchor the segment's first entry hashes on (AUDIT.md §5.1).
      if (!this.#startBlock(cp.chain, lineNo)) return false;
      b = this.#newBlock(cp.chain, cp.size, cp.head, lineNo);
      b.lastCheckpointSig = cp.sig;
      return this.#checkSaved(b, lineNo, undefined);
    }
    const at = { chain: cp.chain, seq: cp.size };
    if (cp.size > b.size) {
      const missing = b.entries === 0 ? `no entries follow the start checkpoint at size ${b.size}` : `the entries stop at seq ${b.size}${b.lastId !== undefined ? ` (id ${b.lastId})` : ''}`;
      return this.fail({
        code: 'checkpoint-mismatch',
        line: lineNo,
        ...at,
        message: `${what} says the chain held ${cp.size} entries, but ${missing}: entries seq ${b.size + 1}…${cp.size} were removed`,
      });
    }
    if (cp.size < b.size || (b.entries === 0 && b.anchor !== cp.size))
      return this.fail({ code: 'out-of-order', line: lineNo, ...at, message: `${what} is out of place: it belongs right after seq ${cp.size}, not after seq ${b.size}` });
    if (cp.head !== b.head) {
      const since = Math.min(b.covered + 1, b.size);
      return this.fail({
        code: 'checkpoint-mismatch',
        line: lineNo,
        ...at,
        ...(b.lastId !== undefined ? { id: b.lastId } : {}),
        message: `${what} (signed ${isoTime(cp.at)}) does not match the entries: they hash to ${b.head} at seq ${b.size}, the signed head is ${cp.head}. An entry between seq ${since} and ${b.size} was altered, removed or reordered (with hashes recomputed)`,
      });
    }
    if (cp.sig === b.lastCheckpointSig) return this.fail({ code: 'out-of-order', line: lineNo, ...at, message: `${what} appears twice (duplicated line)` });
    b.lastCheckpointSig = cp.sig;
    b.covered = cp.size;
    return true;
  }

  /** Saved checkpoints at the chain's current size must match it. */
  #checkSaved(b: Block, lineNo: number, id: string | undefined): boolean {
    const list = this.#saved.get(b.chain)?.get(b.size);
    for (const cp of list ?? []) {
      const what = `your saved checkpoint of chain ${b.chain} at size ${cp.size}`;
      const at = { chain: b.chain, seq: b.size, ...(id !== undefined ? { id } : {}) };
      const check = verifyAuditSignature(cp as unknown as Record<string, unknown>, this.#keys);
      if (check !== 'ok')
        return this.fail({
          code: check,
          line: lineNo,
          ...at,
          message: check === 'unknown-key' ? `${what} is signed with key "${cp.kid}", which is not trusted` : `${what} has a bad signature`,
        });
      if (cp.head !== b.head)
        return this.fail({
          code: 'checkpoint-mismatch',
          line: lineNo,
          ...at,
          message: `${what} (signed ${isoTime(cp.at)}) says head ${cp.head}, but the export's ${b.entries === 0 ? 'start checkpoint' : `entries up to ${entryName(b.chain, b.size, id)}`} give ${b.head}: the history was rewritten after you saved it`,
        });
      this.#savedMatched += 1;
    }
    return true;
  }

  // ── chain blocks ─────────────────────────────────────────────────────────────────────────────

  /** Close the block being read (if any) before a line of `chain` starts a new one. */
  #startBlock(chain: string, lineNo: number): boolean {
    if (this.#block && !this.#endBlock(this.#block)) return false;
    if (this.#finished.has(chain))
      return this.fail({ code: 'out-of-order', line: lineNo, chain, message: `chain ${chain} appears again at line ${lineNo}: each chain's lines must be together` });
    return true;
  }

  #newBlock(chain: string, anchor: number | undefined, head: string, lineNo: number): Block {
    const size = anchor ?? 0;
    const b: Block = { chain, anchor, size, head, firstSeq: undefined, lastId: undefined, lastLine: lineNo, entries: 0, covered: size, lastCheckpointSig: undefined };
    this.#block = b;
    return b;
  }

  #endBlock(b: Block): boolean {
    this.#block = undefined;
    this.#finished.add(b.chain);
    // A start checkpoint with nothing after it: the trailer check reports the chain's missing entries.
    if (b.entries === 0 || b.firstSeq === undefined) return true;
    if (b.covered < b.size)
      return this.fail({
        code: 'unanchored',
        line: b.lastLine,
        chain: b.chain,
        seq: b.size,
        ...(b.lastId !== undefined ? { id: b.lastId } : {}),
        message: `chain ${b.chain}: entries seq ${b.covered + 1}…${b.size} (the last id ${b.lastId ?? '?'}) are not covered by a signed checkpoint`,
      });
    this.#summaries.push({ chain: b.chain, firstSeq: b.firstSeq, lastSeq: b.size, head: b.head });
    return true;
  }

  // ── trailer ──────────────────────────────────────────────────────────────────────────────────

  #trailerLine(t: ExportTrailer, lineNo: number): boolean {
    if (this.#block && !this.#endBlock(this.#block)) return false;
    if (!this.#signature(t, lineNo, 'the trailer', {})) return false;
    const bad = (message: string, chain?: string): boolean =>
      this.fail({ code: 'trailer-mismatch', line: lineNo, ...(chain !== undefined ? { chain } : {}), message: `the signed trailer ${message}` });
    const header = this.#header;
    if (header && header.exportedAt !== t.exportedAt) return bad(`was made at ${isoTime(t.exportedAt)}, the header says ${isoTime(header.exportedAt)}: lines from two exports were mixed`);
    const seen = new Map(this.#summaries.map((s) => [s.chain, s]));
    const listed = new Set<string>();
    for (const c of t.chains) {
      if (listed.has(c.chain)) return bad(`lists chain ${c.chain} twice`, c.chain);
      listed.add(c.chain);
      const s = seen.get(c.chain);
      if (!s) return bad(`lists chain ${c.chain} with seq ${c.firstSeq}…${c.lastSeq}, but the export holds no entries of it: they were removed`, c.chain);
      if (s.firstSeq !== c.firstSeq || s.lastSeq !== c.lastSeq)
        return bad(`says chain ${c.chain} holds seq ${c.firstSeq}…${c.lastSeq}, the export holds seq ${s.firstSeq}…${s.lastSeq}: entries were removed or added`, c.chain);
      if (s.head !== c.head) return bad(`says chain ${c.chain} ends in head ${c.head}, the export's entries end in ${s.head}`, c.chain);
    }
    for (const s of this.#summaries) if (!listed.has(s.chain)) return bad(`does not list chain ${s.chain}, which the export holds (seq ${s.firstSeq}…${s.lastSeq}): it was added`, s.chain);
    if (t.entries !== this.#entries) return bad(`counts ${t.entries} entries, the export holds ${this.#entries}`);
    if (!this.#savedBeyondEnd(lineNo)) return false;
    this.#trailer = true;
    return true;
  }

  /**
   * In an export not limited in time, a saved checkpoint of an exported (or requested) chain
   * beyond the chain's last entry means entries were removed from its end.
   */
  #savedBeyondEnd(lineNo: number): boolean {
    const header = this.#header;
    if (!header || header.query.to !== undefined) return true;
    const ends = new Map(this.#summaries.map((s) => [s.chain, s.lastSeq]));
    for (const chain of header.query.chains) if (!ends.has(chain)) ends.set(chain, 0);
    for (const [chain, bySize] of this.#saved) {
      const end = ends.get(chain);
      if (end === undefined) continue;
      for (const [size, list] of bySize) {
        if (size <= end) continue;
        for (const cp of list) {
          if (verifyAuditSignature(cp as unknown as Record<string, unknown>, this.#keys) !== 'ok') continue;
          return this.fail({
            code: 'checkpoint-mismatch',
            line: lineNo,
            chain,
            seq: size,
            message: `your saved checkpoint says chain ${chain} held ${size} entries (signed ${isoTime(cp.at)}), but this export, not limited in time, ends at seq ${end}: entries seq ${end + 1}…${size} were removed`,
          });
        }
      }
    }
    return true;
  }
}

export type ExportTextFormat = 'jsonl' | 'csv';

/**
 * Feeds a whole export file, in chunks of text, to an `AuditExportVerifier`: splits lines (LF or
 * CRLF), drops a leading byte-order mark, tells JSON Lines from CSV by the first line, and for CSV
 * assembles rows, takes each row's `json` cell as the line, and checks that the visible cells
 * equal what `csvCells` makes of it (`csv-mismatch`). Memory: one line (≤ 1 MiB) plus the verifier's.
 */
export class AuditExportReader {
  readonly verifier: AuditExportVerifier;
  #buf = '';
  #lineNo = 0;
  #format: ExportTextFormat | undefined;
  #columnsSeen = false;
  readonly #rows = new CsvRowReader();

  constructor(opts: AuditVerifierOptions) {
    this.verifier = new AuditExportVerifier(opts);
  }

  /** 'jsonl' or 'csv' once the first line is read. */
  get format(): ExportTextFormat | undefined {
    return this.#format;
  }

  /** More text of the file. Returns false once the export has failed (stop reading). */
  write(chunk: string): boolean {
    if (this.verifier.problem) return false;
    this.#buf += chunk;
    let start = 0;
    for (let nl = this.#buf.indexOf('\n'); nl >= 0; nl = this.#buf.indexOf('\n', start)) {
      const line = this.#buf.slice(start, nl);
      start = nl + 1;
      if (!this.#line(line)) {
        this.#buf = '';
        return false;
      }
    }
    this.#buf = start === 0 ? this.#buf : this.#buf.slice(start);
    if (this.#buf.length > MAX_EXPORT_LINE_CHARS) {
      this.#buf = '';
      return this.verifier.fail({ code: 'format', line: this.#lineNo + 1, message: `line ${this.#lineNo + 1} is longer than ${MAX_EXPORT_LINE_CHARS} characters` });
    }
    return true;
  }

  /** The end of the file: the verdict. */
  end(): AuditVerifyResult {
    if (!this.verifier.problem && this.#buf !== '') this.#line(this.#buf);
    this.#buf = '';
    if (!this.verifier.problem && this.#rows.open)
      this.verifier.fail({ code: 'format', line: this.#rows.startLine, message: `line ${this.#rows.startLine}: a quoted cell is never closed` });
    return this.verifier.finish();
  }

  #line(raw: string): boolean {
    this.#lineNo += 1;
    const lineNo = this.#lineNo;
    let text = raw;
    if (lineNo === 1 && text.startsWith('\ufeff')) text = text.slice(1);
    if (this.#format === undefined) {
      const t = text.trimStart();
      if (t === '') return true;
      if (t.startsWith('{')) this.#format = 'jsonl';
      else if (t.startsWith('record,') || t.startsWith('"record",')) this.#format = 'csv';
      else return this.verifier.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: not an audit export (neither a JSON line nor the CSV column row)` });
    }
    if (this.#format === 'jsonl') {
      if (text.endsWith('\r')) text = text.slice(0, -1);
      if (text.trim() === '') return true;
      return this.verifier.pushText(text, lineNo);
    }
    const row = this.#rows.push(text, lineNo);
    if (row === undefined) return true;
    if ('error' in row) return this.verifier.fail({ code: 'format', line: row.line, message: `line ${row.line}: ${row.error}` });
    return this.#csvRow(row.cells, row.line);
  }

  #csvRow(cells: string[], lineNo: number): boolean {
    if (!this.#columnsSeen) {
      this.#columnsSeen = true;
      if (cells.length !== EXPORT_CSV_COLUMNS.length || cells.some((c, i) => c !== EXPORT_CSV_COLUMNS[i]))
        return this.verifier.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: the CSV column row must be ${EXPORT_CSV_COLUMNS.join(',')}` });
      return true;
    }
    if (cells.length !== EXPORT_CSV_COLUMNS.length)
      return this.verifier.fail({ code: 'format', line: lineNo, message: `line ${lineNo}: ${cells.length} cells, expected ${EXPORT_CSV_COLUMNS.length}` });
    const json = cells[cells.length - 1] ?? '';
    const parsed = parseExportLine(json);
    if (!parsed.ok) {
      const { ok: _ok, message, ...at } = parsed;
      return this.verifier.fail({ code: 'format', line: lineNo, ...at, message: `line ${lineNo}: the json cell: ${message}` });
    }
    if (!this.verifier.push(parsed.line, lineNo)) return false;
    const expected = csvCells(parsed.line);
    for (let i = 0; i < EXPORT_CSV_COLUMNS.length - 1; i += 1) {
      if (cells[i] === expected[i]) continue;
      const l = parsed.line as unknown as Record<string, unknown>;
      const chain = typeof l.chain === 'string' ? l.chain : undefined;
      const seq = typeof l.seq === 'number' ? l.seq : typeof l.size === 'number' ? l.size : undefined;
      const id = typeof l.id === 'string' ? l.id : undefined;
      const what = chain !== undefined && seq !== undefined ? (parsed.line.record === 'entry' ? entryName(chain, seq, id) : `the checkpoint of chain ${chain} at size ${seq}`) : `the ${parsed.line.record} line`;
      return this.verifier.fail({
        code: 'csv-mismatch',
        line: lineNo,
        ...(chain !== undefined ? { chain } : {}),
        ...(seq !== undefined ? { seq } : {}),
        ...(id !== undefined ? { id } : {}),
        message: `${what}: the visible cell "${EXPORT_CSV_COLUMNS[i]}" reads ${JSON.stringify(cells[i])}, but the signed content (json cell) says ${JSON.stringify(expected[i])}: the cell was edited`,
      });
    }
    return true;
  }
}

/** Verify a whole export held in memory (JSON Lines or CSV). */
export function verifyAuditExport(text: string, opts: AuditVerifierOptions): AuditVerifyResult {
  const reader = new AuditExportReader(opts);
  reader.write(text);
  return reader.end();
}
