/**
 * Request validation from the same TypeBox schemas the OpenAPI document is generated from
 * (DESIGN §6). Every error is reported at once, as `{in, path, message}` with a JSON pointer.
 *
 * Rules, the same for every route:
 * - objects reject unknown properties: a schema object without `additionalProperties` is given
 *   `additionalProperties: false` (the document then says so too); nothing is silently dropped;
 * - query and path values arrive as strings and are coerced to the schema's scalar types
 *   strictly (`"12"` → 12, `"1e3"` stays a string and fails an integer; `"true"`/`"false"`);
 *   a single query value for an array property becomes a one-element array;
 * - defaults from the schema fill missing query and body fields;
 * - text must be well-formed: no lone UTF-16 surrogates and no control characters other than
 *   tab, CR and LF, in values or in keys. Such input cannot round-trip through every store and
 *   log line, and has no legitimate use in this API;
 * - arrays and objects nested more than `MAX_DEPTH` levels are refused before anything else.
 */
import { FormatRegistry, Kind, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FieldIssue, RequestPart } from '../errors.js';

// Formats the compiler knows; a schema naming any other is refused when its route is defined.
const FORMATS: Record<string, RegExp> = {
  'date-time': /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i,
  date: /^\d{4}-\d{2}-\d{2}$/,
  email: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  uri: /^[a-z][a-z0-9+.-]*:[^\s]*$/i,
};
for (const [name, re] of Object.entries(FORMATS)) {
  if (!FormatRegistry.Has(name)) FormatRegistry.Set(name, (v) => re.test(v));
}

type SchemaNode = Record<string | symbol, unknown>;

function isNode(v: unknown): v is SchemaNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep copy keeping TypeBox's symbol keys (which `structuredClone` would drop). */
function cloneSchema<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => cloneSchema(v)) as T;
  if (!isNode(value)) return value;
  const out: SchemaNode = {};
  for (const key of Reflect.ownKeys(value)) out[key] = cloneSchema(value[key]);
  return out as T;
}

/**
 * A copy of `schema` where every object reachable through `properties`, `items`, `anyOf` and
 * `oneOf` without an explicit `additionalProperties` gets `false`. `allOf` members are left
 * alone: closing them would make an intersection reject its own fields.
 */
export function closeObjects<T extends TSchema>(schema: T): T {
  const copy = cloneSchema(schema);
  const visit = (node: unknown): void => {
    if (!isNode(node)) return;
    if (node['type'] === 'object' && isNode(node['properties']) && node['additionalProperties'] === undefined) {
      node['additionalProperties'] = false;
    }
    if (isNode(node['properties'])) for (const child of Object.values(node['properties'])) visit(child);
    const items = node['items'];
    if (Array.isArray(items)) items.forEach(visit);
    else visit(items);
    for (const key of ['anyOf', 'oneOf'] as const) {
      const list = node[key];
      if (Array.isArray(list)) list.forEach(visit);
    }
  };
  visit(copy);
  return copy;
}

/** Throws if a schema uses a `format` the validator does not know (it would fail every value). */
export function assertKnownFormats(schema: unknown, where: string): void {
  if (Array.isArray(schema)) {
    for (const s of schema) assertKnownFormats(s, where);
    return;
  }
  if (!isNode(schema)) return;
  const format = schema['format'];
  if (typeof format === 'string' && !FormatRegistry.Has(format)) {
    throw new Error(`${where}: unknown format "${format}" (known: ${[...Object.keys(FORMATS)].join(', ')})`);
  }
  for (const v of Object.values(schema)) assertKnownFormats(v, where);
}

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?$/;

function coerceScalar(schema: unknown, value: unknown): unknown {
  if (typeof value !== 'string' || !isNode(schema)) return value;
  const type = schema['type'];
  if ((type === 'integer' || type === 'number') && NUMBER.test(value)) return Number(value);
  if (type === 'boolean') return value === 'true' ? true : value === 'false' ? false : value;
  return value;
}

/** Strict string → scalar coercion of a flat object (query or path parameters). */
function coerceFlat(schema: TSchema, input: Record<string, unknown>): Record<string, unknown> {
  const props = isNode(schema['properties']) ? schema['properties'] : {};
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(input)) {
    const prop = props[key];
    if (isNode(prop) && prop['type'] === 'array') {
      const list = Array.isArray(raw) ? raw : [raw];
      out[key] = list.map((v) => coerceScalar(prop['items'], v));
    } else {
      out[key] = coerceScalar(prop, raw);
    }
  }
  return out;
}

// Lone surrogates (in `u` mode a valid pair is one code point, so only halves match) and
// C0/C1 controls except tab, LF, CR.
// eslint-disable-next-line no-control-regex
const ILL_FORMED = /\p{Cs}|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/u;

function textIssues(value: unknown, part: RequestPart, path: string, out: FieldIssue[]): void {
  if (out.length >= 20) return;
  if (typeof value === 'string') {
    if (ILL_FORMED.test(value)) out.push({ in: part, path, message: 'contains a control character or an unpaired surrogate' });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => textIssues(v, part, `${path}/${i}`, out));
  } else if (isNode(value)) {
    for (const [k, v] of Object.entries(value)) {
      const pointer = `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (ILL_FORMED.test(k)) out.push({ in: part, path: pointer, message: 'property name contains a control character or an unpaired surrogate' });
      else textIssues(v, part, pointer, out);
    }
  }
}

const MAX_ISSUES = 20;

/**
 * Deeper than any request schema here. A 64 kB JSON body can nest some 30 000 arrays, and the
 * recursive walks below (defaults, text checks) would overflow the stack on it: a 500 any caller,
 * logged in or not, could cause. So depth is checked first, without recursion.
 */
export const MAX_DEPTH = 32;

function tooDeep(value: unknown): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_DEPTH) return true;
    for (const child of Array.isArray(v) ? (v as unknown[]) : Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

/** A compiled validator for one part of a request. */
export class PartValidator {
  readonly schema: TSchema;
  private readonly check: TypeCheck<TSchema>;

  constructor(
    readonly part: RequestPart,
    schema: TSchema,
  ) {
    this.schema = closeObjects(schema);
    assertKnownFormats(this.schema, part);
    this.check = TypeCompiler.Compile(this.schema);
  }

  /** The coerced, defaulted value, or the list of issues (first per JSON pointer, at most 20). */
  run(input: unknown): { ok: true; value: unknown } | { ok: false; issues: FieldIssue[] } {
    if (tooDeep(input)) return { ok: false, issues: [{ in: this.part, path: '', message: `nested more than ${MAX_DEPTH} levels deep` }] };
    let value = input;
    if ((this.part === 'query' || this.part === 'params') && isNode(value)) value = coerceFlat(this.schema, value);
    if (this.part !== 'params' && value !== undefined) value = Value.Default(this.schema, value);
    const issues: FieldIssue[] = [];
    textIssues(value, this.part, '', issues);
    if (issues.length === 0 && this.check.Check(value)) return { ok: true, value };
    const seen = new Set(issues.map((i) => i.path));
    for (const e of this.check.Errors(value)) {
      if (issues.length >= MAX_ISSUES) break;
      if (seen.has(e.path)) continue;
      seen.add(e.path);
      issues.push({ in: this.part, path: e.path, message: e.message });
    }
    if (issues.length === 0) issues.push({ in: this.part, path: '', message: 'invalid' });
    return { ok: false, issues };
  }
}

/** True for a TypeBox schema (the only kind `route()` accepts). */
export function isTypeBoxSchema(value: unknown): value is TSchema {
  return isNode(value) && Kind in value;
}
