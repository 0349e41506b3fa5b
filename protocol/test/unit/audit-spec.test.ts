// AUDIT.md §8 worked example: every value the spec shows is recomputed here, partly with
// node:crypto alone (no helper of ours), and looked up in the spec's text so the two cannot drift.
//
// To print the example's blocks after changing it:
//   AUDIT_EXAMPLE_OUT=/tmp/audit-example.md npx vitest run --project unit protocol/test/unit/audit-spec.test.ts
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_EXPORT_FORMAT,
  AUDIT_GENESIS,
  AUDIT_PROBLEM_CODES,
  AUDIT_SIGNING_PREFIX,
  AUDIT_TYPES,
  EXPORT_CSV_COLUMNS,
  auditHash,
  csvHeaderLine,
  csvLine,
  jcs,
  jsonlLine,
  privateKeyFromSeed,
  rawPublicKey,
  signAuditCheckpoint,
  signExportTrailer,
  trustedKeys,
  verifyAuditExport,
  type AuditEntry,
  type AuditItem,
  type ExportLine,
  type SigningKey,
} from '../../src/index.js';

const spec = readFileSync(new URL('../../AUDIT.md', import.meta.url), 'utf8');

/** The example's audit key: seed bytes 0x80, 0x81, … 0x9f. Obviously fake, reproducible. */
const SEED = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x80 + i)).toString('base64url');
const KID = 'audit-2026-11';
const KEY: SigningKey = { kid: KID, key: privateKeyFromSeed(SEED) };
const PUBLIC = rawPublicKey(KEY.key);
/** 2025-11-28T11:40:00.000Z, as in PROTOCOL.md's examples. */
const T = 1_764_330_000_000;
const CHAIN = 'building:bld-01';

function makeExample() {
  const entries: AuditEntry[] = [
    {
      v: 1,
      chain: CHAIN,
      seq: 1,
      at: T,
      type: 'grant.created',
      actor: { kind: 'user', id: 'usr-1', name: 'dispatch' },
      buildingId: 'bld-01',
      incidentId: 'inc-118734',
      grantId: 'g-01KB6ZQ8',
      unitId: 'unit-e12',
      data: { minutes: 120, doors: ['street', 'stair-a'] },
    },
    {
      v: 1,
      chain: CHAIN,
      seq: 2,
      at: T + 120_000,
      type: 'access.granted',
      actor: { kind: 'controller', id: 'ctl-7' },
      buildingId: 'bld-01',
      doorId: 'street',
      grantId: 'g-01KB6ZQ8',
      tagId: '04A1B2C3D4E5F6',
      controllerId: 'ctl-7',
      reason: 'grant',
    },
    {
      v: 1,
      chain: CHAIN,
      seq: 3,
      at: T + 150_000,
      type: 'access.denied',
      actor: { kind: 'controller', id: 'ctl-7' },
      buildingId: 'bld-01',
      doorId: 'floor-3',
      grantId: 'g-01KB6ZQ8',
      controllerId: 'ctl-7',
      reason: 'wrong-door',
    },
  ];
  const ids = ['1041', '1042', '1045'];
  const items: AuditItem[] = [];
  const jcsTexts: string[] = [];
  let prev = AUDIT_GENESIS;
  entries.forEach((e, i) => {
    jcsTexts.push(jcs(e));
    prev = auditHash(prev, e);
    items.push({ ...e, id: ids[i]!, hash: prev });
  });
  const checkpoint = signAuditCheckpoint({ v: 1, chain: CHAIN, size: 3, head: prev, at: T + 180_000 }, KEY);
  const { sig: _sig, ...checkpointBody } = checkpoint;
  const exportedAt = T + 3_600_000;
  const lines: ExportLine[] = [
    { record: 'header', format: AUDIT_EXPORT_FORMAT, exportedAt, query: { chains: [CHAIN] }, keys: [{ kid: KID, publicKey: PUBLIC }] },
    ...items.map((item): ExportLine => ({ record: 'entry', ...item })),
    { record: 'checkpoint', ...checkpoint },
    signExportTrailer({ record: 'trailer', v: 1, format: AUDIT_EXPORT_FORMAT, exportedAt, entries: 3, chains: [{ chain: CHAIN, firstSeq: 1, lastSeq: 3, head: prev }] }, KEY),
  ];
  const { sig: _tsig, ...trailerBody } = lines[lines.length - 1] as ExportLine & { sig: string };
  return {
    trailerSigned: AUDIT_SIGNING_PREFIX + jcs(trailerBody),
    entries,
    items,
    jcsTexts,
    checkpoint,
    checkpointSigned: AUDIT_SIGNING_PREFIX + jcs(checkpointBody),
    lines,
    jsonl: lines.map(jsonlLine).join(''),
    csv: csvHeaderLine() + lines.map(csvLine).join(''),
  };
}

