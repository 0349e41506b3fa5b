/**
 * Envelopes: build, sign, and open (PROTOCOL §4). Pure functions, no I/O.
 *
 * Signed bytes = UTF-8 of `"sp/v1\n" + JCS(envelope without sig)`; the signature is Ed25519 over
 * exactly those bytes, written base64url without padding.
 */
import { sign, verify } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { jcs } from './jcs.js';
import type { SigningKey, TrustedKeys } from './keys.js';
import type { RejectCode } from './codes.js';
import { isReplay, type ReplayWindow } from './checks.js';
import { PROTOCOL_VERSION, type BodyOf, type Message, type MessageType } from './schemas.js';
import { isMessageType, validateBody, validateEnvelope } from './validate.js';

/** Domain separation: these bytes open every signed payload. */
export const SIGNING_PREFIX = 'sp/v1\n';

const nextUlid = monotonicFactory();
/** A new ULID; monotonic within this process. */
export function newId(now: number = Date.now()): string {
  return nextUlid(now);
}

/** The exact bytes that are signed for an envelope (everything but `sig`). */
export function signingBytes(envelope: Record<string, unknown>): Buffer {
  const { sig: _sig, ...rest } = envelope;
  return Buffer.from(SIGNING_PREFIX + jcs(rest), 'utf8');
}

export interface BuildOptions<K extends MessageType> {
  type: K;
  ctrl: string;
  seq: number;
  boot: string;
  body: BodyOf<K>;
  key: SigningKey;
  /** defaults to Date.now() */
  iat?: number;
  exp?: number;
  id?: string;
}

/**
 * Build and sign a message.
 * @example
 * const msg = buildMessage({ type: 'ctrl.ping', ctrl: 'ctl-7', seq: 12, boot, body: {}, key, exp: Date.now() + 10_000 });
 * client.publish(controllerTopic('ctl-7', 'cmd'), JSON.stringify(msg), { qos: 1 });
 */
export function buildMessage<K extends MessageType>(o: BuildOptions<K>): Message<K> {
  const iat = o.iat ?? Date.now();
  const unsigned: Record<string, unknown> = {
    v: PROTOCOL_VERSION,
    id: o.id ?? newId(iat),
    type: o.type,
    ctrl: o.ctrl,
    seq: o.seq,
    boot: o.boot,
    iat,
    ...(o.exp === undefined ? {} : { exp: o.exp }),
    body: o.body,
    kid: o.key.kid,
  };
  const sig = sign(null, signingBytes(unsigned), o.key.key).toString('base64url');
  return { ...unsigned, sig } as Message<K>;
}

/** A message that passed every check, or why it did not. */
export type Opened<K extends MessageType = MessageType> =
  | { ok: true; message: Message<K> }
  | { ok: false; code: RejectCode; detail: string; id?: string; type?: string };

export interface OpenOptions {
  /** Which message types are acceptable here (from the topic). */
  types: readonly string[];
  /** Keys allowed to have signed it. */
  keys: TrustedKeys;
  /** The payload size limit for this topic. */
  maxBytes: number;
  /** The controller this message must be about (audience for gw→ctrl, origin for ctrl→gw). */
  ctrl: string;
  /** Receiver's clock, ms. */
  now: number;
  /** gw→ctrl replay protection (PROTOCOL §4.4). Omit where seq is not checked this way (ctrl→gw). */
  replay?: ReplayWindow;
  /** Require `exp` within this many ms of `iat` (commands). */
  maxTtlMs?: number;
}

/**
 * Parse and check a raw payload, in the order PROTOCOL §9 fixes: size, JSON, version, envelope
 * schema, type, audience, kid, signature, command lifetime, expiry, seq, body. The first failure
 * wins. Never throws: whatever the bytes, the answer is a message or a reason code.
 */
export function openMessage(payload: Uint8Array, o: OpenOptions): Opened {
  if (payload.byteLength > o.maxBytes) return { ok: false, code: 'too-large', detail: `${payload.byteLength} > ${o.maxBytes} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (err) {
    return { ok: false, code: 'malformed', detail: err instanceof Error ? err.message : 'not JSON' };
  }
  const head = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const id = typeof head.id === 'string' ? head.id.slice(0, 26) : undefined;
  const type = typeof head.type === 'string' ? head.type.slice(0, 32) : undefined;
  const tag = { ...(id ? { id } : {}), ...(type ? { type } : {}) };
  if (typeof head.v === 'number' && head.v !== PROTOCOL_VERSION) {
    return { ok: false, code: 'unsupported-version', detail: `v=${head.v}`, ...tag };
  }
  const env = validateEnvelope(value);
  if (!env.ok) return { ok: false, code: 'malformed', detail: env.detail, ...tag };
  const msg = value as Message & { type: string };
  if (!isMessageType(msg.type) || !o.types.includes(msg.type)) {
    return { ok: false, code: 'unknown-type', detail: `type ${msg.type} not accepted here`, ...tag };
  }
  if (msg.ctrl !== o.ctrl) return { ok: false, code: 'wrong-audience', detail: `for ${msg.ctrl}`, ...tag };
  const key = o.keys.get(msg.kid);
  if (!key) return { ok: false, code: 'unknown-kid', detail: `kid ${msg.kid}`, ...tag };
  let signed: Buffer;
  try {
    signed = signingBytes(msg);
  } catch {
    // JCS refuses what JSON.parse accepts but UTF-8 cannot carry, such as a lone surrogate "\ud800".
    return { ok: false, code: 'malformed', detail: 'not canonicalizable (RFC 8785)', ...tag };
  }
  const sigBytes = Buffer.from(msg.sig, 'base64url');
  // PROTOCOL §4.2: `sig` is THE base64url of the 64 bytes. The last character's 4 spare bits are
  // ignored by the decoder, so without this check one signature could be spelt 16 ways.
  if (sigBytes.toString('base64url') !== msg.sig) return { ok: false, code: 'bad-signature', detail: 'signature is not canonical base64url', ...tag };
  if (!verify(null, signed, key, sigBytes)) {
    return { ok: false, code: 'bad-signature', detail: 'signature does not verify', ...tag };
  }
  if (o.maxTtlMs !== undefined && (msg.exp === undefined || msg.exp - msg.iat > o.maxTtlMs)) {
    return { ok: false, code: 'exp-required', detail: `exp must be set and ≤ iat + ${o.maxTtlMs} ms`, ...tag };
  }
  if (msg.exp !== undefined && o.now > msg.exp) return { ok: false, code: 'expired', detail: `expired ${o.now - msg.exp} ms ago`, ...tag };
  if (o.replay !== undefined && isReplay(o.replay, msg.seq)) {
    return { ok: false, code: 'replay', detail: `seq ${msg.seq} already accepted or older than the window (highest ${o.replay.highest})`, ...tag };
  }
  const body = validateBody(msg.type, msg.body);
  if (!body.ok) return { ok: false, code: 'bad-body', detail: body.detail, ...tag };
  return { ok: true, message: msg };
}
