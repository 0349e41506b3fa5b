// PROTOCOL §2.6 offline emergency codes: the spec's worked example and vectors are recomputed with
// node:crypto alone (no helper of ours) and looked up in the spec's text, so neither can drift.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkOfflineCode,
  formatOfflineCode,
  offlineCode,
  offlineCodeMessage,
  offlineCodeValidUntil,
  offlineCodeWindow,
  OFFLINE_CODE_WINDOW_MS,
  validateMessage,
} from '../../src/index.js';

const spec = readFileSync(new URL('../../PROTOCOL.md', import.meta.url), 'utf8');
const section = spec.slice(spec.indexOf('### §2.6'), spec.indexOf('## §3 Topics'));

/** The §2.5 bundle's offlineSecret: bytes 0x60 … 0x7f. */
const SECRET_BYTES = Buffer.from(Array.from({ length: 32 }, (_, i) => 0x60 + i));
const SECRET = SECRET_BYTES.toString('base64url');
/** 2025-11-28T11:42:00Z, as in the spec's other examples. */
const T = 1_764_330_120_000;

/** RFC 4226 §5.3 truncation written out again, independent of src/offline-code.ts. */
function reference(ctrl: string, door: string, window: number): { mac: string; code: string } {
  const mac = createHmac('sha256', SECRET_BYTES).update(Buffer.from(`sp-offline-code/v1\n${ctrl}\n${door}\n${window}`, 'utf8')).digest();
  const o = mac[31]! & 0x0f;
  const p = ((mac[o]! & 0x7f) << 24) | (mac[o + 1]! << 16) | (mac[o + 2]! << 8) | mac[o + 3]!;
  return { mac: mac.toString('hex'), code: String(p % 100_000_000).padStart(8, '0') };
}

describe('offline code derivation (PROTOCOL §2.6)', () => {
  it('matches the worked example, byte for byte, and the spec shows it', () => {
    expect(SECRET).toBe('YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8');
    expect(spec).toContain(`"offlineSecret":"${SECRET}"`);
    const w = offlineCodeWindow(T);
    expect(w).toBe(1_960_366);
    const message = offlineCodeMessage('ctl-7', 'street', w);
    expect(Buffer.byteLength(message)).toBe(39);
    expect(section).toContain(`\`\`\`text\n${message}\n\`\`\``);
    expect(section).toContain('(39 bytes, no line break after `1960366`)');
    const r = reference('ctl-7', 'street', w);
    expect(section).toContain(r.mac);
    expect(offlineCode({ secret: SECRET, ctrl: 'ctl-7', door: 'street', window: w })).toBe(r.code);
    expect(r.code).toBe('32078332');
    expect(section).toContain(`the code is **${r.code}**, read out as "${formatOfflineCode(r.code)}", valid until ${offlineCodeValidUntil(w)}`);
    expect(offlineCodeValidUntil(w)).toBe(Date.UTC(2025, 10, 28, 12, 0, 0));
  });

  it('reproduces every row of the vector table', () => {
    const rows = [...section.matchAll(/^\| `([a-z0-9-]+)` \| `([A-Za-z0-9._-]+)` \| (\d+) \| (\d{8}) \|$/gm)];
    expect(rows).toHaveLength(4);
    for (const [, ctrl, door, window, code] of rows) {
      expect(reference(ctrl!, door!, Number(window)).code, `${ctrl} ${door} ${window}`).toBe(code);
      expect(offlineCode({ secret: SECRET, ctrl: ctrl!, door: door!, window: Number(window) })).toBe(code);
    }
  });

  it('keeps leading zeros and refuses a secret of the wrong size', () => {
    for (let w = 0; w < 300; w++) expect(offlineCode({ secret: SECRET, ctrl: 'ctl-7', door: 'street', window: w })).toMatch(/^[0-9]{8}$/);
    expect(() => offlineCode({ secret: Buffer.alloc(16).toString('base64url'), ctrl: 'c', door: 'd', window: 1 })).toThrow(RangeError);
    expect(() => offlineCodeMessage('c', 'd', -1)).toThrow(RangeError);
  });
});

describe('checkOfflineCode: the windows a controller accepts', () => {
  const w = 1_960_366;
  const code = (window: number, door = 'street', ctrl = 'ctl-7') => offlineCode({ secret: SECRET, ctrl, door, window });
  const check = (digits: string, now: number, door = 'street', ctrl = 'ctl-7') => checkOfflineCode({ secret: SECRET, ctrl, door, digits, now });

  it('accepts the previous, current and next window, at their edges', () => {
    const start = w * OFFLINE_CODE_WINDOW_MS;
    expect(check(code(w), start)).toEqual({ match: 'live', window: w });
    expect(check(code(w - 1), start)).toEqual({ match: 'live', window: w - 1 });
    expect(check(code(w + 1), start)).toEqual({ match: 'live', window: w + 1 });
    // Valid until the end of the next window: the last millisecond in, the first one out.
    expect(check(code(w), offlineCodeValidUntil(w) - 1)).toEqual({ match: 'live', window: w });
    expect(check(code(w), offlineCodeValidUntil(w))).toEqual({ match: 'expired', window: w });
    // A controller running a window behind still takes it (clock skew at a rollover).
    expect(check(code(w), start - 1)).toEqual({ match: 'live', window: w });
    expect(check(code(w), start - OFFLINE_CODE_WINDOW_MS - 1)).toEqual({ match: 'none' });
  });

  it('reports a recent old code as expired, an older one as unknown', () => {
    const now = T;
    expect(check(code(w - 2), now)).toEqual({ match: 'expired', window: w - 2 });
    expect(check(code(w - 5), now)).toEqual({ match: 'expired', window: w - 5 });
    expect(check(code(w - 6), now)).toEqual({ match: 'none' });
  });

  it('refuses the code of another door or controller, and anything not 8 digits', () => {
    expect(check(code(w, 'stair-a'), T)).toEqual({ match: 'none' });
    expect(check(code(w, 'street', 'ctl-8'), T)).toEqual({ match: 'none' });
    expect(check(code(w), T, 'street', 'ctl-8')).toEqual({ match: 'none' });
    expect(check(code(w).slice(1), T)).toEqual({ match: 'none' });
    expect(check(`${code(w)}0`, T)).toEqual({ match: 'none' });
    expect(check('3207 8332', T)).toEqual({ match: 'none' });
    expect(check('', T)).toEqual({ match: 'none' });
  });
});

describe('the access event of a code (PROTOCOL §7.7)', () => {
  it('has no room for the digits', () => {
    const body = { kind: 'access', door: 'street', credential: { kind: 'offline-code', window: 1_960_366 }, result: 'granted', reason: 'offline-code', at: T };
    const envelope = (b: unknown) => ({ v: 1, id: '01KB54A8T0N5FQ8HD44A38QPAD', type: 'evt', ctrl: 'ctl-7', seq: 3, boot: '01KB5469VGYE0Y8KXEHGYFDVAK', iat: T, body: b, kid: 'ctl-7-k1', sig: 'A'.repeat(86) });
    expect(validateMessage('evt', envelope(body))).toMatchObject({ ok: true });
    expect(validateMessage('evt', envelope({ ...body, credential: { kind: 'offline-code', code: '32078332' } }))).toMatchObject({ ok: false });
    expect(validateMessage('evt', envelope({ ...body, credential: { kind: 'offline-code' }, result: 'denied', reason: 'controller-online' }))).toMatchObject({ ok: true });
  });
});
