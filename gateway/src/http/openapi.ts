/**
 * The OpenAPI 3.1 document (DESIGN §6), generated from the route list: the schemas here are the
 * very objects requests are validated against. OpenAPI 3.1 uses JSON Schema 2020-12, so the
 * TypeBox schemas go in as they are (TypeBox's symbol keys vanish in the JSON copy).
 */
import { API_ERROR_CODES, type ApiErrorCode } from '@smart-passage/protocol';
import type { TSchema } from '@sinclair/typebox';
import type { HttpMethod, RouteDef } from './routes.js';

export interface OpenApiInfo {
  title?: string;
  version: string;
  description?: string;
}

type Json = Record<string, unknown>;

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  description?: string;
  style?: 'form';
  explode?: boolean;
  schema: Json;
}

export interface OpenApiResponse {
  description: string;
  content?: { 'application/json': { schema: Json } };
}

export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  /** The roles the route admits (our extension; the bearer scheme cannot say it). */
  'x-roles'?: string[];
  parameters?: OpenApiParameter[];
  requestBody?: { required: true; content: Record<string, { schema: Json }> };
  responses: Record<string, OpenApiResponse>;
}

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description?: string };
  jsonSchemaDialect: string;
  paths: Record<string, Partial<Record<HttpMethod, OpenApiOperation>>>;
  components: {
    schemas: Record<string, Json>;
    securitySchemes: Record<string, { type: 'http'; scheme: 'bearer'; bearerFormat: string }>;
  };
}

/** The JSON Schema of `{error:{code, message, details?}}`. */
export const ERROR_SCHEMA: Json = {
  type: 'object',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: Object.keys(API_ERROR_CODES) },
        message: { type: 'string' },
        details: { description: 'For `validation-failed`: `[{in, path, message}]`, `path` a JSON pointer.' },
      },
    },
  },
};

const plain = (schema: TSchema): Json => JSON.parse(JSON.stringify(schema)) as Json;

const REASONS: Record<number, string> = {
  400: 'Bad request',
  401: 'Not authenticated',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Payload too large',
  422: 'Refused by policy',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Unavailable',
};

function errorCodesOf(r: RouteDef): Map<number, ApiErrorCode[]> {
  const codes = new Set<ApiErrorCode>(r.errors);
  if (r.params || r.query || r.body) codes.add('validation-failed');
  if (r.body) codes.add('payload-too-large');
  if (r.auth !== 'public') {
    codes.add('unauthenticated');
    codes.add('forbidden');
  }
  if (r.pathParams.length > 0) codes.add('not-found');
  codes.add('internal');
  codes.add('unavailable');
  const byStatus = new Map<number, ApiErrorCode[]>();
  for (const code of codes) {
    const status = API_ERROR_CODES[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return byStatus;
}

function parameters(r: RouteDef): OpenApiParameter[] {
  const out: OpenApiParameter[] = [];
  for (const [where, v] of [['path', r.params], ['query', r.query]] as const) {
    if (!v) continue;
    const schema = plain(v.schema);
    const props = (schema['properties'] ?? {}) as Record<string, Json>;
    const required = new Set((schema['required'] as string[] | undefined) ?? []);
    for (const [name, s] of Object.entries(props)) {
      const p: OpenApiParameter = { name, in: where, required: where === 'path' || required.has(name), schema: s };
      if (typeof s['description'] === 'string') p.description = s['description'];
      if (where === 'query' && s['type'] === 'array') {
        p.style = 'form';
        p.explode = true;
      }
      out.push(p);
    }
  }
  return out;
}

function operation(r: RouteDef): OpenApiOperation {
  const responses: Record<string, OpenApiResponse> = {};
  responses[String(r.status)] =
    r.response === null ? { description: 'No content' } : { description: 'Success', content: { 'application/json': { schema: plain(r.response) } } };
  for (const [status, codes] of [...errorCodesOf(r)].sort(([a], [b]) => a - b)) {
    responses[String(status)] = {
      description: `${REASONS[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}`,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  const op: OpenApiOperation = { operationId: r.operationId, summary: r.summary, responses };
  if (r.description !== undefined) op.description = r.description;
  if (r.tags.length > 0) op.tags = [...r.tags];
  if (r.auth !== 'public') {
    op.security = [{ bearerAuth: [] }];
    op['x-roles'] = [...r.auth];
  }
  const params = parameters(r);
  if (params.length > 0) op.parameters = params;
  if (r.body) op.requestBody = { required: true, content: { [r.bodyType === 'csv' ? 'text/csv' : 'application/json']: { schema: plain(r.body.schema) } } };
  return op;
}

/** Build the document. Throws on two routes with the same method and path or operationId. */
export function buildOpenApi(routes: readonly RouteDef[], info: OpenApiInfo): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  const ids = new Set<string>();
  for (const r of routes) {
    const item = (paths[r.path] ??= {});
    if (item[r.method] !== undefined) throw new Error(`duplicate route ${r.method.toUpperCase()} ${r.path}`);
    if (ids.has(r.operationId)) throw new Error(`duplicate operationId ${r.operationId}`);
    ids.add(r.operationId);
    item[r.method] = operation(r);
  }
  return {
    openapi: '3.1.0',
    info: { title: info.title ?? 'Smart Passage gateway API', version: info.version, ...(info.description ? { description: info.description } : {}) },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    },
  };
}
