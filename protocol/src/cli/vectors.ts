#!/usr/bin/env node
/**
 * Test vectors for PROTOCOL.md §11, and every example message the spec shows (§2–§7), computed
 * from fixed keys and fixed envelopes so that nothing in the spec is typed by hand.
 *
 *   node protocol/dist/cli/vectors.js              → the vectors as JSON (saved as protocol/test/vectors.json)
 *   node protocol/dist/cli/vectors.js --markdown   → the same examples laid out for pasting into PROTOCOL.md
 *
 * Ed25519 is deterministic (RFC 8032 §5.1.6), so the same seed and bytes always give the same
 * signature; `protocol/test/unit/vectors.test.ts` recomputes everything and checks the spec text.
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeTime } from 'ulid';
import { buildMessage, SIGNING_PREFIX, signingBytes } from '../envelope.js';
import { jcs } from '../jcs.js';
import { privateKeyFromSeed, rawPublicKey, type SigningKey } from '../keys.js';
import type { BodyOf, Message, MessageType, ProvisioningBundle } from '../schemas.js';

/** A key pair as §11.1 lists it: base64url as the wire and the bundle carry it, hex for people. */
export interface KeyVector {
  kid: string;
  seed: string;
  seedHex: string;
  publicKey: string;
  publicKeyHex: string;
}

export interface Vectors {
  description: string;
  keys: { gateway: KeyVector; gatewayNext: KeyVector; controller: KeyVector };
  /** §11.2–§11.4: one envelope taken through every step of signing. */
  signing: {
    /** The envelope without `sig`, as the signer holds it. */
    unsigned: Record<string, unknown>;
    /** JCS (RFC 8785) of `unsigned`. */
    jcs: string;
    /** `"sp/v1\n"` + `jcs`: the exact text whose UTF-8 bytes are signed. */
    signedText: string;
    signedBytesLength: number;
    signedBytesSha256: string;
    signature: string;
    /** The complete message as it goes on the wire. */
    message: Message;
    /** The same message with `body.version` changed and the old signature kept: must not verify. */
    tampered: Record<string, unknown>;
  };
  /** §11.5: JCS of a deliberately untidy JSON text. */
  jcsExample: { input: string; output: string };
  /** Every example message in the spec, keyed by a name the spec uses in its prose. */
  examples: Record<string, Message>;
  bundle: ProvisioningBundle;
}

/** 32 bytes `first`, `first+1`, … as base64url: an obviously fake, reproducible seed. */
function countingSeed(first: number): string {
  return Buffer.from(Array.from({ length: 32 }, (_, i) => first + i)).toString('base64url');
}

