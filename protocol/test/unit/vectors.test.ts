// PROTOCOL.md §11 test vectors: recomputed from the seed and the envelope, verified with node:crypto
// on its own, and checked against the spec's text so the spec cannot drift from the code.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { makeVectors, type Vectors } from '../../src/cli/vectors.js';
import {
  CONTROLLER_TO_GATEWAY,
  GATEWAY_TO_CONTROLLER,
  isMessageType,
  jcs,
  MAX_COMMAND_TTL_MS,
  MAX_PAYLOAD_BYTES,
  MESSAGE_TYPES,
  REJECT_CODES,
  REPLY_CODES,
  signingBytes,
  validateBundle,
  validateMessage,
  type ControllerTopic,
  type Message,
} from '../../src/index.js';

const vectors = JSON.parse(readFileSync(new URL('../vectors.json', import.meta.url), 'utf8')) as Vectors;
const spec = readFileSync(new URL('../../PROTOCOL.md', import.meta.url), 'utf8');
const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));

/** Ed25519 keys straight from raw bytes with node:crypto's JWK import: no helper of ours involved. */
function jwkPrivate(seed: string, publicKey: string): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: seed, x: publicKey }, format: 'jwk' });
}
function jwkPublic(publicKey: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey }, format: 'jwk' });
}
/** The public key of a seed, derived by node:crypto from a PKCS#8 (RFC 8410) wrapping of the seed. */
function publicOfSeed(seed: string): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seed, 'base64url')]);
  const jwk = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' });
  return String(jwk.x);
}

/**
 * A second, independent JCS for the values envelopes hold (objects, arrays, strings, safe
 * integers, booleans, null): names sorted by UTF-16 code units, ECMAScript string escaping.
 */
function miniJcs(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(miniJcs).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${miniJcs(o[k])}`)
      .join(',')}}`;
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new TypeError(`not a safe integer: ${value}`);
  return JSON.stringify(value);
}

function withoutSig(msg: Record<string, unknown>): Record<string, unknown> {
  const { sig: _sig, ...rest } = msg;
  return rest;
}

/** Verify a message exactly as §4.2 says, with node:crypto only. */
function verifiesWith(msg: Record<string, unknown>, publicKey: string): boolean {
  const bytes = Buffer.from(`sp/v1\n${miniJcs(withoutSig(msg))}`, 'utf8');
  return verify(null, bytes, jwkPublic(publicKey), Buffer.from(String(msg.sig), 'base64url'));
}

/** The topic leaf a type travels on (§3.4); `gw.state` is held to the `state` limit (§8). */
const LEAF_OF: Partial<Record<string, ControllerTopic>> = { 'grants.sync': 'sync', state: 'state', reply: 'reply', evt: 'evt', 'gw.state': 'state' };
const keysByKid = new Map(Object.values(vectors.keys).map((k) => [k.kid, k.publicKey]));
const examples = Object.entries(vectors.examples);

/** Every fenced ```json block of the spec, parsed. */
function jsonBlocks(text: string): { text: string; value: unknown }[] {
  return [...text.matchAll(/```json\n([\s\S]*?)\n```/g)].map((m) => {
    const body = m[1] ?? '';
    return { text: body, value: JSON.parse(body) as unknown };
  });
}

