#!/usr/bin/env node
/**
 * `sp-audit-verify` (`npm run audit:verify -- …`): verify an audit export offline (protocol/AUDIT.md
 * §7). Reads the file as a stream in chunks, constant memory, so a million entries are fine.
 *
 * Not `readline`: in the CSV form a quoted cell may hold a line break, which must reach the cell
 * unchanged, so `AuditExportReader` splits lines and assembles rows itself.
 *
 * Exit status: 0 the export verifies, 1 it does not (the first problem is printed), 2 the run could
 * not start (usage, unreadable key or checkpoint file, unreadable export).
 */
import { createReadStream, readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type AuditCheckpoint } from '../audit.js';
import { AuditExportReader, checkExportLine, type AuditVerifyResult } from '../audit-verify.js';
import { trustedKeys, type TrustedKeys } from '../keys.js';
import { parseOptions, stringOption, type OptionSpec } from './options.js';

const SPEC = {
  keys: { type: 'string' },
  'public-key': { type: 'string' },
  kid: { type: 'string' },
  checkpoints: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} satisfies OptionSpec;

export const USAGE = `Usage: sp-audit-verify <export.jsonl | export.csv | -> --keys <audit-keys.json> [--checkpoints <checkpoints.json>]
   or: sp-audit-verify <export> --public-key <base64url> --kid <kid> [--checkpoints <checkpoints.json>]

Checks an audit export of the Smart Passage gateway offline: every entry's hash chain, every
signed checkpoint, the signed trailer. Any edited, removed, added or reordered entry fails.
  <export>        the file from GET /api/v1/audit/export (JSON Lines or CSV, told apart by its
                  first line); - reads standard input
  --keys          the body of GET /api/v1/audit/keys: {"keys":[{"kid","alg":"Ed25519","publicKey"}]}
                  (a bare array of keys is accepted too)
  --public-key    one trusted audit public key, base64url of the raw 32 bytes, with --kid
  --checkpoints   the body of GET /api/v1/audit/checkpoints you saved earlier: {"items":[…]} or an
                  array; each one inside the export must match it
Exit status: 0 verified, 1 not verified (the first problem is printed), 2 could not run.`;

export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Where `-` reads from. */
  stdin: NodeJS.ReadableStream;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function readJson(path: string, what: string, problems: string[]): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
    return undefined;
  }
  try {
    return JSON.parse(text.startsWith('\ufeff') ? text.slice(1) : text);
  } catch {
    problems.push(`${what} ${path}: not valid JSON`);
    return undefined;
  }
}

/** `{keys:[{kid, alg, publicKey}]}` or a bare array of such keys. */
export function keysFrom(value: unknown, where: string, problems: string[]): TrustedKeys | undefined {
  const list = Array.isArray(value) ? (value as unknown[]) : isObject(value) && Array.isArray(value.keys) ? (value.keys as unknown[]) : undefined;
  if (!list) {
    problems.push(`${where}: expected {"keys":[…]} or an array of keys`);
    return undefined;
  }
  if (list.length === 0) problems.push(`${where}: no keys`);
  const before = problems.length;
  const keys: { kid: string; publicKey: string }[] = [];
  list.forEach((k, i) => {
    if (!isObject(k) || typeof k.kid !== 'string' || k.kid === '' || typeof k.publicKey !== 'string') {
      problems.push(`${where}: keys[${i}] needs a kid and a publicKey`);
      return;
    }
    if (k.alg !== undefined && k.alg !== 'Ed25519') {
      problems.push(`${where}: key ${k.kid} has alg ${JSON.stringify(k.alg)}, only Ed25519 is used`);
      return;
    }
    try {
      trustedKeys([{ kid: k.kid, publicKey: k.publicKey }]);
      keys.push({ kid: k.kid, publicKey: k.publicKey });
    } catch {
      problems.push(`${where}: key ${k.kid}: publicKey must be 32 bytes of base64url`);
    }
  });
  return problems.length > before ? undefined : trustedKeys(keys);
}

/** `{items:[AuditCheckpoint…]}` or a bare array. */
export function checkpointsFrom(value: unknown, where: string, problems: string[]): AuditCheckpoint[] | undefined {
  const list = Array.isArray(value) ? (value as unknown[]) : isObject(value) && Array.isArray(value.items) ? (value.items as unknown[]) : undefined;
  if (!list) {
    problems.push(`${where}: expected {"items":[…]} or an array of checkpoints`);
    return undefined;
  }
  const before = problems.length;
  const out: AuditCheckpoint[] = [];
  list.forEach((c, i) => {
    const { record: _record, ...cp } = isObject(c) ? c : {};
    const checked = checkExportLine({ ...cp, record: 'checkpoint' });
    if ('error' in checked) problems.push(`${where}: items[${i}]: ${checked.error.replace(/^checkpoint: /, '')}`);
    else out.push(cp as unknown as AuditCheckpoint);
  });
  return problems.length > before ? undefined : out;
}

