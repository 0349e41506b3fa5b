// The offline verifier of audit exports (AUDIT.md §6): synthetic exports signed with real keys,
// then every kind of tampering an owner must catch, in both the JSON Lines and the CSV form.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AUDIT_EXPORT_FORMAT,
  AUDIT_GENESIS,
  AuditExportReader,
  AuditExportVerifier,
  auditEntryOf,
  auditHash,
  csvHeaderLine,
  csvLine,
  generateRawKeyPair,
  jsonlLine,
  parseCsvExport,
  parseExportLine,
  privateKeyFromSeed,
  signAuditCheckpoint,
  signExportTrailer,
  trustedKeys,
  verifyAuditExport,
  type AuditActor,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditItem,
  type AuditType,
  type AuditVerifyResult,
  type ExportChainSummary,
  type ExportCheckpointLine,
  type ExportEntryLine,
  type ExportHeader,
  type ExportLine,
  type SigningKey,
} from '../../src/index.js';

const KID = 'audit-2026-11';
const pair = generateRawKeyPair();
const KEY: SigningKey = { kid: KID, key: privateKeyFromSeed(pair.privateKey) };
const KEYS = trustedKeys([{ kid: KID, publicKey: pair.publicKey }]);
const other = generateRawKeyPair();
/** Someone else's key, under the trusted kid: a forger. */
const FORGER: SigningKey = { kid: KID, key: privateKeyFromSeed(other.privateKey) };
/** Someone else's key under its own kid. */
const ROGUE: SigningKey = { kid: 'rogue-1', key: privateKeyFromSeed(other.privateKey) };

const T0 = 1_764_330_000_000;
const A = 'building:bld-01';
const S = 'system';

const ACTORS: AuditActor[] = [
  { kind: 'user', id: 'usr-1', name: 'dispatch' },
  { kind: 'controller', id: 'ctl-7' },
  { kind: 'system' },
  { kind: 'integration', id: 'cad-1' },
];
const TYPES: AuditType[] = ['incident.opened', 'grant.created', 'grant.delivered', 'access.granted', 'access.denied', 'door.pulse.done', 'auth.login'];

/** A whole chain of `n` entries, hashed; some entries carry awkward text for the CSV form. */
function makeChain(chain: string, n: number, firstId: number): AuditItem[] {
  const items: AuditItem[] = [];
  let prev = AUDIT_GENESIS;
  for (let seq = 1; seq <= n; seq += 1) {
    const entry: AuditEntry = {
      v: 1,
      chain,
      seq,
      at: T0 + seq * 1000,
      type: TYPES[seq % TYPES.length]!,
      actor: ACTORS[seq % ACTORS.length]!,
      ...(chain === A ? { buildingId: 'bld-01', doorId: 'street', controllerId: 'ctl-7' } : {}),
      ...(seq % 3 === 0 ? { grantId: `g-${seq}`, incidentId: 'INC-1', unitId: 'unit-3', tagId: '04A1B2C3' } : {}),
      ...(seq === 4 ? { reason: '=HYPERLINK("http://evil.example","click")' } : {}),
      ...(seq === 6 ? { reason: 'wrong door, "floor 3"\nsecond line' } : {}),
      ...(seq === 7 ? { data: { minutes: 30, note: 'café' } } : {}),
    };
    const hash = auditHash(prev, entry);
    prev = hash;
    items.push({ ...entry, id: String(firstId + seq * 2), hash });
  }
  return items;
}

function checkpointOf(items: readonly AuditItem[], size: number, key: SigningKey = KEY): AuditCheckpoint {
  const last = items[size - 1]!;
  return signAuditCheckpoint({ v: 1, chain: last.chain, size, head: last.hash, at: last.at + 500 }, key);
}

interface Segment {
  items: AuditItem[];
  /** First seq exported; a start checkpoint at from-1 precedes it when from > 1. */
  from: number;
  to: number;
  /** Sizes of the checkpoints that exist (the last one covers `to`). */
  checkpoints: number[];
}

const EXPORTED_AT = T0 + 3_600_000;