function keyVector(kid: string, seed: string): KeyVector {
  const publicKey = rawPublicKey(privateKeyFromSeed(seed));
  return {
    kid,
    seed,
    seedHex: Buffer.from(seed, 'base64url').toString('hex'),
    publicKey,
    publicKeyHex: Buffer.from(publicKey, 'base64url').toString('hex'),
  };
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** A valid ULID for `ms` whose random half is derived from `label`, so examples are reproducible. */
function fixedUlid(ms: number, label: string): string {
  const digest = createHash('sha256').update(label).digest();
  let random = '';
  for (let i = 0; i < 16; i += 1) random += CROCKFORD[(digest[i] ?? 0) % 32];
  return encodeTime(ms, 10) + random;
}

/** 2025-11-28T11:40:00.000Z, the moment the example story starts. */
const T = 1_764_330_000_000;
const CTRL = 'ctl-7';
const GATEWAY_BOOT = fixedUlid(T - 86_400_000, 'gateway boot');
const CONTROLLER_BOOT = fixedUlid(T - 10_000, 'controller boot');
const GRANT_ID = 'g-01KB6ZQ8';
const TAG_UID = '04A1B2C3D4E5F6';

const JCS_INPUT =
  '{\n' +
  '  "type": "demo",\n' +
  '  "body": {"version": 4.2e1, "grants": [{"notAfter": 1764337200000, "doors": ["street", "stair-a"], "grantId": "g-1"}]},\n' +
  '  "numbers": [1.0, -0, 1e3, 4.50, 0.000001, 1e-7, 1E21],\n' +
  '  "text": "caf\\u00e9 \\/ tab\\t bell\\u0007",\n' +
  '  "Zebra": null, "apple": true, "\\u00e9t\\u00e9": false\n' +
  '}';

/** Compute every vector and example. Pure and deterministic. */
export function makeVectors(): Vectors {
  const gateway = keyVector('gw-2026-11', countingSeed(0x00));
  const gatewayNext = keyVector('gw-2027-05', countingSeed(0x40));
  const controller = keyVector('ctl-7-k1', countingSeed(0x20));
  const gwKey: SigningKey = { kid: gateway.kid, key: privateKeyFromSeed(gateway.seed) };
  const ctlKey: SigningKey = { kid: controller.kid, key: privateKeyFromSeed(controller.seed) };

  const fromGateway = <K extends MessageType>(type: K, seq: number, iat: number, body: BodyOf<K>, withExp = true, label: string = type) =>
    buildMessage({
      type,
      ctrl: CTRL,
      seq,
      boot: GATEWAY_BOOT,
      body,
      key: gwKey,
      iat,
      id: fixedUlid(iat, label),
      ...(withExp ? { exp: iat + 10_000 } : {}),
    });
  const fromController = <K extends MessageType>(type: K, seq: number, iat: number, body: BodyOf<K>, label: string) =>
    buildMessage({ type, ctrl: CTRL, seq, boot: CONTROLLER_BOOT, body, key: ctlKey, iat, id: fixedUlid(iat, label) });

  // §5.1 — the signing vector: a sync with one grant holding a tag and a PIN.
  const sync = fromGateway(
    'grants.sync',
    1093,
    T + 123,
    {
      version: 42,
      grants: [
        {
          grantId: GRANT_ID,
          incident: 'INC-2025-118734',
          doors: ['street', 'stair-a'],
          credentials: [
            { kind: 'tag', uid: TAG_UID },
            { kind: 'pin', pin: '4711' },
          ],
          notBefore: T,
          notAfter: T + 7_200_000,
        },
      ],
    },
    false,
  );
  const { sig, ...unsigned } = sync;
  const bytes = signingBytes(sync);
  const canonical = jcs(unsigned);

  const pulse = fromGateway('door.pulse', 1094, T + 60_000, { door: 'street', seconds: 8 });
  const hold = fromGateway('door.hold', 1095, T + 300_000, { door: 'stair-a', until: T + 300_000 + 900_000 });
  const release = fromGateway('door.release', 1096, T + 600_000, { door: 'stair-a' });
  const ping = fromGateway('ctrl.ping', 1097, T + 660_000, {});
  const check = fromGateway('access.check', 1098, T + 720_000, { door: 'street', credential: { kind: 'tag', uid: TAG_UID } });
  const resent = fromGateway('grants.sync', 1099, T + 780_000, sync.body, false, 'sync resent');

  const examples: Record<string, Message> = {
    'state.will': fromController('state', 0, T - 9_990, { online: false }, 'will'),
    'state.birth': fromController(
      'state',
      0,
      T - 9_950,
      {
        online: true,
        fw: 'exd-4/2.4.1',
        vendor: 'example-doors',
        appliedVersion: 41,
        lastSeq: 1092,
        clock: T - 9_950,
        clockSynced: true,
        doors: [
          { ref: 'street', locked: true, open: false },
          { ref: 'stair-a', locked: true, open: false },
          { ref: 'floor-3', locked: true, open: false },
        ],
      },
      'birth',
    ),
    'grants.sync': sync,
    'reply.applied': fromController('reply', 0, T + 180, { ref: sync.id, status: 'applied', appliedVersion: 42 }, 'applied'),
    'door.pulse': pulse,
    'evt.door.unlocked': fromController(
      'evt',
      1,
      T + 60_030,
      { kind: 'door', door: 'street', state: 'unlocked', cause: 'pulse', at: T + 60_030 },
      'unlocked',
    ),
    'reply.done': fromController('reply', 1, T + 60_040, { ref: pulse.id, status: 'done' }, 'pulse done'),
    'evt.door.locked': fromController(
      'evt',
      2,
      T + 68_030,
      { kind: 'door', door: 'street', state: 'locked', cause: 'timeout', at: T + 68_030 },
      'locked',
    ),
    'evt.access.granted': fromController(
      'evt',
      3,
      T + 120_000,
      { kind: 'access', door: 'street', credential: { kind: 'tag', uid: TAG_UID }, result: 'granted', reason: 'grant', grantId: GRANT_ID, at: T + 120_000 },
      'access granted',
    ),
    'evt.access.denied': fromController(
      'evt',
      4,
      T + 150_000,
      { kind: 'access', door: 'floor-3', credential: { kind: 'pin' }, result: 'denied', reason: 'wrong-door', grantId: GRANT_ID, at: T + 150_000 },
      'access denied',
    ),
    'door.hold': hold,
    'door.release': release,
    'ctrl.ping': ping,
    'access.check': check,
    'reply.decision': fromController(
      'reply',
      4,
      T + 720_020,
      { ref: check.id, status: 'done', decision: { result: 'granted', reason: 'grant', grantId: GRANT_ID } },
      'decision',
    ),
    'reply.stale': fromController('reply', 4, T + 780_030, { ref: resent.id, status: 'stale', appliedVersion: 42 }, 'stale'),
    'reply.rejected': fromController(
      'reply',
      4,
      T + 840_030,
      { ref: fixedUlid(T + 840_000, 'sync 43'), status: 'rejected', code: 'unknown-door', appliedVersion: 42 },
      'rejected sync',
    ),
    'evt.tamper': fromController('evt', 5, T + 900_000, { kind: 'tamper', at: T + 900_000 }, 'tamper'),
    'evt.rejected': fromController(
      'evt',
      6,
      T + 960_000,
      { kind: 'rejected', code: 'bad-signature', ref: fixedUlid(T + 959_990, 'forged'), suppressed: 2, at: T + 960_000 },
      'rejected event',
    ),
    'gw.state': buildMessage({
      type: 'gw.state',
      ctrl: 'gw-a',
      seq: 0,
      boot: GATEWAY_BOOT,
      body: {
        online: true,
        keys: [
          { kid: gateway.kid, publicKey: gateway.publicKey },
          { kid: gatewayNext.kid, publicKey: gatewayNext.publicKey },
        ],
      },
      key: gwKey,
      iat: T - 86_399_000,
      id: fixedUlid(T - 86_399_000, 'gw state'),
    }),
  };

  return {
    description:
      'Smart Passage wire protocol v1 test vectors (PROTOCOL.md §11). Generated by protocol/src/cli/vectors.ts; do not edit by hand.',
    keys: { gateway, gatewayNext, controller },
    signing: {
      unsigned,
      jcs: canonical,
      signedText: SIGNING_PREFIX + canonical,
      signedBytesLength: bytes.length,
      signedBytesSha256: createHash('sha256').update(bytes).digest('hex'),
      signature: sig,
      message: sync,
      tampered: { ...sync, body: { ...sync.body, version: 43 } },
    },
    jcsExample: { input: JCS_INPUT, output: jcs(JSON.parse(JCS_INPUT)) },
    examples,
    bundle: {
      controllerId: CTRL,
      mqtt: { url: 'mqtts://broker.example.net:8883', username: CTRL, password: 'n7Qe2VbX0sLk4YpR9tWc' },
      gatewayKeys: [
        { kid: gateway.kid, publicKey: gateway.publicKey },
        { kid: gatewayNext.kid, publicKey: gatewayNext.publicKey },
      ],
      controllerKid: controller.kid,
      controllerKey: { kid: controller.kid, privateKey: controller.seed },
      offlineSecret: countingSeed(0x60),
      doors: [
        { ref: 'street', name: 'Street entrance' },
        { ref: 'stair-a', name: 'Stairwell A' },
        { ref: 'floor-3', name: 'Floor 3 landing' },
      ],
    },
  };
}

const WIDTH = 100;

/** JSON on one line when it fits in `room` characters, else one member or item a line. */
function layout(value: unknown, indent: string, room: number): string {
  const flat = JSON.stringify(value);
  if (flat.length <= room || value === null || typeof value !== 'object') return flat;
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = value.map((item) => inner + layout(item, inner, WIDTH - inner.length - 1));
    return `[\n${items.join(',\n')}\n${indent}]`;
  }
  const members = Object.entries(value as Record<string, unknown>).map(([k, v]) => {
    const key = `${JSON.stringify(k)}:`;
    return inner + key + layout(v, inner, WIDTH - inner.length - key.length - 1);
  });
  return `{\n${members.join(',\n')}\n${indent}}`;
}

