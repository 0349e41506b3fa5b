import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { API_ERROR_CODES } from '@smart-passage/protocol';
import { AppError } from '../../../src/errors.js';
import { RawReply, route, type RouteDef } from '../../../src/http/routes.js';
import { closeObjects, PartValidator } from '../../../src/http/validation.js';

const ok = { 200: Type.Object({ ok: Type.Boolean() }) };
const handler = () => Promise.resolve({ ok: true });

describe('AppError', () => {
  it('derives the status from the code and serialises to the error shape', () => {
    for (const [code, status] of Object.entries(API_ERROR_CODES)) {
      expect(new AppError(code as keyof typeof API_ERROR_CODES, 'x').status).toBe(status);
    }
    expect(AppError.notFound('door').toJSON()).toEqual({ error: { code: 'not-found', message: 'door not found' } });
    expect(AppError.badRequest('/notAfter', 'must be after notBefore').toJSON()).toEqual({
      error: { code: 'validation-failed', message: 'must be after notBefore', details: [{ in: 'body', path: '/notAfter', message: 'must be after notBefore' }] },
    });
    expect(AppError.rateLimited(30).retryAfter).toBe(30);
    expect(AppError.forbidden().status).toBe(403);
    expect(AppError.conflict().code).toBe('conflict');
  });
});

describe('route()', () => {
  it('maps the OpenAPI template to an express path and names the operation', () => {
    const r = route({
      method: 'post',
      path: '/api/v1/doors/{doorId}/pulse',
      summary: 's',
      auth: ['dispatcher'],
      params: Type.Object({ doorId: Type.String() }),
      responses: { 202: Type.Object({ ok: Type.Boolean() }) },
      handler,
    });
    expect(r.expressPath).toBe('/api/v1/doors/:doorId/pulse');
    expect(r.pathParams).toEqual(['doorId']);
    expect(r.status).toBe(202);
    expect(r.operationId).toBe('postDoorsByDoorIdPulse');
  });

  it('refuses definitions that cannot work', () => {
    const base = { method: 'get', summary: 's', auth: 'public', responses: ok, handler } as const;
    expect(() => route({ ...base, path: '/v1/x' })).toThrow(/api\/v1/);
    expect(() => route({ ...base, path: '/api/v1/x/:id' })).toThrow(/segment/);
    expect(() => route({ ...base, path: '/api/v1/x/{id}' })).toThrow(/exactly the path parameters/);
    expect(() => route({ ...base, path: '/api/v1/x/{id}', params: Type.Object({ id: Type.String(), other: Type.String() }) })).toThrow(/exactly/);
    expect(() => route({ ...base, path: '/api/v1/x', responses: {}, handler: () => Promise.resolve(new RawReply('text/plain', '')) })).toThrow(/one success status/);
    expect(() => route({ ...base, path: '/api/v1/x', responses: { 200: Type.Object({}), 201: Type.Object({}) } })).toThrow(/one success status/);
    expect(() => route({ ...base, path: '/api/v1/x', body: Type.Object({}) })).toThrow(/GET/);
    expect(() => route({ ...base, path: '/api/v1/x', auth: [] })).toThrow(/no role/);
    expect(() => route({ ...base, path: '/api/v1/x', query: Type.Object({ d: Type.String({ format: 'no-such-format' }) }) })).toThrow(/unknown format/);
    expect(() => route({ ...base, method: 'delete', path: '/api/v1/x', responses: { 204: Type.Object({}) } })).toThrow(/204/);
  });

  it('accepts a 204 route with a null response', () => {
    const r: RouteDef = route({ method: 'delete', path: '/api/v1/x/{id}', summary: 's', auth: ['admin'], params: Type.Object({ id: Type.String() }), responses: { 204: null }, handler: () => Promise.resolve() });
    expect(r.response).toBeNull();
  });
});

