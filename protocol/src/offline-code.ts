/**
 * The offline emergency code (PROTOCOL §2.6, DESIGN §5.7): an 8-digit code for one door of one
 * controller and one 15-minute window, computed by the gateway from the controller's
 * `offlineSecret` and checked by the controller itself while it has no broker connection. Pure.
 *
 * code = HOTP-style dynamic truncation (RFC 4226 §5.3) of
 *        HMAC-SHA-256(offlineSecret, "sp-offline-code/v1\n" + ctrl + "\n" + door + "\n" + window)
 * to 8 decimal digits, where window = floor(ms epoch / 900 000).
 *
 * @example
 *   const w = offlineCodeWindow(Date.now());
 *   const code = offlineCode({ secret: bundle.offlineSecret, ctrl: 'ctl-7', door: 'street', window: w });
 *   formatOfflineCode(code); // "4821 0937"
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Length of one window, ms (15 minutes). */
export const OFFLINE_CODE_WINDOW_MS = 900_000;
/** Digits in a code. */
export const OFFLINE_CODE_DIGITS = 8;
/** A controller accepts the code of its current window and of this many windows either side. */
export const OFFLINE_CODE_SKEW_WINDOWS = 1;
/** A controller MAY report a code of this many windows before the accepted ones as `expired`. */
export const OFFLINE_CODE_EXPIRED_WINDOWS = 4;
/** The first line of the HMAC message: names the scheme and its version. */
export const OFFLINE_CODE_LABEL = 'sp-offline-code/v1';

/** The window index of an instant: floor(at / 900 000). */
export function offlineCodeWindow(at: number): number {
  return Math.floor(at / OFFLINE_CODE_WINDOW_MS);
}

/**
 * The last instant (exclusive) a code of `window` is accepted by a controller whose clock agrees
 * with ours: the end of the window after it. This is the "valid until" a dispatcher is told.
 */
export function offlineCodeValidUntil(window: number): number {
  return (window + 1 + OFFLINE_CODE_SKEW_WINDOWS) * OFFLINE_CODE_WINDOW_MS;
}

/** The exact text whose UTF-8 bytes are MACed; no line break at the end. */
export function offlineCodeMessage(ctrl: string, door: string, window: number): string {
  if (!Number.isSafeInteger(window) || window < 0) throw new RangeError(`window must be a non-negative integer, got ${window}`);
  return `${OFFLINE_CODE_LABEL}\n${ctrl}\n${door}\n${window}`;
}

export interface OfflineCodeInput {
  /** The controller's `offlineSecret`: base64url of 32 bytes (PROTOCOL §2.5). */
  secret: string;
  ctrl: string;
  door: string;
  window: number;
}

function secretBytes(secret: string): Buffer {
  const key = Buffer.from(secret, 'base64url');
  if (key.length !== 32) throw new RangeError('offlineSecret must be 32 bytes of base64url');
  return key;
}

/** The 8-digit code (a string, leading zeros kept) for one door and window. */
export function offlineCode(i: OfflineCodeInput): string {
  const mac = createHmac('sha256', secretBytes(i.secret)).update(offlineCodeMessage(i.ctrl, i.door, i.window), 'utf8').digest();
  // RFC 4226 §5.3 dynamic truncation, over the 32-byte SHA-256 MAC: offset from its last byte.
  const offset = mac[mac.length - 1]! & 0x0f;
  const p = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(p % 10 ** OFFLINE_CODE_DIGITS).padStart(OFFLINE_CODE_DIGITS, '0');
}

/** "12345678" → "1234 5678", as a dispatcher reads it out. */
export function formatOfflineCode(code: string): string {
  return `${code.slice(0, 4)} ${code.slice(4)}`;
}

/** What a presented code matched. */
export type OfflineCodeMatch = { match: 'live'; window: number } | { match: 'expired'; window: number } | { match: 'none' };

export interface CheckOfflineCodeInput {
  secret: string;
  ctrl: string;
  door: string;
  /** What was typed, digits only. */
  digits: string;
  /** The controller's trusted clock. */
  now: number;
}

function sameDigits(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Check a typed code against the windows a controller accepts (current ± 1) and, failing that,
 * the few before them (to report `expired`). Spending is the caller's business (PROTOCOL §2.6).
 */
export function checkOfflineCode(i: CheckOfflineCodeInput): OfflineCodeMatch {
  if (!/^[0-9]{8}$/.test(i.digits)) return { match: 'none' };
  const w = offlineCodeWindow(i.now);
  const code = (window: number) => offlineCode({ secret: i.secret, ctrl: i.ctrl, door: i.door, window });
  // Every accepted window is compared, whatever matched first, so timing says nothing of which.
  let live: number | undefined;
  for (let d = -OFFLINE_CODE_SKEW_WINDOWS; d <= OFFLINE_CODE_SKEW_WINDOWS; d++) {
    if (sameDigits(code(w + d), i.digits) && live === undefined) live = w + d;
  }
  if (live !== undefined) return { match: 'live', window: live };
  for (let d = OFFLINE_CODE_SKEW_WINDOWS + 1; d <= OFFLINE_CODE_SKEW_WINDOWS + OFFLINE_CODE_EXPIRED_WINDOWS; d++) {
    if (w - d >= 0 && sameDigits(code(w - d), i.digits)) return { match: 'expired', window: w - d };
  }
  return { match: 'none' };
}