/** The verdict for people. */
export function formatResult(r: AuditVerifyResult): string {
  if (!r.ok) {
    const p = r.problem;
    return `FAILED  line ${p.line}: ${p.message}\n        (${p.code}; ${r.entries} entries verified before it)\n`;
  }
  const lines = [
    `OK  ${r.entries} entries in ${r.chains.length} chain${r.chains.length === 1 ? '' : 's'}, checkpoints ${r.checkpoints}, signed by ${r.kids.join(', ') || '-'}`,
  ];
  for (const c of r.chains) {
    const from = c.firstSeq > 1 ? ` (from the checkpoint at ${c.firstSeq - 1})` : '';
    lines.push(`  ${c.chain}  seq ${c.firstSeq}…${c.lastSeq}${from}  head ${c.head}`);
  }
  if (r.savedCheckpoints > 0) lines.push(`  saved checkpoints matched: ${r.savedCheckpoints}`);
  return `${lines.join('\n')}\n`;
}

/** Run the CLI; resolves to the exit status. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  // parseOptions treats every positional as a problem; the export path is our one positional.
  const { tokens } = parseArgs({ args: [...argv], options: SPEC, strict: false, allowPositionals: true, tokens: true });
  const positionals = tokens.filter((t) => t.kind === 'positional');
  const skip = new Set(positionals.map((t) => t.index));
  const { values, problems } = parseOptions(
    argv.filter((_, i) => !skip.has(i)),
    SPEC,
  );
  if (values.help === true) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  const file = positionals[0]?.kind === 'positional' ? positionals[0].value : undefined;
  if (file === undefined) problems.push('which export? give its path (or - for standard input)');
  if (positionals.length > 1) problems.push(`one export at a time, got ${positionals.length} paths`);
  const keysPath = stringOption(values, 'keys');
  const publicKey = stringOption(values, 'public-key');
  const kid = stringOption(values, 'kid');
  if (keysPath !== undefined && publicKey !== undefined) problems.push('give either --keys or --public-key, not both');
  if (keysPath === undefined && publicKey === undefined) problems.push('the trusted audit keys are needed: --keys <audit-keys.json> or --public-key <base64url> --kid <kid>');
  if (publicKey !== undefined && kid === undefined) problems.push('--public-key needs --kid');
  if (kid !== undefined && publicKey === undefined) problems.push('--kid goes with --public-key');
  if (problems.length > 0) {
    io.err.write(`${problems.map((p) => `sp-audit-verify: ${p}`).join('\n')}\n\n${USAGE}\n`);
    return 2;
  }

  let keys: TrustedKeys | undefined;
  if (keysPath !== undefined) {
    const value = readJson(keysPath, 'key file', problems);
    if (value !== undefined) keys = keysFrom(value, `key file ${keysPath}`, problems);
  } else if (publicKey !== undefined && kid !== undefined) {
    keys = keysFrom([{ kid, publicKey }], '--public-key', problems);
  }
  const checkpointsPath = stringOption(values, 'checkpoints');
  let checkpoints: AuditCheckpoint[] | undefined;
  if (checkpointsPath !== undefined) {
    const value = readJson(checkpointsPath, 'checkpoint file', problems);
    if (value !== undefined) checkpoints = checkpointsFrom(value, `checkpoint file ${checkpointsPath}`, problems);
  }
  if (problems.length > 0 || !keys || file === undefined) {
    io.err.write(`${problems.map((p) => `sp-audit-verify: ${p}`).join('\n')}\n`);
    return 2;
  }

  const reader = new AuditExportReader({ keys, ...(checkpoints ? { checkpoints } : {}) });
  const input = file === '-' ? io.stdin : createReadStream(file, { highWaterMark: 1 << 16 });
  if ('setEncoding' in input && typeof input.setEncoding === 'function') input.setEncoding('utf8');
  try {
    for await (const chunk of input) {
      if (!reader.write(typeof chunk === 'string' ? chunk : String(chunk))) break;
    }
  } catch (err) {
    io.err.write(`sp-audit-verify: ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}\n`);
    return 2;
  } finally {
    if (input !== io.stdin && 'destroy' in input && typeof input.destroy === 'function') input.destroy();
  }
  const result = reader.end();
  io.out.write(formatResult(result));
  return result.ok ? 0 : 1;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) process.exitCode = await runCli(process.argv.slice(2), { out: process.stdout, err: process.stderr, stdin: process.stdin });
