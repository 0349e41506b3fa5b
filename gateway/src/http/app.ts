/**
 * The gateway's HTTP app (DESIGN §6, §7): every route goes through the same pipeline —
 * request id → access log → security headers → CORS → JSON body (size-limited) → authenticate →
 * role check → validate params/query/body → handler → JSON — and every failure through one
 * error middleware that answers `{error:{code, message, details?}}`.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { extname } from 'node:path';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { Type, type TSchema } from '@sinclair/typebox';
import type { Logger, LogFields } from '@smart-passage/protocol';
import { AppError, type FieldIssue } from '../errors.js';
import { NO_METRICS, type Metrics } from '../features/metrics/metrics.js';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { buildOpenApi } from './openapi.js';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RawReply, route, type Authenticate, type Principal, type RouteDef } from './routes.js';
import { checkCorsOrigins, checkTileHosts, cors, securityHeaders } from './security.js';

export interface Readiness {
  store: boolean;
  broker: boolean;
}

export interface HttpAppOptions {
  routes: readonly RouteDef[];
  authenticate: Authenticate;
  /** Readiness probe behind GET /api/v1/ready; a throw counts as not ready. */
  ready: () => Promise<Readiness>;
  logger: Logger;
  /** Exact browser origins allowed to call the API cross-origin (no wildcard). */
  corsOrigins: readonly string[];
  /** Largest JSON body accepted (bytes or `'64kb'`); default 64 kB. */
  bodyLimit?: string | number;
  /** Largest `text/csv` body accepted (routes with `bodyType: 'csv'`); default 1 MB. */
  csvLimit?: string | number;
  /** A built UI to serve, with index.html for any other non-API GET (SPA routing). */
  staticDir?: string;
  /** Map tile origins the UI may load images from (CSP img-src), e.g. https://tile.openstreetmap.org. */
  mapTileHosts?: readonly string[];
  /** express `trust proxy`: set when behind a TLS-terminating proxy so HSTS and req.ip are right. */
  trustProxy?: boolean | number | string;
  /** `info.version` of the OpenAPI document. */
  apiVersion?: string;
  /** A readiness probe slower than this counts as not ready; default 2000 ms. */
  readyTimeoutMs?: number;
  /**
   * Check every JSON answer against the route's response schema and answer 500 (logged) when it
   * does not match. For tests and development: with closed response schemas it catches a field
   * (a hash, a PIN) leaking into an answer.
   */
  checkResponses?: boolean;
  /** Where each request's duration goes (route template and status class only). Default: nowhere. */
  metrics?: Pick<Metrics, 'httpRequest'>;
  /**
   * GET /metrics (issue 6), outside /api/v1 and never public: it answers only a request carrying
   * `Authorization: Bearer <token>`. Absent: /metrics is 404, whatever the request carries.
   */
  metricsEndpoint?: { token: string; render: () => Promise<{ contentType: string; body: string }> };
}

interface RequestState {
  id: string;
  start: bigint;
  userId?: string;
  route?: string;
}

const states = new WeakMap<Request, RequestState>();
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function stateOf(req: Request): RequestState {
  let s = states.get(req);
  if (!s) {
    s = { id: randomUUID(), start: process.hrtime.bigint() };
    states.set(req, s);
  }
  return s;
}

function withFields(logger: Logger, extra: LogFields): Logger {
  return {
    debug: (msg, f) => logger.debug(msg, { ...extra, ...f }),
    info: (msg, f) => logger.info(msg, { ...extra, ...f }),
    warn: (msg, f) => logger.warn(msg, { ...extra, ...f }),
    error: (msg, f) => logger.error(msg, { ...extra, ...f }),
  };
}

/** The path without its query string (queries may carry tokens), capped for the log. */
function logPath(req: Request): string {
  const url = req.originalUrl;
  const q = url.indexOf('?');
  return (q === -1 ? url : url.slice(0, q)).slice(0, 256);
}

const isApi = (path: string): boolean => path === '/api' || path.startsWith('/api/');

const METRICS_PATH = '/metrics';

