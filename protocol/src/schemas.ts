/**
 * The wire protocol's message schemas: the single source of truth (PROTOCOL.md §4–§8).
 *
 * Each schema is plain JSON Schema (draft 2020-12 compatible) built with TypeBox, so the same
 * definition gives the validator, the exported `schema/*.json` files and the TypeScript types.
 * Wire fields are camelCase everywhere.
 */
import { Type, type Static, type TLiteral, type TUnion } from '@sinclair/typebox';

/** A union of string literals that keeps its literal types. */
function OneOf<const T extends readonly string[]>(values: T): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(values.map((v) => Type.Literal(v))) as never;
}

/** Protocol major version carried in every envelope as `v`. */
export const PROTOCOL_VERSION = 1 as const;

// ── Scalars ───────────────────────────────────────────────────────────────────────────────────

/** Controller id: also the MQTT username and a topic level, so no `/`, `+`, `#`. */
export const ControllerId = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
/** ULID (Crockford base32, 26 chars). */
export const Ulid = Type.String({ pattern: '^[0-9A-HJKMNP-TV-Z]{26}$' });
/** Milliseconds since the Unix epoch (UTC). */
export const EpochMs = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** A door as the controller names it locally. */
export const DoorRef = Type.String({ pattern: '^[A-Za-z0-9._-]{1,32}$' });
/** RFID tag UID: upper-case hex, 2–16 bytes. */
export const TagUid = Type.String({ pattern: '^(?:[0-9A-F]{2}){2,16}$' });
/** Incident PIN: 4–8 decimal digits. */
export const Pin = Type.String({ pattern: '^[0-9]{4,8}$' });
/** Key id: names a signing key so keys can rotate. */
export const Kid = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' });
/** Ed25519 signature, base64url without padding (64 bytes → 86 chars). */
export const Signature = Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' });
/** Raw 32-byte Ed25519 public key or seed, base64url without padding (43 chars). */
export const RawKey = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
const ShortText = (max: number) => Type.String({ minLength: 1, maxLength: max });
const BootId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' });

// ── Bodies: gateway → controller ───────────────────────────────────────────────────────────────

export const TagCredential = Type.Object({ kind: Type.Literal('tag'), uid: TagUid }, { additionalProperties: false });
export const PinCredential = Type.Object({ kind: Type.Literal('pin'), pin: Pin }, { additionalProperties: false });
export const Credential = Type.Union([TagCredential, PinCredential]);

export const SyncGrant = Type.Object(
  {
    grantId: ShortText(64),
    incident: ShortText(64),
    doors: Type.Array(DoorRef, { minItems: 1, maxItems: 64, uniqueItems: true }),
    credentials: Type.Array(Credential, { minItems: 1, maxItems: 256 }),
    notBefore: EpochMs,
    notAfter: EpochMs,
  },
  { additionalProperties: false },
);

/** PROTOCOL §5: the complete desired set of emergency grants for one controller. */
export const GrantsSyncBody = Type.Object(
  { version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), grants: Type.Array(SyncGrant, { maxItems: 256 }) },
  { additionalProperties: false },
);
export const DoorPulseBody = Type.Object(
  { door: DoorRef, seconds: Type.Integer({ minimum: 1, maximum: 30 }) },
  { additionalProperties: false },
);
export const DoorHoldBody = Type.Object({ door: DoorRef, until: EpochMs }, { additionalProperties: false });
export const DoorReleaseBody = Type.Object({ door: DoorRef }, { additionalProperties: false });
export const CtrlPingBody = Type.Object({}, { additionalProperties: false });
/** Ask the controller how it would decide a credential at a door now, without unlocking. */
export const AccessCheckBody = Type.Object({ door: DoorRef, credential: Credential }, { additionalProperties: false });

// ── Bodies: controller → gateway ───────────────────────────────────────────────────────────────

export const DoorState = Type.Object({ ref: DoorRef, locked: Type.Boolean(), open: Type.Boolean() }, { additionalProperties: false });

