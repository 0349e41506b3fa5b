// Envelope build/sign/open: every way a message can be bad is rejected with its own code (PROTOCOL §9).
import { describe, expect, it } from 'vitest';
import {
  buildMessage,
  generateRawKeyPair,
  MAX_COMMAND_TTL_MS,
  MAX_PAYLOAD_BYTES,
  openMessage,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
  signingBytes,
  trustedKeys,
  TYPES_BY_TOPIC,
  type GrantsSyncBody,
  type OpenOptions,
} from '../../src/index.js';

const gw = generateRawKeyPair();
const next = generateRawKeyPair();
const intruder = generateRawKeyPair();
const key = { kid: 'gw-1', key: privateKeyFromSeed(gw.privateKey) };
const NOW = 1_764_330_000_000;
const body: GrantsSyncBody = {
  version: 7,
  grants: [
    {
      grantId: 'g-1',
      incident: 'inc-1',
      doors: ['street'],
      credentials: [{ kind: 'tag', uid: '04A1B2C3' }, { kind: 'pin', pin: '4711' }],
      notBefore: NOW - 1000,
      notAfter: NOW + 60_000,
    },
  ],
};

const sync = (over: Partial<Parameters<typeof buildMessage<'grants.sync'>>[0]> = {}) =>
  buildMessage({ type: 'grants.sync', ctrl: 'ctl-7', seq: 11, boot: 'gwboot-0001', body, key, iat: NOW, ...over });

const opts = (over: Partial<OpenOptions> = {}): OpenOptions => ({
  types: TYPES_BY_TOPIC.sync,
  keys: trustedKeys([
    { kid: 'gw-1', publicKey: gw.publicKey },
    { kid: 'gw-2', publicKey: next.publicKey },
  ]),
  maxBytes: MAX_PAYLOAD_BYTES.sync,
  ctrl: 'ctl-7',
  now: NOW,
  replay: { highest: 10, recent: [4, 9, 10] },
  ...over,
});

const bytes = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const codeOf = (payload: Uint8Array, o: OpenOptions = opts()) => {
  const r = openMessage(payload, o);
  return r.ok ? 'ok' : r.code;
};

