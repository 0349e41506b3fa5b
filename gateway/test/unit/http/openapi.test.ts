import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { buildOpenApi } from '../../../src/http/openapi.js';
import { route } from '../../../src/http/routes.js';

const Door = Type.Object({ id: Type.String(), name: Type.String({ description: 'shown on the map' }) });

const routes = [
  route({ method: 'get', path: '/api/v1/status', summary: 'Status', tags: ['system'], auth: 'public', responses: { 200: Type.Object({ up: Type.Boolean() }) }, handler: () => Promise.resolve({ up: true }) }),
  route({
    method: 'get',
    path: '/api/v1/doors',
    summary: 'List doors',
    tags: ['doors'],
    auth: ['admin', 'dispatcher'],
    query: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'page size' })), after: Type.Optional(Type.String()), id: Type.Optional(Type.Array(Type.String())) }),
    responses: { 200: Type.Object({ items: Type.Array(Door), next: Type.Optional(Type.String()) }) },
    handler: () => Promise.resolve({ items: [] }),
  }),
  route({
    method: 'patch',
    path: '/api/v1/doors/{id}',
    summary: 'Rename a door',
    auth: ['owner'],
    params: Type.Object({ id: Type.String({ pattern: '^[A-Z0-9]{26}$' }) }),
    body: Type.Object({ name: Type.String({ minLength: 1 }) }),
    responses: { 200: Door },
    errors: ['not-found', 'conflict'],
    handler: ({ params, body }) => Promise.resolve({ id: params.id, name: body.name }),
  }),
  route({ method: 'delete', path: '/api/v1/doors/{id}', summary: 'Remove a door', auth: ['admin'], params: Type.Object({ id: Type.String() }), responses: { 204: null }, handler: () => Promise.resolve() }),
];

/** Walk into a JSON value by keys. */
function at(value: unknown, ...keys: string[]): unknown {
  return keys.reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), value);
}

describe('buildOpenApi', () => {
  const doc = buildOpenApi(routes, { version: '9.9.9' });

  it('is a valid-looking OpenAPI 3.1 document', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toEqual({ title: 'Smart Passage gateway API', version: '9.9.9' });
    expect(doc.components.securitySchemes).toEqual({ bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } });
    expect(at(doc.components.schemas['Error'], 'properties', 'error', 'required')).toEqual(['code', 'message']);
    // A JSON document without TypeBox's symbols or anything JSON cannot hold.
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });

  it('lists every route with its schemas', () => {
    for (const r of routes) {
      const op = doc.paths[r.path]?.[r.method];
      expect(op, `${r.method} ${r.path}`).toBeDefined();
      if (!op) continue;
      expect(op.operationId).toBe(r.operationId);
      expect(op.summary).toBe(r.summary);
      expect(op.responses[String(r.status)]).toBeDefined();
      expect(op.responses['500']?.content?.['application/json'].schema).toEqual({ $ref: '#/components/schemas/Error' });
    }
    const ops = Object.values(doc.paths).flatMap((item) => Object.values(item));
    expect(ops).toHaveLength(routes.length);
  });

  it('describes parameters, body and responses with the validation schemas', () => {
    const list = doc.paths['/api/v1/doors']?.get;
    expect(list?.parameters).toEqual([
      { name: 'limit', in: 'query', required: false, description: 'page size', schema: { type: 'integer', minimum: 1, maximum: 1000, description: 'page size' } },
      { name: 'after', in: 'query', required: false, schema: { type: 'string' } },
      { name: 'id', in: 'query', required: false, style: 'form', explode: true, schema: { type: 'array', items: { type: 'string' } } },
    ]);
    const item = list?.responses['200']?.content?.['application/json'].schema;
    expect(at(item, 'properties', 'items', 'items', 'properties', 'name', 'description')).toBe('shown on the map');
    expect(at(item, 'additionalProperties')).toBeUndefined(); // responses are documented as written (only requests are closed)

    const patch = doc.paths['/api/v1/doors/{id}']?.patch;
    expect(patch?.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Z0-9]{26}$' } }]);
    expect(patch?.requestBody).toEqual({
      required: true,
      content: { 'application/json': { schema: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } }, additionalProperties: false } } },
    });
    expect(Object.keys(patch?.responses ?? {}).sort()).toEqual(['200', '400', '401', '403', '404', '409', '413', '500', '503']);
    expect(doc.paths['/api/v1/doors/{id}']?.delete?.responses['204']).toEqual({ description: 'No content' });
  });

  it('puts bearer security on protected routes only', () => {
    expect(doc.paths['/api/v1/status']?.get?.security).toBeUndefined();
    expect(doc.paths['/api/v1/status']?.get?.responses['401']).toBeUndefined();
    expect(doc.paths['/api/v1/doors']?.get?.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/api/v1/doors']?.get?.['x-roles']).toEqual(['admin', 'dispatcher']);
    expect('security' in doc).toBe(false);
  });

  it('refuses two routes with the same method and path', () => {
    expect(() => buildOpenApi([routes[0]!, routes[0]!], { version: '1' })).toThrow(/duplicate/);
  });
});
