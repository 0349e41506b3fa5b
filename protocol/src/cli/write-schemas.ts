#!/usr/bin/env node
// Writes protocol/schema/*.json from schemas.ts (`npm run schema`). A unit test fails when they differ.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { schemaFiles } from '../schema-files.js';

const dir = fileURLToPath(new URL('../../schema/', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, text] of schemaFiles()) writeFileSync(`${dir}${name}`, text);
console.log(`wrote ${schemaFiles().size} schema files to ${dir}`);