function section(text: string, from: string, to: string): string {
  const start = text.indexOf(from);
  const end = text.indexOf(to, start + from.length);
  expect(start, `${from} in PROTOCOL.md`).toBeGreaterThanOrEqual(0);
  expect(end, `${to} after ${from} in PROTOCOL.md`).toBeGreaterThan(start);
  return text.slice(start, end);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('test vectors (PROTOCOL §11)', () => {
  it('vectors.json is exactly what the generator produces', () => {
    expect(JSON.parse(JSON.stringify(makeVectors()))).toEqual(vectors);
  });

  it('derives each public key from its seed (seeds are counting bytes)', () => {
    const firsts = { gateway: 0x00, controller: 0x20, gatewayNext: 0x40 } as const;
    for (const [name, k] of Object.entries(vectors.keys)) {
      const first = firsts[name as keyof typeof firsts];
      expect(Buffer.from(k.seed, 'base64url')).toEqual(Buffer.from(Array.from({ length: 32 }, (_, i) => first + i)));
      expect(k.seedHex).toBe(Buffer.from(k.seed, 'base64url').toString('hex'));
      expect(publicOfSeed(k.seed)).toBe(k.publicKey);
      expect(k.publicKeyHex).toBe(Buffer.from(k.publicKey, 'base64url').toString('hex'));
    }
  });

  it('recomputes the signed bytes, their hash and the signature from the seed and the envelope', () => {
    const s = vectors.signing;
    expect(withoutSig(s.message as unknown as Record<string, unknown>)).toEqual(s.unsigned);
    expect(s.message.sig).toBe(s.signature);
    expect(jcs(s.unsigned)).toBe(s.jcs);
    expect(miniJcs(s.unsigned)).toBe(s.jcs);
    expect(s.signedText).toBe(`sp/v1\n${s.jcs}`);
    const bytes = Buffer.from(s.signedText, 'utf8');
    expect(signingBytes(s.message as unknown as Record<string, unknown>)).toEqual(bytes);
    expect(bytes.length).toBe(s.signedBytesLength);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(s.signedBytesSha256);
    const g = vectors.keys.gateway;
    expect(sign(null, bytes, jwkPrivate(g.seed, g.publicKey)).toString('base64url')).toBe(s.signature);
  });

  it('verifies the signature with node:crypto over the exact bytes, and rejects the tampered copy', () => {
    const s = vectors.signing;
    const key = jwkPublic(vectors.keys.gateway.publicKey);
    expect(verify(null, Buffer.from(s.signedText, 'utf8'), key, Buffer.from(s.signature, 'base64url'))).toBe(true);
    expect(verifiesWith(s.tampered, vectors.keys.gateway.publicKey)).toBe(false);
    expect(verifiesWith(s.message as unknown as Record<string, unknown>, vectors.keys.controller.publicKey)).toBe(false);
  });

  it('canonicalizes the JCS example', () => {
    expect(jcs(JSON.parse(vectors.jcsExample.input))).toBe(vectors.jcsExample.output);
  });
});

describe('example messages (PROTOCOL §2–§7)', () => {
  it('covers every message type', () => {
    expect(new Set(examples.map(([, m]) => m.type))).toEqual(new Set(MESSAGE_TYPES));
  });

  it.each(examples)('%s is schema-valid, signed by its sender, and within its limits', (_name, msg) => {
    expect(isMessageType(msg.type)).toBe(true);
    expect(validateMessage(msg.type, msg)).toEqual({ ok: true });
    const sender = (GATEWAY_TO_CONTROLLER as readonly string[]).includes(msg.type) || msg.type === 'gw.state' ? 'gateway' : 'controller';
    expect(msg.kid).toBe(vectors.keys[sender].kid);
    expect(verifiesWith(msg as unknown as Record<string, unknown>, keysByKid.get(msg.kid) ?? '')).toBe(true);
    if ((CONTROLLER_TO_GATEWAY as readonly string[]).includes(msg.type)) {
      expect(msg.exp).toBeUndefined();
      expect(msg.boot).toBe(vectors.examples['state.birth']?.boot);
    }
    const leaf = LEAF_OF[msg.type] ?? 'cmd';
    expect(Buffer.byteLength(JSON.stringify(msg))).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES[leaf]);
    if (leaf === 'cmd') expect((msg.exp ?? Infinity) - msg.iat).toBeLessThanOrEqual(MAX_COMMAND_TTL_MS);
  });

  it('numbers gw→ctrl messages above the birth lastSeq, and events contiguously from 1', () => {
    const all: Message[] = examples.map(([, m]) => m);
    const birth = vectors.examples['state.birth'] as Message<'state'>;
    const lastSeq = birth.body.online ? birth.body.lastSeq : 0;
    const gw = all.filter((m) => (GATEWAY_TO_CONTROLLER as readonly string[]).includes(m.type)).map((m) => m.seq);
    expect(Math.min(...gw)).toBe(lastSeq + 1);
    expect(new Set(gw).size).toBe(gw.length);
    const evt = all.filter((m) => m.type === 'evt').map((m) => m.seq);
    expect([...evt].sort((a, b) => a - b)).toEqual(evt.map((_, i) => i + 1));
  });

  it('has a valid provisioning bundle whose keys are the test keys', () => {
    expect(validateBundle(vectors.bundle)).toEqual({ ok: true });
    expect(vectors.bundle.controllerKey?.privateKey).toBe(vectors.keys.controller.seed);
    expect(vectors.bundle.controllerKid).toBe(vectors.keys.controller.kid);
    expect(vectors.bundle.gatewayKeys[0]).toEqual({ kid: vectors.keys.gateway.kid, publicKey: vectors.keys.gateway.publicKey });
  });
});

