// An audit checkpoint's signature has one spelling (like an envelope's, PROTOCOL §4.2): the last
// base64url character's spare bits changed is an edit, and an edit must be detected (DESIGN §8).
import { describe, expect, it } from 'vitest';
import { generateRawKeyPair, privateKeyFromSeed, signAuditCheckpoint, trustedKeys, verifyAuditSignature } from '../../src/index.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('audit signature spelling', () => {
  it('refuses every other spelling of a genuine checkpoint signature', () => {
    const pair = generateRawKeyPair();
    const keys = trustedKeys([{ kid: 'audit-t', publicKey: pair.publicKey }]);
    const cp = signAuditCheckpoint({ v: 1, chain: 'system', size: 3, head: 'a'.repeat(64), at: 1 }, { kid: 'audit-t', key: privateKeyFromSeed(pair.privateKey) });
    expect(verifyAuditSignature({ ...cp }, keys)).toBe('ok');
    const last = cp.sig.slice(-1);
    let others = 0;
    for (const c of ALPHABET) {
      if (c === last) continue;
      const respelt = { ...cp, sig: cp.sig.slice(0, -1) + c };
      if (Buffer.from(respelt.sig, 'base64url').equals(Buffer.from(cp.sig, 'base64url'))) others++;
      expect(verifyAuditSignature(respelt, keys), c).toBe('bad-signature');
    }
    // The case that matters exists: spellings that decode to the same 64 bytes.
    expect(others).toBe(15); // 86 characters carry 516 bits for 512: 4 spare bits, 16 spellings
  });
});
