/**
 * Typed route definitions (DESIGN §6). One `route({...})` value carries everything the HTTP
 * layer needs: method and path, who may call it, the TypeBox schemas of its parameters, query,
 * body and responses, and the handler. The same schemas validate requests and generate the
 * OpenAPI document, so the two cannot drift.
 *
 * @example
 * route({
 *   method: 'post', path: '/api/v1/doors/{id}/pulse', summary: 'Pulse a door open',
 *   tags: ['doors'], auth: ['admin', 'dispatcher'],
 *   params: Type.Object({ id: Type.String() }),
 *   body: Type.Object({ seconds: Type.Integer({ minimum: 1, maximum: 30 }) }),
 *   responses: { 202: Type.Object({ commandId: Type.String() }) },
 *   errors: ['not-found'],
 *   handler: async ({ params, body, principal }) => doors.pulse(params.id, body.seconds, principal),
 * });
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Static, TSchema } from '@sinclair/typebox';
import type { ApiErrorCode, Logger } from '@smart-passage/protocol';
import type { Role } from '../domain/types.js';
import type { AppError } from '../errors.js';
import { PartValidator } from './validation.js';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * A principal's kind of access: a user's role, or `integration` for a machine client with an API
 * key (issue 8). A route admits an integration only when its `auth` lists `integration`.
 */
export type PrincipalRole = Role | 'integration';

/** Who made the request, as established by the injected `authenticate` function. */
export interface Principal {
  /** The user's id; for an integration, the integration's id. */
  userId: string;
  role: PrincipalRole;
  /** Set for an integration: which one, and the scopes its key carries. */
  integration?: { id: string; scopes: readonly string[] };
  orgId?: string;
  unitId?: string;
  /** The access token's id, expiry (s) and session, so logout can revoke exactly it. */
  session?: { jti: string; exp: number; sid?: string };
}

/** What `authenticate` may look at: an express request satisfies it. */
export interface AuthRequest {
  readonly headers: IncomingHttpHeaders;
  readonly ip?: string | undefined;
}

/**
 * Resolves the caller or throws an `AppError` (`unauthenticated`, `token-expired`): the HTTP
 * layer knows nothing of tokens, so the auth feature can change without touching it.
 */
export type Authenticate = (req: AuthRequest) => Promise<Principal>;

export type RouteAuth = readonly PrincipalRole[] | 'public';

/** Success statuses a route may declare; `204` takes `null` (no body). */
export type SuccessStatus = 200 | 201 | 202 | 204;
export type Responses = { [S in SuccessStatus]?: TSchema | null };

type Infer<S> = S extends TSchema ? Static<S> : undefined;
type SuccessOf<R extends Responses> = Extract<keyof R, SuccessStatus>;
type BodyOf<R extends Responses> = { [S in SuccessOf<R>]: R[S] extends TSchema ? Static<R[S]> : undefined | void }[SuccessOf<R>];

/**
 * A non-JSON reply (CSV export, files): the escape hatch for what a JSON schema cannot say. An
 * async iterable body is streamed with backpressure (the next chunk is pulled when the socket
 * drains); if it throws midway the connection is cut, so a client never takes a partial body for
 * a whole one.
 */
