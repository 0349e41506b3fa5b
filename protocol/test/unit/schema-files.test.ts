// The exported JSON Schema files are generated from schemas.ts; this fails when they are stale.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { MESSAGE_TYPES, schemaFiles } from '../../src/index.js';

const dir = fileURLToPath(new URL('../../schema/', import.meta.url));

describe('protocol/schema/*.json', () => {
  it('match schemas.ts exactly (run `npm run schema` after changing a schema)', () => {
    const expected = schemaFiles();
    expect(readdirSync(dir).sort()).toEqual([...expected.keys()].sort());
    for (const [name, text] of expected) expect(readFileSync(`${dir}${name}`, 'utf8'), name).toBe(text);
  });

  it('has one file per message type, each a valid draft 2020-12 schema', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
    for (const type of MESSAGE_TYPES) {
      const doc = JSON.parse(readFileSync(`${dir}${type}.json`, 'utf8')) as object;
      expect(() => ajv.compile(doc), type).not.toThrow();
    }
  });
});
