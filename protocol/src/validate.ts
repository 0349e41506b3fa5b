/**
 * Validators compiled from the schemas in `schemas.ts` (the same definitions exported as
 * `schema/*.json`). One validator per message type, one for the bare envelope.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { bodySchemas, Envelope, messageSchemas, ProvisioningBundle, type MessageType } from './schemas.js';

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });

const envelopeValidator = ajv.compile(Envelope);
const bodyValidators = Object.fromEntries(
  Object.entries(bodySchemas).map(([type, schema]) => [type, ajv.compile(schema)]),
) as Record<MessageType, ValidateFunction>;
const messageValidators = Object.fromEntries(
  Object.entries(messageSchemas).map(([type, schema]) => [type, ajv.compile(schema)]),
) as Record<MessageType, ValidateFunction>;
const bundleValidator = ajv.compile(ProvisioningBundle);

/** A validation failure: where and what, as `path: message`, at most a few. */
export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`)
    .join('; ');
}

export type Validation = { ok: true } | { ok: false; detail: string };

function run(fn: ValidateFunction, value: unknown): Validation {
  return fn(value) ? { ok: true } : { ok: false, detail: describeErrors(fn.errors) };
}

export function isMessageType(type: string): type is MessageType {
  return Object.hasOwn(bodySchemas, type);
}

/** Check the envelope fields only (the body must be an object). */
export function validateEnvelope(value: unknown): Validation {
  return run(envelopeValidator, value);
}

/** Check a body against the schema of its message type. */
export function validateBody(type: MessageType, body: unknown): Validation {
  return run(bodyValidators[type], body);
}

/** Check a whole message (envelope and body) of a known type. */
export function validateMessage(type: MessageType, message: unknown): Validation {
  return run(messageValidators[type], message);
}

export function validateBundle(value: unknown): Validation {
  return run(bundleValidator, value);
}