export const StateOnlineBody = Type.Object(
  {
    online: Type.Literal(true),
    fw: ShortText(64),
    vendor: ShortText(64),
    appliedVersion: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    lastSeq: Seq,
    clock: EpochMs,
    clockSynced: Type.Boolean(),
    doors: Type.Array(DoorState, { maxItems: 64 }),
  },
  { additionalProperties: false },
);
export const StateOfflineBody = Type.Object({ online: Type.Literal(false) }, { additionalProperties: false });
export const StateBody = Type.Union([StateOnlineBody, StateOfflineBody]);

export const ACCESS_REASONS = ['grant', 'unknown', 'expired', 'not-yet-valid', 'wrong-door', 'clock-unsafe', 'lockout', 'offline-code', 'spent', 'controller-online'] as const;
export type AccessReason = (typeof ACCESS_REASONS)[number];
const AccessReasonSchema = OneOf(ACCESS_REASONS);

/** What a credential looked like at the reader: a PIN is never echoed back. */
export const SeenCredential = Type.Union([
  Type.Object({ kind: Type.Literal('tag'), uid: TagUid }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('pin') }, { additionalProperties: false }),
  // PROTOCOL §2.6: never the digits; the window the code was made for, when it matched one.
  Type.Object({ kind: Type.Literal('offline-code'), window: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })) }, { additionalProperties: false }),
]);

export const AccessDecision = Type.Object(
  {
    result: OneOf(['granted', 'denied']),
    reason: AccessReasonSchema,
    grantId: Type.Optional(ShortText(64)),
  },
  { additionalProperties: false },
);

export const ReplyBody = Type.Object(
  {
    ref: Ulid,
    status: OneOf(['applied', 'stale', 'rejected', 'done']),
    appliedVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    code: Type.Optional(ShortText(64)),
    decision: Type.Optional(AccessDecision),
  },
  { additionalProperties: false },
);

export const AccessEvent = Type.Object(
  {
    kind: Type.Literal('access'),
    door: DoorRef,
    credential: SeenCredential,
    result: OneOf(['granted', 'denied']),
    reason: AccessReasonSchema,
    grantId: Type.Optional(ShortText(64)),
    at: EpochMs,
  },
  { additionalProperties: false },
);
export const DoorEvent = Type.Object(
  {
    kind: Type.Literal('door'),
    door: DoorRef,
    state: OneOf(['open', 'closed', 'forced', 'held', 'unlocked', 'locked']),
    cause: Type.Optional(OneOf(['credential', 'pulse', 'hold', 'release', 'timeout'])),
    at: EpochMs,
  },
  { additionalProperties: false },
);
export const TamperEvent = Type.Object({ kind: Type.Literal('tamper'), at: EpochMs }, { additionalProperties: false });
/** A message the controller dropped: PROTOCOL §9. Rate-limited; `suppressed` counts those not reported. */
export const RejectedEvent = Type.Object(
  {
    kind: Type.Literal('rejected'),
    code: ShortText(64),
    ref: Type.Optional(Ulid),
    suppressed: Type.Optional(Type.Integer({ minimum: 1 })),
    at: EpochMs,
  },
  { additionalProperties: false },
);
export const EvtBody = Type.Union([AccessEvent, DoorEvent, TamperEvent, RejectedEvent]);

/** Gateway presence with the public keys controllers may trust (PROTOCOL §6). */
export const GwStateBody = Type.Object(
  {
    online: Type.Boolean(),
    keys: Type.Optional(Type.Array(Type.Object({ kid: Kid, publicKey: RawKey }, { additionalProperties: false }), { maxItems: 8 })),
  },
  { additionalProperties: false },
);

// ── Envelope ─────────────────────────────────────────────────────────────────────────────────

/** PROTOCOL §4: the fields every message carries around its body. */
const envelopeFields = {
  v: Type.Literal(PROTOCOL_VERSION),
  id: Ulid,
  ctrl: ControllerId,
  seq: Seq,
  boot: BootId,
  iat: EpochMs,
  exp: Type.Optional(EpochMs),
  kid: Kid,
  sig: Signature,
};

export const bodySchemas = {
  'grants.sync': GrantsSyncBody,
  'door.pulse': DoorPulseBody,
  'door.hold': DoorHoldBody,
  'door.release': DoorReleaseBody,
  'ctrl.ping': CtrlPingBody,
  'access.check': AccessCheckBody,
  state: StateBody,
  reply: ReplyBody,
  evt: EvtBody,
  'gw.state': GwStateBody,
} as const;