/** The route label of a request no API route matched: a fixed word, never the URL (cardinality). */
function routeLabel(req: Request, s: RequestState): string {
  if (s.route !== undefined) return s.route;
  if (req.path === METRICS_PATH) return METRICS_PATH;
  return isApi(req.path) ? 'unmatched' : 'static';
}

/** Bearer token check in constant time: both sides hashed first, so lengths leak nothing either. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header ?? ''); // the scheme is case-insensitive (RFC 7235 §2.1)
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}

/** True when the request carries a body (a length above zero, or a chunked stream). */
function hasBody(req: Request): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** Resolves with the probe's answer, or `false`s when it throws or takes longer than `ms`. */
async function probe(ready: HttpAppOptions['ready'], ms: number, log: Logger): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const down: Readiness = { store: false, broker: false };
  try {
    return await Promise.race([
      ready(),
      new Promise<Readiness>((resolve) => {
        timer = setTimeout(() => {
          log.warn('readiness probe timed out', { ms });
          resolve(down);
        }, ms);
      }),
    ]);
  } catch (err) {
    log.warn('readiness probe failed', { error: err instanceof Error ? err.name : 'unknown' });
    return down;
  } finally {
    clearTimeout(timer);
  }
}

function builtinRoutes(ready: HttpAppOptions['ready'], readyTimeoutMs: number, document: () => unknown): RouteDef[] {
  return [
    route({
      method: 'get',
      path: '/api/v1/health',
      summary: 'Liveness: the process answers',
      tags: ['system'],
      auth: 'public',
      responses: { 200: Type.Object({ status: Type.Literal('ok') }) },
      handler: () => Promise.resolve({ status: 'ok' as const }),
    }),
    route({
      method: 'get',
      path: '/api/v1/ready',
      summary: 'Readiness: the store and the broker answer',
      description: 'Answers 503 `unavailable` with `details: {store, broker}` when either is down.',
      tags: ['system'],
      auth: 'public',
      responses: { 200: Type.Object({ status: Type.Literal('ready'), store: Type.Boolean(), broker: Type.Boolean() }) },
      handler: async ({ log }) => {
        const r = await probe(ready, readyTimeoutMs, log);
        if (!r.store || !r.broker) throw new AppError('unavailable', 'not ready', { details: { store: r.store, broker: r.broker }, retryAfter: 5 });
        return { status: 'ready' as const, store: true, broker: true };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/openapi.json',
      summary: 'This API as an OpenAPI 3.1 document',
      tags: ['system'],
      auth: 'public',
      responses: { 200: Type.Record(Type.String(), Type.Unknown()) },
      handler: () => Promise.resolve(document() as Record<string, unknown>),
    }),
  ];
}

/** Translate anything thrown into an AppError; `internal` for whatever we do not recognise. */
function translate(err: unknown): { error: AppError; unexpected: boolean } {
  if (err instanceof AppError) return { error: err, unexpected: false };
  const name = err instanceof Error ? err.name : undefined;
  // Matched by name so this layer does not import the store (DESIGN §10: Redis down → 503).
  if (name === 'StoreUnavailableError') return { error: AppError.unavailable('storage unavailable', 5), unexpected: false };
  if (name === 'StoreConflictError') {
    const field = (err as { field?: unknown }).field;
    return { error: new AppError('conflict', 'already exists', typeof field === 'string' ? { details: { field } } : {}), unexpected: false };
  }
  // The router's decoding of a path parameter with broken percent-encoding.
  if (err instanceof URIError) return { error: AppError.badRequest('', 'malformed percent-encoding in the path', 'params'), unexpected: false };
  // body-parser and express raise http-errors with `type`/`status`.
  const e = (typeof err === 'object' && err !== null ? err : {}) as { type?: unknown; status?: unknown; expose?: unknown };
  if (e.type === 'entity.too.large') return { error: AppError.payloadTooLarge(), unexpected: false };
  if (e.type === 'entity.parse.failed') return { error: AppError.badRequest('', 'malformed JSON body'), unexpected: false };
  if (e.expose === true && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.status === 404) return { error: AppError.notFound(), unexpected: false };
    const message = e.type === 'encoding.unsupported' || e.type === 'charset.unsupported' ? 'unsupported body encoding' : 'malformed request';
    return { error: AppError.badRequest('', message, e.type === undefined ? 'params' : 'body'), unexpected: false };
  }
  return { error: AppError.internal(), unexpected: true };
}

