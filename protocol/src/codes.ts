/**
 * Stable reason codes. Receivers switch on these, logs and audit entries carry them, and the
 * dispatch UI maps them to text, so a code never changes meaning once published.
 */

/** Why a receiver dropped an MQTT message (PROTOCOL §9). Each is logged as a security event. */
export const REJECT_CODES = {
  'too-large': 'message exceeds the size limit for its topic',
  malformed: 'not UTF-8 JSON, or the envelope does not match its schema',
  'unsupported-version': 'envelope `v` is not a protocol version this receiver speaks',
  'unknown-type': 'envelope `type` is not a message type, or not one allowed on this topic',
  'wrong-audience': 'envelope `ctrl` does not name this controller (or the topic it came on)',
  'unknown-kid': 'envelope `kid` names no key the receiver trusts',
  'bad-signature': 'Ed25519 signature does not verify',
  expired: '`exp` is in the past',
  'exp-required': 'this message type must carry `exp`, no later than `iat` + 10 s',
  replay: '`seq` is not above the highest accepted one',
  'bad-body': 'the body does not match the schema for its type',
} as const;
export type RejectCode = keyof typeof REJECT_CODES;

/** Why an authentic, fresh message was answered `rejected` (PROTOCOL §5, §7). */
export const REPLY_CODES = {
  'unknown-door': 'a door ref the controller does not have',
  'invalid-window': '`notAfter` is not after `notBefore`, or a hold `until` is past or more than 4 h ahead',
  'bad-body': 'the body does not match the schema for its type',
} as const;
export type ReplyCode = keyof typeof REPLY_CODES;

/** Machine-readable codes of the gateway's HTTP and socket errors (`{error:{code,message}}`). */
export const API_ERROR_CODES = {
  'validation-failed': 400,
  unauthenticated: 401,
  'token-expired': 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'payload-too-large': 413,
  'policy-violation': 422,
  'rate-limited': 429,
  internal: 500,
  unavailable: 503,
} as const;
export type ApiErrorCode = keyof typeof API_ERROR_CODES;