function buildExport(segments: Segment[], query: ExportHeader['query'] = { chains: segments.map((s) => s.items[0]!.chain) }): ExportLine[] {
  const lines: ExportLine[] = [
    { record: 'header', format: AUDIT_EXPORT_FORMAT, exportedAt: EXPORTED_AT, query, keys: [{ kid: KID, publicKey: pair.publicKey }] },
  ];
  const chains: ExportChainSummary[] = [];
  let entries = 0;
  for (const s of segments) {
    if (s.from > 1) lines.push({ record: 'checkpoint', ...checkpointOf(s.items, s.from - 1) });
    for (let seq = s.from; seq <= s.to; seq += 1) {
      const item = s.items[seq - 1]!;
      lines.push({ record: 'entry', ...item });
      entries += 1;
      if (s.checkpoints.includes(seq)) lines.push({ record: 'checkpoint', ...checkpointOf(s.items, seq) });
    }
    const last = s.items[s.to - 1]!;
    chains.push({ chain: last.chain, firstSeq: s.from, lastSeq: s.to, head: last.hash });
  }
  lines.push(signExportTrailer({ record: 'trailer', v: 1, format: AUDIT_EXPORT_FORMAT, exportedAt: EXPORTED_AT, entries, chains }, KEY));
  return lines;
}

const chainA = makeChain(A, 14, 100);
const chainS = makeChain(S, 20, 101);
/** Building chain from seq 1 (checkpoints 5, 10, and 12 made at export time); system chain seq 9…15 after the checkpoint at 8. */
const SEGMENTS: Segment[] = [
  { items: chainA, from: 1, to: 12, checkpoints: [5, 10, 12] },
  { items: chainS, from: 9, to: 15, checkpoints: [12, 15] },
];
const good = (): ExportLine[] => structuredClone(buildExport(SEGMENTS));

const toJsonl = (lines: readonly ExportLine[]): string => lines.map(jsonlLine).join('');
const toCsv = (lines: readonly ExportLine[]): string => csvHeaderLine() + lines.map(csvLine).join('');
const verify = (lines: readonly ExportLine[], checkpoints?: AuditCheckpoint[]): AuditVerifyResult =>
  verifyAuditExport(toJsonl(lines), { keys: KEYS, ...(checkpoints ? { checkpoints } : {}) });

/** Index (0-based, = line − 1) of the entry line of `chain` at `seq`. */
function entryIndex(lines: readonly ExportLine[], chain: string, seq: number): number {
  const i = lines.findIndex((l) => l.record === 'entry' && l.chain === chain && l.seq === seq);
  if (i < 0) throw new Error(`no entry ${chain} ${seq}`);
  return i;
}
function checkpointIndex(lines: readonly ExportLine[], chain: string, size: number): number {
  const i = lines.findIndex((l) => l.record === 'checkpoint' && l.chain === chain && l.size === size);
  if (i < 0) throw new Error(`no checkpoint ${chain} ${size}`);
  return i;
}
const entryAt = (lines: ExportLine[], i: number) => lines[i] as ExportEntryLine;

/** Give entries from index `i` on (of one chain) the hashes their new content implies, as a careful forger would. */
function rehash(lines: ExportLine[], chain: string, fromSeq: number): void {
  let prev: string | undefined;
  for (const l of lines) {
    if (l.record !== 'entry' || l.chain !== chain) continue;
    if (l.seq < fromSeq) {
      prev = l.hash;
      continue;
    }
    l.hash = auditHash(prev ?? AUDIT_GENESIS, auditEntryOf(l));
    prev = l.hash;
  }
}

function expectProblem(r: AuditVerifyResult, code: string): Extract<AuditVerifyResult, { ok: false }>['problem'] {
  if (r.ok) throw new Error(`expected ${code}, the export verified`);
  expect(r.problem.code, r.problem.message).toBe(code);
  return r.problem;
}