describe('validation', () => {
  const body = new PartValidator(
    'body',
    Type.Object({
      name: Type.String({ minLength: 1, maxLength: 10 }),
      count: Type.Integer({ minimum: 0 }),
      level: Type.Optional(Type.Integer({ default: 3 })),
      at: Type.Object({ lat: Type.Number(), lng: Type.Number() }),
      tags: Type.Optional(Type.Array(Type.Object({ id: Type.String() }))),
      loose: Type.Optional(Type.Object({ a: Type.String() }, { additionalProperties: true })),
    }),
  );

  it('closes objects without mutating the original schema', () => {
    const s = Type.Object({ a: Type.Object({ b: Type.String() }) });
    const closed = closeObjects(s);
    expect(closed.additionalProperties).toBe(false);
    expect(closed.properties.a.additionalProperties).toBe(false);
    expect(s.additionalProperties).toBeUndefined();
    expect(s.properties.a.additionalProperties).toBeUndefined();
  });

  it('accepts a valid body, filling defaults and keeping explicitly open objects open', () => {
    const r = body.run({ name: 'x', count: 1, at: { lat: 1, lng: 2 }, loose: { a: 'a', extra: 1 } });
    expect(r).toEqual({ ok: true, value: { name: 'x', count: 1, level: 3, at: { lat: 1, lng: 2 }, loose: { a: 'a', extra: 1 } } });
  });

  it('reports every failing field once, as a JSON pointer', () => {
    const r = body.run({ name: '', count: '1', at: { lat: 'n' }, tags: [{ id: 1, x: 2 }], extra: true });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.issues.map((i) => i.path).sort();
    expect(paths).toEqual(['/at/lat', '/at/lng', '/count', '/extra', '/name', '/tags/0/id', '/tags/0/x'].sort());
    expect(r.issues.every((i) => i.in === 'body' && i.message.length > 0)).toBe(true);
    expect(r.issues.find((i) => i.path === '/extra')?.message).toMatch(/unexpected/i);
    expect(r.issues.find((i) => i.path === '/at/lng')?.message).toMatch(/required/i);
  });

  it('refuses lone surrogates and control characters in values and keys', () => {
    const r = body.run({ name: 'a\ud800', count: 1, at: { lat: 1, lng: 2 }, loose: { a: 'ok\u0000', ['k\u0007']: 'v' } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path).sort()).toEqual(['/loose/a', '/loose/k\u0007', '/name']);
    // A proper surrogate pair (an emoji), tabs and newlines are text.
    expect(body.run({ name: '🚒\tx\n', count: 1, at: { lat: 1, lng: 2 } }).ok).toBe(true);
  });

  it('coerces query strings strictly', () => {
    const q = new PartValidator('query', Type.Object({ limit: Type.Optional(Type.Integer({ default: 20 })), open: Type.Optional(Type.Boolean()), id: Type.Optional(Type.Array(Type.String())) }));
    expect(q.run({ limit: '5', open: 'true', id: 'a' })).toEqual({ ok: true, value: { limit: 5, open: true, id: ['a'] } });
    expect(q.run({})).toEqual({ ok: true, value: { limit: 20 } });
    expect(q.run({ id: ['a', 'b'] })).toEqual({ ok: true, value: { limit: 20, id: ['a', 'b'] } });
    for (const bad of [{ limit: '1e3' }, { limit: '' }, { limit: '0x10' }, { open: 'yes' }, { other: '1' }]) {
      expect(q.run(bad).ok, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('route() types', () => {
  it('types the context from the schemas and the result from the success response', () => {
    const r = route({
      method: 'post',
      path: '/api/v1/units/{unitId}/tags',
      summary: 's',
      auth: ['dispatcher'],
      params: Type.Object({ unitId: Type.String() }),
      query: Type.Object({ dryRun: Type.Optional(Type.Boolean()) }),
      body: Type.Object({ uid: Type.String(), label: Type.Optional(Type.String()) }),
      responses: { 201: Type.Object({ id: Type.String(), unitId: Type.String() }) },
      handler: ({ params, query, body, principal }) => {
        const unit: string = params.unitId;
        const dry: boolean | undefined = query.dryRun;
        const uid: string = body.uid;
        const role: string = principal.role; // not optional on a protected route
        void [dry, uid, role];
        return Promise.resolve({ id: 't1', unitId: unit });
      },
    });
    expect(r.status).toBe(201);

    route({
      method: 'get',
      path: '/api/v1/ping',
      summary: 's',
      auth: 'public',
      responses: { 200: Type.Object({ pong: Type.Boolean() }) },
      handler: ({ principal }) => {
        const none: undefined = principal; // public routes have no principal
        void none;
        return Promise.resolve({ pong: true });
      },
    });
    route({
      method: 'get',
      path: '/api/v1/ping',
      summary: 's',
      auth: 'public',
      responses: { 200: Type.Object({ pong: Type.Boolean() }) },
      // @ts-expect-error the result must match the success schema
      handler: () => Promise.resolve({ pong: 'yes' }),
    });
  });
});
