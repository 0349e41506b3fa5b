// scrypt password hashes: format, verify, wrong passwords, unknown users, hostile stored values.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCRYPT_PARAMS, PasswordHasher } from '../../../src/features/auth/passwords.js';

// Cheap cost for speed; the production default is checked separately below.
const hasher = new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 });

describe('PasswordHasher', () => {
  it('hashes to scrypt$N$r$p$salt$hash with a fresh salt each time', async () => {
    const a = await hasher.hash('correct horse battery staple');
    const b = await hasher.hash('correct horse battery staple');
    expect(a).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('horse');
  });

  it('verifies the right password and refuses a wrong one', async () => {
    const stored = await hasher.hash('correct horse battery staple');
    await expect(hasher.verify('correct horse battery staple', stored)).resolves.toBe(true);
    await expect(hasher.verify('correct horse battery stapl', stored)).resolves.toBe(false);
    await expect(hasher.verify('Correct horse battery staple', stored)).resolves.toBe(false);
    await expect(hasher.verify('', stored)).resolves.toBe(false);
  });

  it('treats composed and decomposed Unicode as the same password', async () => {
    const stored = await hasher.hash('Ångström');
    await expect(hasher.verify('A\u030Angstro\u0308m', stored)).resolves.toBe(true);
  });

  it('answers false for an unknown user (no hash) and for the dummy verify', async () => {
    await expect(hasher.verify('anything', undefined)).resolves.toBe(false);
    await expect(hasher.verifyDummy('anything')).resolves.toBe(false);
  });

  it('refuses malformed or hostile stored hashes without doing their work', async () => {
    const stored = await hasher.hash('pw');
    const [, , r, p, salt, hash] = stored.split('$') as [string, string, string, string, string, string];
    for (const bad of [
      '',
      'bcrypt$2b$10$abc',
      stored.replace(/^scrypt/, 'scrypt2'),
      `scrypt$${2 ** 30}$${r}$${p}$${salt}$${hash}`, // would need 128 GiB: refused, not attempted
      `scrypt$1000$${r}$${p}$${salt}$${hash}`, // N not a power of two
      `scrypt$1024$${r}$${p}$${salt}$`,
      `scrypt$1024$${r}$${p}$${salt}$${hash}$extra`,
      `scrypt$1024$${r}$${p}$${salt}$${hash}!`,
    ]) {
      await expect(hasher.verify('pw', bad)).resolves.toBe(false);
    }
  });

  it('verifies hashes made at another cost (each hash carries its parameters) and says when to rehash', async () => {
    const weak = await new PasswordHasher({ N: 2 ** 4, r: 8, p: 1 }).hash('pw');
    await expect(hasher.verify('pw', weak)).resolves.toBe(true);
    expect(hasher.needsRehash(weak)).toBe(true);
    expect(hasher.needsRehash(await hasher.hash('pw'))).toBe(false);
  });

  it('defaults to N=2^15, r=8, p=1, and that cost runs within node limits (maxmem)', async () => {
    expect(DEFAULT_SCRYPT_PARAMS).toEqual({ N: 32768, r: 8, p: 1 });
    const prod = new PasswordHasher();
    const stored = await prod.hash('pw');
    expect(stored.startsWith('scrypt$32768$8$1$')).toBe(true);
    await expect(prod.verify('pw', stored)).resolves.toBe(true);
    await expect(prod.verify('pw', undefined)).resolves.toBe(false);
  });

  it('refuses out-of-range parameters', () => {
    expect(() => new PasswordHasher({ N: 1000, r: 8, p: 1 })).toThrow(RangeError);
    expect(() => new PasswordHasher({ N: 2 ** 10, r: 0, p: 1 })).toThrow(RangeError);
  });
});