describe('an untouched export', () => {
  const expected = {
    ok: true,
    entries: 19,
    chains: [
      { chain: A, firstSeq: 1, lastSeq: 12, head: chainA[11]!.hash },
      { chain: S, firstSeq: 9, lastSeq: 15, head: chainS[14]!.hash },
    ],
    checkpoints: 6,
    savedCheckpoints: 0,
    kids: [KID],
  };

  it('verifies as JSON Lines', () => {
    expect(verify(good())).toEqual(expected);
  });

  it('verifies as CSV', () => {
    expect(verifyAuditExport(toCsv(good()), { keys: KEYS })).toEqual(expected);
  });

  it('verifies when fed in small chunks, with CRLF line ends and a byte-order mark', () => {
    for (const text of [toJsonl(good()).replaceAll('\n', '\r\n'), `\ufeff${toCsv(good())}`]) {
      const reader = new AuditExportReader({ keys: KEYS });
      for (let i = 0; i < text.length; i += 7) reader.write(text.slice(i, i + 7));
      expect(reader.end()).toEqual(expected);
    }
  });

  it('verifies line by line through push() with parsed values', () => {
    const v = new AuditExportVerifier({ keys: KEYS });
    good().forEach((l, i) => expect(v.push(JSON.parse(JSON.stringify(l)), i + 1)).toBe(true));
    expect(v.finish()).toEqual(expected);
  });

  it('verifies with saved checkpoints that agree, counting them', () => {
    const saved = [checkpointOf(chainA, 3), checkpointOf(chainA, 12), checkpointOf(chainS, 8), checkpointOf(chainS, 2), checkpointOf(chainS, 13)];
    // seq 2 of the system chain lies before the export (trimmed or out of range): not counted, not failed.
    expect(verify(good(), saved)).toMatchObject({ ok: true, savedCheckpoints: 4 });
  });

  it('verifies a chain of one entry, and a time-range export ending before a saved checkpoint', () => {
    const one = buildExport([{ items: chainA, from: 1, to: 1, checkpoints: [1] }]);
    expect(verify(one)).toMatchObject({ ok: true, entries: 1 });
    const ranged = buildExport([{ items: chainA, from: 6, to: 10, checkpoints: [10] }], { chains: [A], from: T0 + 6000, to: T0 + 10_000 });
    expect(verify(ranged, [checkpointOf(chainA, 14)])).toMatchObject({ ok: true, entries: 5 });
  });
});