const example = makeExample();

/** The spec's code blocks for the example, keyed by the name in the HTML comment before each. */
function blocks(ex: ReturnType<typeof makeExample>): Record<string, string> {
  return {
    'audit-key': [
      ['kid', KID],
      ['seed', SEED],
      ['seed (hex)', Buffer.from(SEED, 'base64url').toString('hex')],
      ['public key', PUBLIC],
      ['public key (hex)', Buffer.from(PUBLIC, 'base64url').toString('hex')],
    ]
      .map(([k, v]) => `${k!.padEnd(17)}${v!}`)
      .join('\n'),
    'entry-1-jcs': ex.jcsTexts[0]!,
    'entry-2-jcs': ex.jcsTexts[1]!,
    'entry-3-jcs': ex.jcsTexts[2]!,
    hashes: ex.items.map((i) => `seq ${i.seq}  ${i.hash}`).join('\n'),
    'checkpoint-signed': ex.checkpointSigned,
    'checkpoint-sig': ex.checkpoint.sig,
    'trailer-signed': ex.trailerSigned,
    jsonl: ex.jsonl.trimEnd(),
    csv: ex.csv.replaceAll('\r\n', '\n').trimEnd(),
  };
}

if (process.env.AUDIT_EXAMPLE_OUT) {
  const md = Object.entries(blocks(example))
    .map(([name, text]) => `<!-- ${name} -->\n\`\`\`text\n${text}\n\`\`\``)
    .join('\n\n');
  writeFileSync(process.env.AUDIT_EXAMPLE_OUT, `${md}\n`);
}

describe('AUDIT.md worked example', () => {
  it('hashes: SHA-256 over the previous hash bytes and the JCS text, recomputed with node:crypto alone', () => {
    let prev = Buffer.alloc(32);
    for (const [i, item] of example.items.entries()) {
      const { id: _id, hash: _hash, ...entry } = item;
      const text = example.jcsTexts[i]!;
      expect(JSON.parse(text)).toEqual(entry);
      // JCS here: members sorted by code unit, no whitespace; these entries hold only ASCII and integers.
      expect(text).not.toMatch(/\s(?=(?:[^"]*"[^"]*")*[^"]*$)/);
      const hash = createHash('sha256').update(prev).update(text, 'utf8').digest();
      expect(hash.toString('hex')).toBe(item.hash);
      prev = hash;
    }
  });

  it('the checkpoint signature verifies with node:crypto over the prefix and JCS', () => {
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: PUBLIC }, format: 'jwk' });
    expect(example.checkpointSigned.startsWith('sp-audit/v1\n{"at":')).toBe(true);
    expect(verify(null, Buffer.from(example.checkpointSigned, 'utf8'), pub, Buffer.from(example.checkpoint.sig, 'base64url'))).toBe(true);
  });

  it('the example export verifies, as JSON Lines and as CSV', () => {
    const keys = trustedKeys([{ kid: KID, publicKey: PUBLIC }]);
    for (const text of [example.jsonl, example.csv])
      expect(verifyAuditExport(text, { keys })).toMatchObject({ ok: true, entries: 3, checkpoints: 1, kids: [KID] });
  });

  it('every block the spec shows is there, byte for byte', () => {
    for (const [name, text] of Object.entries(blocks(example))) {
      expect(spec, `block ${name}`).toContain(`<!-- ${name} -->\n\`\`\`text\n${text}\n\`\`\``);
    }
  });

  it('names every entry type, CSV column and failure code', () => {
    for (const t of AUDIT_TYPES) expect(spec, t).toContain(`\`${t}\``);
    for (const c of EXPORT_CSV_COLUMNS) expect(spec, c).toContain(`\`${c}\``);
    for (const c of AUDIT_PROBLEM_CODES) expect(spec, c).toContain(`\`${c}\``);
    expect(spec).toContain(AUDIT_EXPORT_FORMAT);
  });
});