export class RawReply {
  constructor(
    readonly contentType: string,
    readonly body: string | Buffer | AsyncIterable<string | Buffer>,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {}
}

/** An error answer in a route's own shape (RouteSpec.renderError). */
export interface ErrorReply {
  status: number;
  contentType: string;
  body: string;
}

interface ContextBase {
  requestId: string;
  /** The client's address (behind a proxy only with `trustProxy`): for rate limits, never logged with secrets. */
  ip: string;
  /** Carries the request id on every line. */
  log: Logger;
  /** Set a response header (`Location`, `Retry-After`, …). */
  setHeader: (name: string, value: string) => void;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export interface RouteContext<P, Q, B, A extends RouteAuth> extends ContextBase {
  params: Infer<P>;
  query: Infer<Q>;
  body: Infer<B>;
  /** Present on every non-public route (the role is already checked); undefined on public ones. */
  principal: A extends 'public' ? undefined : Principal;
}

/** The context as the app builds it, before the route's types are applied. */
export interface UntypedContext extends ContextBase {
  params: unknown;
  query: unknown;
  body: unknown;
  principal: Principal | undefined;
}

export interface RouteSpec<P extends TSchema | undefined, Q extends TSchema | undefined, B extends TSchema | undefined, R extends Responses, A extends RouteAuth> {
  method: HttpMethod;
  /** OpenAPI template under `/api/v1`, e.g. `/api/v1/doors/{id}`. */
  path: string;
  summary: string;
  description?: string;
  tags?: readonly string[];
  operationId?: string;
  /** Roles allowed to call the route (exactly these: list `admin` too where admins may), or `'public'`. */
  auth: A;
  params?: P;
  query?: Q;
  body?: B;
  /**
   * The body's media type: `json` (default), or `csv`: a `text/csv` body arrives as one string
   * (the body schema must be a string schema; the roster import, issue 8).
   */
  bodyType?: 'json' | 'csv';
  /**
   * Render this route's 4xx errors (auth, validation and the handler's own) in another shape than
   * `{error}`: SCIM's error schema (RFC 7644 §3.12). 5xx keep the common shape.
   */
  renderError?: (e: AppError) => ErrorReply;
  /** Exactly one success status with its schema (`null` for 204). */
  responses: R;
  /** Error codes the handler itself may produce, for the document (auth/validation ones are added). */
  errors?: readonly ApiErrorCode[];
  handler: (ctx: RouteContext<P, Q, B, A>) => Promise<BodyOf<R> | RawReply>;
}

/** A route as the app and the document generator see it (types erased, validators compiled). */
export interface RouteDef {
  readonly method: HttpMethod;
  readonly path: string;
  /** The express path (`/doors/:id`). */
  readonly expressPath: string;
  readonly pathParams: readonly string[];
  readonly summary: string;
  readonly description: string | undefined;
  readonly tags: readonly string[];
  readonly operationId: string;
  readonly auth: RouteAuth;
  readonly params: PartValidator | undefined;
  readonly query: PartValidator | undefined;
  readonly body: PartValidator | undefined;
  readonly bodyType: 'json' | 'csv';
  readonly renderError: ((e: AppError) => ErrorReply) | undefined;
  readonly status: SuccessStatus;
  /** The success schema, `null` for no body. */
  readonly response: TSchema | null;
  readonly errors: readonly ApiErrorCode[];
  readonly handler: (ctx: UntypedContext) => Promise<unknown>;
}

// Lower-case words, except where an outside standard names the path (SCIM's `/Users`, RFC 7644 §3.2).
const SEGMENT = /^(?:[a-z0-9][a-z0-9._-]*|Users|\{[A-Za-z][A-Za-z0-9]*\})$/;
const SUCCESS: readonly SuccessStatus[] = [200, 201, 202, 204];

function operationIdOf(method: HttpMethod, path: string): string {
  const words = path
    .replace(/^\/api\/v1\//, '')
    .split('/')
    .map((s) => (s.startsWith('{') ? `by-${s.slice(1, -1)}` : s))
    .join('-')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return [method, ...words].map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1))).join('');
}

function propertyNames(schema: TSchema): string[] {
  const props: unknown = schema['properties'];
  return typeof props === 'object' && props !== null ? Object.keys(props) : [];
}

/**
 * Define a route. Checks the definition now (path shape, path parameters matching the params
 * schema, one success status, known formats), so a mistake fails at start-up, not on a request.
 */
export function route<
  P extends TSchema | undefined = undefined,
  Q extends TSchema | undefined = undefined,
  B extends TSchema | undefined = undefined,
  R extends Responses = Responses,
  const A extends RouteAuth = RouteAuth,
>(spec: RouteSpec<P, Q, B, R, A>): RouteDef {
  const where = `${spec.method.toUpperCase()} ${spec.path}`;
  if (!spec.path.startsWith('/api/v1/')) throw new Error(`${where}: path must start with /api/v1/`);
  const segments = spec.path.slice(1).split('/');
  const bad = segments.find((s) => !SEGMENT.test(s));
  if (bad !== undefined) throw new Error(`${where}: bad path segment "${bad}"`);
  const pathParams = segments.filter((s) => s.startsWith('{')).map((s) => s.slice(1, -1));
  if (new Set(pathParams).size !== pathParams.length) throw new Error(`${where}: repeated path parameter`);
  const declared = spec.params ? propertyNames(spec.params) : [];
  if (declared.sort().join() !== [...pathParams].sort().join()) {
    throw new Error(`${where}: params schema must declare exactly the path parameters {${pathParams.join(', ')}}`);
  }
  if (spec.method === 'get' && spec.body) throw new Error(`${where}: a GET route cannot take a body`);
  if (spec.auth !== 'public' && spec.auth.length === 0) throw new Error(`${where}: auth lists no role (use 'public' or name roles)`);
  const statuses = SUCCESS.filter((s) => Object.hasOwn(spec.responses, s));
  const status = statuses[0];
  if (status === undefined || statuses.length > 1) throw new Error(`${where}: declare exactly one success status (200, 201, 202 or 204)`);
  const response = spec.responses[status] ?? null;
  if (status === 204 && response !== null) throw new Error(`${where}: 204 has no body; declare it as null`);
  if (status !== 204 && response === null) throw new Error(`${where}: status ${status} needs a response schema`);

  return {
    method: spec.method,
    path: spec.path,
    expressPath: spec.path.replace(/\{([A-Za-z0-9]+)\}/g, ':$1'),
    pathParams,
    summary: spec.summary,
    description: spec.description,
    tags: spec.tags ?? [],
    operationId: spec.operationId ?? operationIdOf(spec.method, spec.path),
    auth: spec.auth,
    params: spec.params ? new PartValidator('params', spec.params) : undefined,
    query: spec.query ? new PartValidator('query', spec.query) : undefined,
    body: spec.body ? new PartValidator('body', spec.body) : undefined,
    bodyType: spec.bodyType ?? 'json',
    renderError: spec.renderError,
    status,
    response,
    errors: spec.errors ?? [],
    // The validators above guarantee the shapes the handler's types promise.
    handler: spec.handler as unknown as RouteDef['handler'],
  };
}