describe('tampering is found and named', () => {
  it('an altered entry field → hash-mismatch naming that entry', () => {
    const lines = good();
    const i = entryIndex(lines, A, 3);
    entryAt(lines, i).actor = { kind: 'user', id: 'usr-2', name: 'someone else' };
    const r = verify(lines);
    expect(r).toMatchObject({ ok: false, entries: 2 });
    const p = expectProblem(r, 'hash-mismatch');
    expect(p).toMatchObject({ line: i + 1, chain: A, seq: 3, id: '106' });
    expect(p.message).toContain('chain building:bld-01 seq 3 (id 106)');
    expect(p.message).toContain('altered');
  });

  it('an altered entry with its hash recomputed → the next entry fails, naming both', () => {
    const lines = good();
    const i = entryIndex(lines, A, 3);
    entryAt(lines, i).reason = 'nothing happened';
    rehash(lines, A, 3);
    // undo the rehash beyond seq 3: only that one hash was forged
    const fresh = good();
    for (let seq = 4; seq <= 12; seq += 1) entryAt(lines, entryIndex(lines, A, seq)).hash = entryAt(fresh, entryIndex(fresh, A, seq)).hash;
    const p = expectProblem(verify(lines), 'hash-mismatch');
    expect(p).toMatchObject({ chain: A, seq: 4, line: i + 2 });
    expect(p.message).toMatch(/seq 4 \(id 108\).*seq 3, id 106/);
  });

  it('an altered entry with every later hash recomputed → the next checkpoint fails', () => {
    const lines = good();
    entryAt(lines, entryIndex(lines, A, 7)).type = 'access.denied';
    rehash(lines, A, 7);
    const p = expectProblem(verify(lines), 'checkpoint-mismatch');
    expect(p).toMatchObject({ chain: A, seq: 10, line: checkpointIndex(lines, A, 10) + 1 });
    expect(p.message).toContain('between seq 6 and 10');
  });

  it('a deleted entry → seq-gap', () => {
    const lines = good();
    const i = entryIndex(lines, A, 7);
    lines.splice(i, 1);
    const p = expectProblem(verify(lines), 'seq-gap');
    expect(p).toMatchObject({ chain: A, seq: 8, line: i + 1, id: '116' });
    expect(p.message).toContain('entry seq 7 is missing');
    expect(p.message).toContain('seq 6 (id 112)');
  });

  it('several deleted entries at the end of a file → seq-gap', () => {
    const lines = good();
    lines.splice(entryIndex(lines, S, 10), 2);
    expect(expectProblem(verify(lines), 'seq-gap').message).toContain('entries seq 10…11 are missing');
  });

  it('two entries swapped → out-of-order', () => {
    const lines = good();
    const i = entryIndex(lines, A, 7);
    const j = entryIndex(lines, A, 8);
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    const p = expectProblem(verify(lines), 'out-of-order');
    expect(p).toMatchObject({ chain: A, seq: 8, line: i + 1 });
    expect(p.message).toContain('comes before seq 7');
  });

  it('the first two entries of a chain swapped → out-of-order, not unanchored', () => {
    const lines = good();
    const i = entryIndex(lines, A, 1);
    [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!];
    expect(expectProblem(verify(lines), 'out-of-order')).toMatchObject({ chain: A, seq: 2, line: i + 1 });
  });

  it('an entry moved far back → out-of-order', () => {
    const lines = good();
    const [moved] = lines.splice(entryIndex(lines, S, 14), 1);
    lines.splice(entryIndex(lines, S, 11), 0, moved!);
    expectProblem(verify(lines), 'out-of-order');
  });

  it('a duplicated entry line → out-of-order', () => {
    const lines = good();
    const i = entryIndex(lines, A, 2);
    lines.splice(i + 1, 0, structuredClone(lines[i]!));
    const p = expectProblem(verify(lines), 'out-of-order');
    expect(p.message).toContain('appears twice');
    expect(p).toMatchObject({ line: i + 2, seq: 2 });
  });

  it('a duplicated checkpoint line → out-of-order', () => {
    const lines = good();
    const i = checkpointIndex(lines, A, 5);
    lines.splice(i + 1, 0, structuredClone(lines[i]!));
    expect(expectProblem(verify(lines), 'out-of-order').message).toContain('appears twice');
  });

  it('a file cut short (no trailer) → truncated', () => {
    const lines = good();
    expect(expectProblem(verify(lines.slice(0, -1)), 'truncated').line).toBe(lines.length - 1);
    expectProblem(verify(lines.slice(0, checkpointIndex(lines, A, 10) + 1)), 'truncated');
  });

  it('trailing entries and their checkpoint removed, trailer kept → trailer-mismatch', () => {
    const lines = good();
    lines.splice(entryIndex(lines, A, 11), 3); // entries 11, 12 and the checkpoint at 12
    const p = expectProblem(verify(lines), 'trailer-mismatch');
    expect(p.message).toContain('seq 1…12, the export holds seq 1…10');
    expect(p.line).toBe(lines.length);
  });

  it('trailing entries removed but their checkpoint kept → checkpoint-mismatch', () => {
    const lines = good();
    lines.splice(entryIndex(lines, S, 14), 2);
    const p = expectProblem(verify(lines), 'checkpoint-mismatch');
    expect(p.message).toContain('entries seq 14…15 were removed');
  });

  it('a whole chain removed → trailer-mismatch', () => {
    const lines = good().filter((l) => l.record === 'header' || l.record === 'trailer' || l.chain !== S);
    expect(expectProblem(verify(lines), 'trailer-mismatch').message).toContain('holds no entries of it');
  });

  it('a checkpoint with a bad signature → bad-signature', () => {
    const lines = good();
    const i = checkpointIndex(lines, A, 5);
    (lines[i] as ExportCheckpointLine).at += 1;
    expect(expectProblem(verify(lines), 'bad-signature')).toMatchObject({ line: i + 1, chain: A, seq: 5 });
  });

  it('a checkpoint signed with an unknown kid → unknown-key', () => {
    const lines = good();
    const i = checkpointIndex(lines, S, 12);
    lines[i] = { record: 'checkpoint', ...checkpointOf(chainS, 12, ROGUE) };
    const p = expectProblem(verify(lines), 'unknown-key');
    expect(p.message).toContain('rogue-1');
  });

  it('a rewritten history re-signed with another key under the trusted kid → bad-signature', () => {
    const lines = good();
    entryAt(lines, entryIndex(lines, A, 2)).reason = 'forged';
    rehash(lines, A, 2);
    for (const [i, l] of lines.entries()) {
      if (l.record !== 'checkpoint' || l.chain !== A) continue;
      const { record: _r, sig: _s, kid: _k, ...body } = l;
      const prevEntry = lines[i - 1] as ExportEntryLine;
      lines[i] = { record: 'checkpoint', ...signAuditCheckpoint({ ...body, head: prevEntry.hash }, FORGER) };
    }
    const p = expectProblem(verify(lines), 'bad-signature');
    expect(p).toMatchObject({ chain: A, seq: 5 });
  });

  it('a tampered trailer → bad-signature', () => {
    const lines = good();
    const t = lines[lines.length - 1]!;
    if (t.record !== 'trailer') throw new Error('no trailer');
    t.entries += 1;
    expectProblem(verify(lines), 'bad-signature');
  });

  it('a missing start checkpoint → unanchored', () => {
    const lines = good();
    lines.splice(checkpointIndex(lines, S, 8), 1);
    const p = expectProblem(verify(lines), 'unanchored');
    expect(p).toMatchObject({ chain: S, seq: 9, id: '119' });
    expect(p.message).toContain('without a start checkpoint at size 8');
  });

  it('a last entry no checkpoint covers → unanchored', () => {
    const lines = good();
    lines.splice(checkpointIndex(lines, A, 12), 1);
    const p = expectProblem(verify(lines), 'unanchored');
    expect(p).toMatchObject({ chain: A, seq: 12, line: entryIndex(lines, A, 12) + 1 });
  });

  it('a start checkpoint of another point of the chain → hash-mismatch on the first entry', () => {
    const lines = good();
    const i = checkpointIndex(lines, S, 8);
    lines[i] = { record: 'checkpoint', ...checkpointOf(chainS, 7) };
    // size 7 then seq 9: the entry at 8 is missing
    expectProblem(verify(lines), 'seq-gap');
    const forged = good();
    forged[i] = { record: 'checkpoint', ...signAuditCheckpoint({ v: 1, chain: S, size: 8, head: chainS[6]!.hash, at: T0 }, KEY) };
    expect(expectProblem(verify(forged), 'hash-mismatch').message).toContain('start checkpoint at size 8');
  });

  it('a line of one chain moved into another chain → caught', () => {
    const lines = good();
    const [moved] = lines.splice(entryIndex(lines, S, 12), 1);
    lines.splice(entryIndex(lines, A, 3), 0, moved!);
    // the building chain's block is cut before seq 3 is covered by a checkpoint
    expectProblem(verify(lines), 'unanchored');
  });

  it('a chain whose lines are split in two → out-of-order', () => {
    const lines = buildExport([
      { items: chainA, from: 1, to: 5, checkpoints: [5] },
      { items: chainS, from: 9, to: 12, checkpoints: [12] },
    ]);
    const extra = buildExport([{ items: chainA, from: 6, to: 10, checkpoints: [10] }]);
    lines.splice(lines.length - 1, 0, ...extra.slice(1, -1));
    expect(expectProblem(verify(lines), 'out-of-order').message).toContain('appears again');
  });

  it('saved checkpoints that disagree → checkpoint-mismatch', () => {
    const bogus = signAuditCheckpoint({ v: 1, chain: A, size: 4, head: chainS[3]!.hash, at: T0 }, KEY);
    const p = expectProblem(verify(good(), [bogus]), 'checkpoint-mismatch');
    expect(p).toMatchObject({ chain: A, seq: 4, id: '108' });
    expect(p.message).toContain('your saved checkpoint');
    // at the start checkpoint's size too
    const atAnchor = signAuditCheckpoint({ v: 1, chain: S, size: 8, head: chainS[3]!.hash, at: T0 }, KEY);
    expectProblem(verify(good(), [atAnchor]), 'checkpoint-mismatch');
  });

  it('a saved checkpoint beyond the end of an export not limited in time → checkpoint-mismatch', () => {
    const p = expectProblem(verify(good(), [checkpointOf(chainA, 14)]), 'checkpoint-mismatch');
    expect(p.message).toContain('entries seq 13…14 were removed');
  });

  it('a saved checkpoint with a forged signature → bad-signature', () => {
    expectProblem(verify(good(), [checkpointOf(chainA, 3, FORGER)]), 'bad-signature');
  });

  it('broken lines → format', () => {
    const text = toJsonl(good());
    const lines = text.split('\n');
    expectProblem(verifyAuditExport(lines.slice(1).join('\n'), { keys: KEYS }), 'format');
    expectProblem(verifyAuditExport('', { keys: KEYS }), 'format');
    expectProblem(verifyAuditExport(text.replace(AUDIT_EXPORT_FORMAT, 'smart-passage-audit-export/9'), { keys: KEYS }), 'format');
    const notJson = [...lines];
    notJson[3] = '{"record":"entry",';
    expect(expectProblem(verifyAuditExport(notJson.join('\n'), { keys: KEYS }), 'format')).toMatchObject({ line: 4, message: 'line 4: not JSON' });
    const unknown = [...lines];
    unknown[3] = '{"record":"comment"}';
    expect(expectProblem(verifyAuditExport(unknown.join('\n'), { keys: KEYS }), 'format').message).toContain('unknown record "comment"');
    expect(expectProblem(verifyAuditExport(`${text}${lines[1]!}\n`, { keys: KEYS }), 'format').message).toContain('after the trailer');
    expectProblem(verifyAuditExport('hello\n', { keys: KEYS }), 'format');
  });

  it('parseExportLine tells good lines from bad', () => {
    expect(parseExportLine(JSON.stringify(good()[1]))).toMatchObject({ ok: true, line: { record: 'entry', seq: 1 } });
    expect(parseExportLine('{"record":"entry","v":1,"chain":"system","seq":0}')).toMatchObject({ ok: false, chain: 'system' });
    expect(parseExportLine('[1]')).toEqual({ ok: false, message: 'not a JSON object' });
  });
});

