/**
 * The JSON Schema files exported in `protocol/schema/` (one per message type, plus the bare
 * envelope and the provisioning bundle), generated from `schemas.ts` so they cannot drift.
 */
import { Envelope, messageSchemas, ProvisioningBundle } from './schemas.js';

const DIALECT = 'https://json-schema.org/draft/2020-12/schema';

function file(name: string, title: string, schema: object): [string, string] {
  const { $id: _id, ...rest } = schema as Record<string, unknown>;
  const doc = { $schema: DIALECT, $id: `urn:smart-passage:protocol:v1:${name}`, title, ...rest };
  return [`${name}.json`, `${JSON.stringify(doc, null, 2)}\n`];
}

/** File name → file text, in a stable order. */
export function schemaFiles(): Map<string, string> {
  const files = new Map<string, string>([
    file('envelope', 'Any message, body unchecked', Envelope),
    file('provisioning-bundle', 'Controller provisioning bundle', ProvisioningBundle),
  ]);
  for (const [type, schema] of Object.entries(messageSchemas)) files.set(...file(type, `Message ${type}`, schema));
  return files;
}
