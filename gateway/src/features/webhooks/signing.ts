/**
 * Webhook signatures (issue 8), in the style receivers already know from payment APIs:
 *
 *   X-SP-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
 *
 * The secret is the string shown once (`whsec_…`), used as is (its UTF-8 bytes) as the HMAC key.
 * A receiver recomputes v1 over the raw body bytes, compares in constant time, and refuses a `t`
 * far from its clock (replay). Test vector (gateway/docs/WEBHOOKS.md, test/unit/webhooks):
 *   secret `whsec_test`, t `1700000000`, body `{"id":"evt-1","type":"access.granted"}` →
 *   v1 `b3a37777570cb00db7991d530e878d298522644da4d94a19dac6766df4c6dde5`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../../errors.js';

export const SIGNATURE_HEADER = 'X-SP-Signature';

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export function signatureOf(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}

export function signatureHeader(secret: string, body: string, nowMs: number): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${signatureOf(secret, t, body)}`;
}

/** What a receiver does: true when `header` signs `body` with `secret`, within `toleranceS` of now. */
export function verifySignature(secret: string, body: string, header: string, nowMs: number, toleranceS = 300): boolean {
  const parts = new Map(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || Math.abs(nowMs / 1000 - t) > toleranceS || !/^[0-9a-f]{64}$/.test(v1)) return false;
  return timingSafeEqual(Buffer.from(v1, 'hex'), Buffer.from(signatureOf(secret, t, body), 'hex'));
}

/** The documented vector; a unit test keeps the document and the code in step. */
export const SIGNING_TEST_VECTOR = {
  secret: 'whsec_test',
  t: 1700000000,
  body: '{"id":"evt-1","type":"access.granted"}',
  v1: 'b3a37777570cb00db7991d530e878d298522644da4d94a19dac6766df4c6dde5',
} as const;

/**
 * A webhook URL we are willing to call: http(s), no credentials in it, https unless `allowHttp`
 * (SP_WEBHOOK_ALLOW_HTTP, for tests and closed networks). Answers 400 otherwise.
 */
export function checkWebhookUrl(raw: string, allowHttp: boolean, path = '/url'): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw AppError.badRequest(path, 'not a URL');
  }
  if (u.protocol !== 'https:' && !(allowHttp && u.protocol === 'http:')) throw AppError.badRequest(path, allowHttp ? 'must be an http(s) URL' : 'must be an https URL');
  if (u.username !== '' || u.password !== '') throw AppError.badRequest(path, 'must not carry credentials');
  return u.toString();
}