describe('the CSV form', () => {
  it('escapes a formula-like cell in the human columns only, and still verifies', () => {
    const text = toCsv(good());
    const rows = parseCsvExport(text);
    if (!Array.isArray(rows)) throw new Error(rows.error);
    const row = rows.find((r) => r.cells[0] === 'entry' && r.cells[2] === A && r.cells[3] === '4')!;
    expect(row.cells[14]).toBe(`'=HYPERLINK("http://evil.example","click")`);
    expect((JSON.parse(row.cells[16]!) as { reason: string }).reason).toBe('=HYPERLINK("http://evil.example","click")');
    const multi = rows.find((r) => r.cells[0] === 'entry' && r.cells[2] === A && r.cells[3] === '6')!;
    expect(multi.cells[14]).toBe('wrong door, "floor 3"\nsecond line');
    expect(multi.line).toBeLessThan(rows[rows.indexOf(multi) + 1]!.line - 1); // the row spans two lines
    expect(verifyAuditExport(text, { keys: KEYS }).ok).toBe(true);
  });

  it('an edited visible cell → csv-mismatch naming the cell and the entry', () => {
    const text = toCsv(good());
    const edited = text.replace(',bld-01,street,', ',bld-02,street,');
    expect(edited).not.toBe(text);
    const p = expectProblem(verifyAuditExport(edited, { keys: KEYS }), 'csv-mismatch');
    expect(p.message).toContain('"buildingId"');
    expect(p).toMatchObject({ chain: A, seq: 1 });
    expect(p.message).toContain('chain building:bld-01 seq 1 (id 102)');
    const r = verifyAuditExport(edited, { keys: KEYS });
    expect(!r.ok && r.entries).toBe(0);
  });

  it('an edited json cell → hash-mismatch, a removed apostrophe → csv-mismatch', () => {
    const text = toCsv(good());
    expectProblem(verifyAuditExport(text.replace('""minutes"":30', '""minutes"":300'), { keys: KEYS }), 'hash-mismatch');
    expectProblem(verifyAuditExport(text.replace(`'=HYPERLINK`, `=HYPERLINK`), { keys: KEYS }), 'csv-mismatch');
  });

  it('a wrong column row or a broken row → format', () => {
    const text = toCsv(good());
    expectProblem(verifyAuditExport(text.replace('record,id,chain', 'record,chain,id'), { keys: KEYS }), 'format');
    expectProblem(verifyAuditExport(text.replace('\r\nentry,104,', '\r\nentry,104,extra,'), { keys: KEYS }), 'format');
    expectProblem(verifyAuditExport(`${text}"open quote\r\n`, { keys: KEYS }), 'format');
  });
});

