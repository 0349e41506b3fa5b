/**
 * @smart-passage/protocol — the MQTT wire protocol v1 (PROTOCOL.md). Pure: no I/O here; the
 * reference controller, simulator and conformance suite live in their own entry points.
 */
export * from './schemas.js';
export * from './codes.js';
export * from './topics.js';
export * from './jcs.js';
export * from './keys.js';
export * from './envelope.js';
export * from './validate.js';
export * from './checks.js';
export * from './log.js';
export * from './audit.js';
export { schemaFiles } from './schema-files.js';
export * from './audit-export.js';
export * from './audit-verify.js';
export * from './offline-code.js';