describe('keys', () => {
  it('round-trips raw seeds and public keys as base64url', () => {
    expect(rawPublicKey(privateKeyFromSeed(gw.privateKey))).toBe(gw.publicKey);
    expect(rawPublicKey(publicKeyFromRaw(gw.publicKey))).toBe(gw.publicKey);
    expect(gw.privateKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
  it('refuses keys that are not 32 bytes of canonical base64url', () => {
    expect(() => publicKeyFromRaw('abc')).toThrow(/32 bytes/);
    expect(() => privateKeyFromSeed(`${gw.privateKey}A`)).toThrow(/32 bytes/);
  });
});

describe('openMessage', () => {
  it('accepts a well-formed, signed, fresh message', () => {
    const r = openMessage(bytes(sync()), opts());
    expect(r).toMatchObject({ ok: true, message: { type: 'grants.sync', seq: 11, body } });
  });

  it('signs exactly "sp/v1\\n" + JCS(envelope without sig)', () => {
    const m = sync();
    const text = signingBytes(m).toString('utf8');
    expect(text.startsWith('sp/v1\n{"body":{"grants":[')).toBe(true);
    expect(text).not.toContain('"sig"');
  });

  it('accepts the next key during rotation, rejects an unknown kid', () => {
    const rotated = sync({ key: { kid: 'gw-2', key: privateKeyFromSeed(next.privateKey) } });
    expect(codeOf(bytes(rotated))).toBe('ok');
    expect(codeOf(bytes(sync({ key: { kid: 'gw-9', key: privateKeyFromSeed(next.privateKey) } })))).toBe('unknown-kid');
  });

  it('rejects a payload over the topic limit before parsing it', () => {
    expect(codeOf(Buffer.alloc(MAX_PAYLOAD_BYTES.sync + 1, 0x20))).toBe('too-large');
  });

  it.each([
    ['not JSON', '{"v":1,'],
    ['a JSON array', '[1,2,3]'],
    ['a JSON string', '"hello"'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['an envelope without sig', (() => { const { sig: _s, ...m } = sync(); return JSON.stringify(m); })()],
    ['an extra envelope field', JSON.stringify({ ...sync(), admin: true })],
    ['a seq that is not an integer', JSON.stringify({ ...sync(), seq: 1.5 })],
    ['a ctrl with a topic wildcard', JSON.stringify({ ...sync(), ctrl: 'ctl/#' })],
    ['odd unicode in the id', JSON.stringify({ ...sync(), id: '\u202e'.repeat(26) })],
  ])('rejects %s as malformed', (_label, payload) => {
    expect(codeOf(typeof payload === 'string' ? bytes(payload) : payload)).toBe('malformed');
  });

  it('rejects another protocol version', () => {
    expect(codeOf(bytes({ ...sync(), v: 2 }))).toBe('unsupported-version');
  });

  it('rejects a type not allowed on the topic (a command on the sync topic)', () => {
    const pulse = buildMessage({ type: 'door.pulse', ctrl: 'ctl-7', seq: 11, boot: 'gwboot-0001', body: { door: 'street', seconds: 5 }, key, iat: NOW, exp: NOW + 5000 });
    expect(codeOf(bytes(pulse))).toBe('unknown-type');
    expect(codeOf(bytes({ ...sync(), type: 'grants.nuke' }))).toBe('unknown-type');
  });

  it('rejects a message for another controller, even when correctly signed', () => {
    expect(codeOf(bytes(sync({ ctrl: 'ctl-8' })))).toBe('wrong-audience');
  });

  it('rejects a bad signature: wrong key, tampered body, tampered seq, tampered kid', () => {
    const forged = sync({ key: { kid: 'gw-1', key: privateKeyFromSeed(intruder.privateKey) } });
    expect(codeOf(bytes(forged))).toBe('bad-signature');
    const m = sync();
    expect(codeOf(bytes({ ...m, body: { ...body, version: 8 } }))).toBe('bad-signature');
    expect(codeOf(bytes({ ...m, seq: 12 }))).toBe('bad-signature');
    expect(codeOf(bytes({ ...m, kid: 'gw-2' }))).toBe('bad-signature');
  });

  it('rejects an expired message and a replayed seq', () => {
    expect(codeOf(bytes(sync({ exp: NOW - 1 })))).toBe('expired');
    expect(codeOf(bytes(sync({ seq: 10 })))).toBe('replay');
    expect(codeOf(bytes(sync({ seq: 4 })))).toBe('replay');
    // Unseen but inside the window: a message overtaken by a later one is still fresh (§4.4).
    expect(codeOf(bytes(sync({ seq: 8 })))).toBe('ok');
    expect(codeOf(bytes(sync({ seq: 70 })), opts({ replay: { highest: 200, recent: [] } }))).toBe('replay');
  });

  it('requires commands to expire within 10 s of issue', () => {
    const cmd = (exp: number | undefined) =>
      bytes(buildMessage({ type: 'door.pulse', ctrl: 'ctl-7', seq: 11, boot: 'gwboot-0001', body: { door: 'street', seconds: 5 }, key, iat: NOW, ...(exp === undefined ? {} : { exp }) }));
    const o = opts({ types: TYPES_BY_TOPIC.cmd, maxBytes: MAX_PAYLOAD_BYTES.cmd, maxTtlMs: MAX_COMMAND_TTL_MS });
    expect(codeOf(cmd(undefined), o)).toBe('exp-required');
    expect(codeOf(cmd(NOW + MAX_COMMAND_TTL_MS + 1), o)).toBe('exp-required');
    expect(codeOf(cmd(NOW + MAX_COMMAND_TTL_MS), o)).toBe('ok');
  });

  it('reports a signed message with a bad body as bad-body, after the signature check', () => {
    const bad = buildMessage({ type: 'grants.sync', ctrl: 'ctl-7', seq: 11, boot: 'gwboot-0001', body: { version: 0, grants: [] }, key, iat: NOW });
    const r = openMessage(bytes(bad), opts());
    expect(r).toMatchObject({ ok: false, code: 'bad-body', id: bad.id });
    const pin = buildMessage({ type: 'grants.sync', ctrl: 'ctl-7', seq: 11, boot: 'gwboot-0001', body: { ...body, grants: [{ ...body.grants[0]!, credentials: [{ kind: 'pin', pin: '12' }] }] }, key, iat: NOW });
    expect(codeOf(bytes(pin))).toBe('bad-body');
  });

  it('rejects a lone surrogate as malformed instead of throwing', () => {
    const m = sync();
    const text = JSON.stringify({ ...m, body: { ...body, grants: [{ ...body.grants[0]!, grantId: 'x' }] } }).replace('"x"', '"\\ud800"');
    expect(codeOf(bytes(text))).toBe('malformed');
  });

  it('never throws, whatever the bytes', () => {
    for (let i = 0; i < 500; i++) {
      const junk = Buffer.from(Array.from({ length: (i * 37) % 300 }, (_, j) => (i * 131 + j * 17) % 256));
      expect(() => openMessage(junk, opts())).not.toThrow();
    }
  });
});