describe('scale', () => {
  it('verifies a long chain streamed in chunks without keeping it', () => {
    const n = 20_000;
    const items = makeChain(S, n, 1);
    const checkpoints = Array.from({ length: n / 1000 }, (_, i) => (i + 1) * 1000);
    const text = toJsonl(buildExport([{ items, from: 1, to: n, checkpoints }]));
    const reader = new AuditExportReader({ keys: KEYS });
    for (let i = 0; i < text.length; i += 65_536) reader.write(text.slice(i, i + 65_536));
    expect(reader.end()).toMatchObject({ ok: true, entries: n, checkpoints: 20 });
  });
});

describe('sp-audit-verify', () => {
  const cli = fileURLToPath(new URL('../../dist/cli/audit-verify.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'sp-audit-verify-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Run the built CLI; end it by its PID if it hangs. */
  function run(args: string[], stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      if (stdin !== undefined) child.stdin?.end(stdin);
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
        reject(new Error(`sp-audit-verify hung: ${out}${err}`));
      }, 10_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
    });
  }

  const keysFile = join(dir, 'audit-keys.json');
  writeFileSync(keysFile, JSON.stringify({ keys: [{ kid: KID, alg: 'Ed25519', publicKey: pair.publicKey }] }));
  const goodFile = join(dir, 'bld-01.jsonl');
  writeFileSync(goodFile, toJsonl(good()));
  const csvFile = join(dir, 'bld-01.csv');
  writeFileSync(csvFile, toCsv(good()));
  const bad = good();
  entryAt(bad, entryIndex(bad, A, 3)).reason = 'edited';
  const badFile = join(dir, 'bad.jsonl');
  writeFileSync(badFile, toJsonl(bad));
  const savedFile = join(dir, 'checkpoints.json');
  writeFileSync(savedFile, JSON.stringify({ items: [checkpointOf(chainA, 5)] }));

  it('says OK for a good export (JSON Lines, CSV, --public-key) and exits 0', async () => {
    const r = await run([goodFile, '--keys', keysFile, '--checkpoints', savedFile]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`OK  19 entries in 2 chains, checkpoints 6, signed by ${KID}`);
    expect(r.out).toContain(`  system  seq 9…15 (from the checkpoint at 8)  head ${chainS[14]!.hash}`);
    expect(r.out).toContain('saved checkpoints matched: 1');
    const c = await run([csvFile, '--public-key', pair.publicKey, '--kid', KID]);
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/^OK {2}19 entries/);
  });

  it('says FAILED with the line for a bad export and exits 1', async () => {
    const r = await run([badFile, '--keys', keysFile]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAILED {2}line 4: chain building:bld-01 seq 3 \(id 106\) does not hash/);
    expect(r.out).toContain('(hash-mismatch; 2 entries verified before it)');
  });

  it('reads standard input for -', async () => {
    const r = await run(['-', '--keys', keysFile], toCsv(bad));
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAILED  line 5: chain building:bld-01 seq 3 (id 106)');
  });

  it('prints the usage for --help and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: sp-audit-verify/);
  });

  it('exits 2 with the usage on a usage error, and 2 on an unreadable file', async () => {
    const r = await run([goodFile]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Usage: sp-audit-verify');
    expect(r.err).toContain('--keys');
    const missing = await run([join(dir, 'nope.jsonl'), '--keys', keysFile]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no such file');
    const badKeys = await run([goodFile, '--keys', goodFile]);
    expect(badKeys.code).toBe(2);
    expect(badKeys.err).toContain('not valid JSON');
    const both = await run([goodFile, '--keys', keysFile, '--public-key', pair.publicKey, '--kid', KID, '--bogus']);
    expect(both.code).toBe(2);
    expect(both.err).toContain('either --keys or --public-key');
    expect(both.err).toContain('unknown option --bogus');
  });
});
