/**
 * Ed25519 keys (RFC 8032) as raw bytes, as firmware stores them: a 32-byte seed for the private
 * half, 32 bytes for the public half, both written as base64url without padding (PROTOCOL §4.3).
 * node:crypto wants DER, so we wrap the raw bytes in fixed PKCS#8 / SPKI prefixes (RFC 8410).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface RawKeyPair {
  /** base64url of the 32-byte seed. Secret: never log it. */
  privateKey: string;
  /** base64url of the 32-byte public key. */
  publicKey: string;
}

/** A signing key: its id and the private key object. */
export interface SigningKey {
  kid: string;
  key: KeyObject;
}

function raw32(b64url: string, what: string): Buffer {
  const bytes = Buffer.from(b64url, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== b64url) throw new TypeError(`${what} must be 32 bytes of base64url`);
  return bytes;
}

export function privateKeyFromSeed(seed: string): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw32(seed, 'Ed25519 seed')]), format: 'der', type: 'pkcs8' });
}

export function publicKeyFromRaw(publicKey: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw32(publicKey, 'Ed25519 public key')]), format: 'der', type: 'spki' });
}

/** The raw public key of a private key, base64url. */
export function rawPublicKey(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length).toString('base64url');
}

export function generateRawKeyPair(): RawKeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length).toString('base64url');
  return { privateKey: seed, publicKey: rawPublicKey(privateKey) };
}

/** The keys a receiver trusts, by kid. A controller holds the gateway's current and next key. */
export type TrustedKeys = ReadonlyMap<string, KeyObject>;

export function trustedKeys(keys: readonly { kid: string; publicKey: string }[]): TrustedKeys {
  return new Map(keys.map((k) => [k.kid, publicKeyFromRaw(k.publicKey)]));
}