export type MessageType = keyof typeof bodySchemas;
export const MESSAGE_TYPES = Object.keys(bodySchemas) as MessageType[];
/** Types the gateway sends to a controller. */
export const GATEWAY_TO_CONTROLLER = ['grants.sync', 'door.pulse', 'door.hold', 'door.release', 'ctrl.ping', 'access.check'] as const;
/** Types a controller sends to the gateway. */
export const CONTROLLER_TO_GATEWAY = ['state', 'reply', 'evt'] as const;
export type GatewayCommandType = (typeof GATEWAY_TO_CONTROLLER)[number];
export type ControllerMessageType = (typeof CONTROLLER_TO_GATEWAY)[number];

/** Any envelope, body not yet checked: the first thing a receiver validates. */
export const Envelope = Type.Object(
  { ...envelopeFields, type: Type.String({ minLength: 1, maxLength: 32 }), body: Type.Object({}) },
  { additionalProperties: false, $id: 'Envelope' },
);

function messageSchema<K extends MessageType>(type: K) {
  return Type.Object({ ...envelopeFields, type: Type.Literal(type), body: bodySchemas[type] }, { additionalProperties: false });
}
export const messageSchemas = {
  'grants.sync': messageSchema('grants.sync'),
  'door.pulse': messageSchema('door.pulse'),
  'door.hold': messageSchema('door.hold'),
  'door.release': messageSchema('door.release'),
  'ctrl.ping': messageSchema('ctrl.ping'),
  'access.check': messageSchema('access.check'),
  state: messageSchema('state'),
  reply: messageSchema('reply'),
  evt: messageSchema('evt'),
  'gw.state': messageSchema('gw.state'),
} as const;

/** §5.9 provisioning bundle, handed to a controller once at registration. */
export const ProvisioningBundle = Type.Object(
  {
    controllerId: ControllerId,
    mqtt: Type.Object(
      { url: Type.String({ pattern: '^mqtts?://' }), username: ControllerId, password: Type.String({ minLength: 1, maxLength: 256 }) },
      { additionalProperties: false },
    ),
    gatewayKeys: Type.Array(Type.Object({ kid: Kid, publicKey: RawKey }, { additionalProperties: false }), { minItems: 1, maxItems: 8 }),
    controllerKid: Kid,
    controllerKey: Type.Optional(Type.Object({ kid: Kid, privateKey: RawKey }, { additionalProperties: false })),
    offlineSecret: Type.Optional(RawKey),
    doors: Type.Optional(
      Type.Array(Type.Object({ ref: DoorRef, name: Type.Optional(ShortText(128)) }, { additionalProperties: false }), { maxItems: 64 }),
    ),
  },
  { additionalProperties: false, $id: 'ProvisioningBundle' },
);

// ── Types ────────────────────────────────────────────────────────────────────────────────────

export type Credential = Static<typeof Credential>;
export type SeenCredential = Static<typeof SeenCredential>;
export type SyncGrant = Static<typeof SyncGrant>;
export type GrantsSyncBody = Static<typeof GrantsSyncBody>;
export type StateOnlineBody = Static<typeof StateOnlineBody>;
export type StateBody = Static<typeof StateBody>;
export type ReplyBody = Static<typeof ReplyBody>;
export type EvtBody = Static<typeof EvtBody>;
export type AccessEvent = Static<typeof AccessEvent>;
export type DoorEvent = Static<typeof DoorEvent>;
export type AccessDecision = Static<typeof AccessDecision>;
export type ProvisioningBundle = Static<typeof ProvisioningBundle>;
export type Envelope = Static<typeof Envelope>;
export type BodyOf<K extends MessageType> = Static<(typeof bodySchemas)[K]>;
/** A complete, typed message of one type. */
export type Message<K extends MessageType = MessageType> = K extends MessageType ? Static<(typeof messageSchemas)[K]> : never;
/** A message before it is signed. */
export type Unsigned<M> = M extends unknown ? Omit<M, 'sig'> : never;