export function createHttpApp(options: HttpAppOptions): Express {
  const { authenticate, logger, corsOrigins } = options;
  const metrics = options.metrics ?? NO_METRICS;
  const tileHosts = options.mapTileHosts ?? [];
  checkCorsOrigins(corsOrigins);
  checkTileHosts(tileHosts);

  const served: { document?: unknown } = {};
  const routes = [...builtinRoutes(options.ready, options.readyTimeoutMs ?? 2000, () => served.document), ...options.routes];
  served.document = buildOpenApi(routes, { version: options.apiVersion ?? '1.0.0' }); // throws on duplicates

  const app = express();
  app.disable('x-powered-by');
  app.set('json escape', true);
  app.set('query parser', 'simple'); // no nested `a[b]=` objects
  if (options.trustProxy !== undefined) app.set('trust proxy', options.trustProxy);

  // Request id (a proxy's, if it looks sane) and the access log: one line per request (DESIGN §7:
  // method, path without query, status, time, id; never headers, query or body).
  app.use((req, res, next) => {
    const s = stateOf(req);
    const given = req.headers['x-request-id'];
    if (typeof given === 'string' && REQUEST_ID.test(given)) s.id = given;
    res.setHeader('X-Request-Id', s.id);
    res.once('close', () => {
      const fields: LogFields = {
        method: req.method,
        path: logPath(req),
        status: res.statusCode,
        ms: Number((process.hrtime.bigint() - s.start) / 1000n) / 1000,
        requestId: s.id,
        route: s.route,
        userId: s.userId,
      };
      if (!res.writableFinished) fields['aborted'] = true;
      logger.info('http', fields);
      metrics.httpRequest({ method: req.method, route: routeLabel(req, s), status: res.statusCode, seconds: Number(process.hrtime.bigint() - s.start) / 1e9 });
    });
    next();
  });
  app.use(securityHeaders(tileHosts));
  app.use(cors(corsOrigins));
  app.use('/api', express.json({ limit: options.bodyLimit ?? '64kb', strict: true, type: ['application/json', 'application/*+json'] }));
  // Only routes declaring `bodyType: 'csv'` take it (the roster import, issue 8).
  app.use('/api', express.text({ limit: options.csvLimit ?? '1mb', type: 'text/csv' }));

  const api = express.Router({ caseSensitive: true, strict: true });
  for (const r of routes) {
    const responseCheck: TypeCheck<TSchema> | undefined = options.checkResponses && r.response ? TypeCompiler.Compile(r.response) : undefined;
    const handle = async (req: Request, res: Response): Promise<void> => {
      const s = stateOf(req);
      s.route = r.path;
      let principal: Principal | undefined;
      if (r.auth !== 'public') {
        principal = await authenticate(req);
        s.userId = principal.userId;
        if (!r.auth.includes(principal.role)) throw AppError.forbidden();
      }

      const issues: FieldIssue[] = [];
      const check = (v: RouteDef['params'], input: unknown): unknown => {
        if (!v) return undefined;
        const out = v.run(input);
        if (out.ok) return out.value;
        issues.push(...out.issues);
        return undefined;
      };
      const params = check(r.params, { ...req.params });
      const query = r.query ? check(r.query, { ...(req.query as Record<string, unknown>) }) : undefined;
      if (!r.query && Object.keys(req.query).length > 0) {
        issues.push(...Object.keys(req.query).map((k) => ({ in: 'query' as const, path: `/${k}`, message: 'Unexpected property' })));
      }
      let body: unknown;
      if (r.body && r.bodyType === 'csv') {
        if (!req.is('text/csv')) issues.push({ in: 'body', path: '', message: 'expected a CSV body (Content-Type: text/csv)' });
        else body = check(r.body, typeof req.body === 'string' ? req.body : undefined);
      } else if (r.body) {
        if (!req.is(['application/json', 'application/*+json'])) issues.push({ in: 'body', path: '', message: 'expected a JSON body (Content-Type: application/json)' });
        else body = check(r.body, req.body);
      } else if (hasBody(req)) {
        issues.push({ in: 'body', path: '', message: 'this route takes no body' });
      }
      if (issues.length > 0) throw AppError.validation(issues);

      const abort = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) abort.abort();
      });
      const result = await r.handler({
        params,
        query,
        body,
        principal,
        requestId: s.id,
        ip: req.ip ?? 'unknown',
        log: withFields(logger, { requestId: s.id }),
        setHeader: (name, value) => void res.setHeader(name, value),
        signal: abort.signal,
      });
      if (result instanceof RawReply) {
        res.status(r.status).set(result.headers).type(result.contentType);
        if (typeof result.body === 'string' || Buffer.isBuffer(result.body)) res.send(result.body);
        else {
          await pipeline(Readable.from(result.body), res).catch((err: unknown) => {
            // The client went away mid-stream: nothing to answer, nothing to log as a failure.
            if (!abort.signal.aborted) throw err;
          });
        }
      } else if (r.response === null) {
        res.status(r.status).end();
      } else {
        if (responseCheck && !responseCheck.Check(result)) {
          const first = responseCheck.Errors(result).First();
          throw new Error(`response of ${r.method.toUpperCase()} ${r.path} does not match its schema: ${first?.path ?? ''} ${first?.message ?? ''}`);
        }
        res.status(r.status).json(result);
      }
    };
    const render = r.renderError;
    api[r.method](
      r.expressPath,
      render === undefined
        ? handle
        : async (req: Request, res: Response) => {
            try {
              await handle(req, res);
            } catch (err) {
              const { error } = translate(err);
              if (res.headersSent || error.status >= 500) throw err;
              const out = render(error);
              res.status(out.status).type(out.contentType).send(out.body);
            }
          },
    );
  }
  app.use(api);
  app.use('/api', (_req, _res, next) => next(AppError.notFound('route')));

  // Prometheus scrape (issue 6). Answered here, before the UI's SPA fallback could take the path.
  const endpoint = options.metricsEndpoint;
  app.get(METRICS_PATH, (req, res, next) => {
    if (endpoint === undefined) {
      next(AppError.notFound());
      return;
    }
    if (!bearerMatches(req.headers.authorization, endpoint.token)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
      next(new AppError('unauthenticated', 'metrics need the bearer token (SP_METRICS_TOKEN)'));
      return;
    }
    endpoint.render().then(
      (out) => {
        res.status(200).setHeader('Cache-Control', 'no-store').type(out.contentType).send(out.body);
      },
      (err: unknown) => next(err),
    );
  });

  if (options.staticDir !== undefined) {
    const root = options.staticDir;
    app.use(
      express.static(root, {
        index: false,
        dotfiles: 'ignore',
        setHeaders: (res, path) => {
          // Vite fingerprints files under assets/: they never change under one name.
          if (/[\\/]assets[\\/]/.test(path)) res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
        },
      }),
    );
    // SPA fallback: client-side routes get index.html; a missing file with an extension stays 404.
    app.use((req, res, next) => {
      if ((req.method !== 'GET' && req.method !== 'HEAD') || isApi(req.path) || req.path.startsWith('/socket.io') || extname(req.path) !== '') {
        next();
        return;
      }
      res.sendFile('index.html', { root, headers: { 'Cache-Control': 'no-cache' } }, (err) => {
        if (err) next(err);
      });
    });
  }
  app.use((_req, _res, next) => next(AppError.notFound()));

  // The one error middleware (STYLE): AppError as is, store outages as 503, the rest 500 with
  // nothing of the cause in the answer, only in the log.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const s = stateOf(req);
    const { error, unexpected } = translate(err);
    if (unexpected) {
      const e = err instanceof Error ? err : new Error(String(err));
      logger.error('request failed', { requestId: s.id, route: s.route, error: e.name, message: e.message, stack: e.stack });
    } else if (error.status >= 500) {
      logger.warn('request failed', { requestId: s.id, route: s.route, code: error.code, error: err instanceof Error ? err.name : undefined });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
    if (!isApi(req.path)) res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    res.status(error.status).json(error.toJSON());
  });

  return app;
}