/**
 * A message laid out for reading: envelope fields on the first lines, then the body, then `kid`
 * and `sig`. Still valid JSON that parses to the very same value.
 */
export function formatMessage(msg: Message): string {
  const { body, kid, sig, ...head } = msg as Message & Record<string, unknown>;
  const members = Object.entries(head).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
  const headLines: string[] = [];
  let line = '';
  for (const m of members) {
    if (line && line.length + m.length > 80) {
      headLines.push(line);
      line = '';
    }
    line += (line ? ',' : '') + m;
  }
  headLines.push(line);
  return `{${headLines.join(',\n ')},\n "body":${layout(body, ' ', WIDTH - 9)},\n "kid":${JSON.stringify(kid)},\n "sig":${JSON.stringify(sig)}}`;
}

/** Any JSON value laid out like the examples (used for the provisioning bundle). */
export function formatJson(value: unknown): string {
  return layout(value, '', WIDTH);
}

/** The examples as fenced blocks, each under its name, for pasting into PROTOCOL.md. */
export function renderMarkdown(v: Vectors): string {
  const blocks = Object.entries(v.examples).map(([name, msg]) => `<!-- ${name} -->\n\`\`\`json\n${formatMessage(msg)}\n\`\`\``);
  blocks.push(`<!-- bundle -->\n\`\`\`json\n${formatJson(v.bundle)}\n\`\`\``);
  return `${blocks.join('\n\n')}\n`;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--markdown');
  if (unknown.length > 0) {
    process.stderr.write(`unknown argument(s): ${unknown.join(' ')}\nusage: vectors [--markdown]\n`);
    process.exit(2);
  }
  const vectors = makeVectors();
  process.stdout.write(args.includes('--markdown') ? renderMarkdown(vectors) : `${JSON.stringify(vectors, null, 2)}\n`);
}