describe('PROTOCOL.md matches the vectors and the code', () => {
  it('contains every vector value verbatim', () => {
    const values = [
      ...Object.values(vectors.keys).flatMap((k) => [k.kid, k.seed, k.seedHex, k.publicKey, k.publicKeyHex]),
      vectors.signing.jcs,
      vectors.signing.signedText,
      String(vectors.signing.signedBytesLength),
      vectors.signing.signedBytesSha256,
      vectors.signing.signature,
      vectors.jcsExample.input,
      vectors.jcsExample.output,
    ];
    for (const value of values) expect(spec, value).toContain(value);
  });

  it('shows every example message and the bundle, and every JSON block in it is one of them', () => {
    const blocks = jsonBlocks(spec);
    const values = blocks.map((b) => b.value);
    for (const [name, msg] of examples) expect(values, name).toContainEqual(msg);
    expect(values).toContainEqual(vectors.bundle);
    const jcsValues = [JSON.parse(vectors.jcsExample.input) as unknown, JSON.parse(vectors.jcsExample.output) as unknown];
    const known = [...examples.map(([, m]) => m as unknown), vectors.bundle, ...jcsValues];
    for (const b of blocks) expect(known, `a JSON block in PROTOCOL.md that no vector backs:\n${b.text}`).toContainEqual(b.value);
  });

  it('lists P-1 … P-25 in the §10 checklist, each once, with a section', () => {
    const checklist = section(spec, '### §10.1', '### §10.2');
    for (let n = 1; n <= 25; n += 1) {
      const rows = checklist.split('\n').filter((l) => l.startsWith(`| P-${n} |`));
      expect(rows, `P-${n}`).toHaveLength(1);
      expect(rows[0], `P-${n} names a section`).toMatch(/\| §\d+(\.\d+)?(, §\d+(\.\d+)?)* \|$/);
    }
    expect(checklist).not.toMatch(/\| P-(0|2[6-9]|[3-9]\d)/);
  });

  it('mentions every reject code, reply code and message type', () => {
    for (const code of Object.keys(REJECT_CODES)) expect(spec, code).toContain(`\`${code}\``);
    for (const code of Object.keys(REPLY_CODES)) expect(spec, code).toContain(`\`${code}\``);
    for (const type of MESSAGE_TYPES) expect(spec, type).toContain(`\`${type}\``);
    const rejectTable = section(spec, '### §9.1', '### §9.2');
    for (const code of Object.keys(REJECT_CODES)) expect(rejectTable, code).toContain(`\`${code}\``);
  });

  it('has a section for every "PROTOCOL §n" the protocol sources cite', () => {
    const headings = new Set([...spec.matchAll(/^#{2,3} (§\d+(?:\.\d+)?) /gm)].map((m) => m[1]));
    const cited = sourceFiles(srcDir).flatMap((file) =>
      [...readFileSync(file, 'utf8').matchAll(/PROTOCOL(?:\.md)? (§\d+(?:\.\d+)?)/g)].map((m) => ({ file, ref: m[1] ?? '' })),
    );
    expect(cited.length).toBeGreaterThan(0);
    for (const c of cited) expect(headings.has(c.ref), `${c.file} cites PROTOCOL ${c.ref}`).toBe(true);
  });
});
