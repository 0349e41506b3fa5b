/**
 * The one module that speaks HTTP and socket.io to the gateway (STYLE: dispatch-ui/src/lib/api).
 * Everything else calls these methods and switches on `ApiError.code` (the API's stable codes).
 *
 * - The session (access + refresh token) lives in sessionStorage: it ends with the tab, and a
 *   page on another origin cannot read it. The access token is refreshed once on `token-expired`.
 * - Fetches take an AbortSignal so a view that goes away cancels what it asked for.
 * - The socket sends the token in the handshake body (never the URL) and the last audit id it saw,
 *   so a reconnect resumes the feed with no gap (DESIGN §6).
 */
import { io, type Socket } from 'socket.io-client';
import type { ApiErrorBody, ClientToServerEvents, OfflineCode, ServerToClientEvents, Session } from './types';

export type LiveSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const STORAGE_KEY = 'sp.session';

type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** A `text/csv` body instead of JSON (the roster import, issue 8). */
  csv?: string;
  signal?: AbortSignal;
}

function queryString(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export class Api {
  #session: Session | undefined;
  #refreshing: Promise<void> | undefined;
  readonly #listeners = new Set<(s: Session | undefined) => void>();

  constructor(
    readonly base = '',
    private readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | undefined = typeof sessionStorage === 'undefined' ? undefined : sessionStorage,
  ) {
    const saved = this.storage?.getItem(STORAGE_KEY);
    if (saved) {
      try {
        const s = JSON.parse(saved) as Session;
        if (s.refreshExpiresAt > Date.now()) this.#session = s;
      } catch {
        this.storage?.removeItem(STORAGE_KEY);
      }
    }
  }

  get session(): Session | undefined {
    return this.#session;
  }

  /** Called with the new session (or undefined at logout / when the session ends). */
  onSession(f: (s: Session | undefined) => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  #setSession(s: Session | undefined): void {
    this.#session = s;
    if (s) this.storage?.setItem(STORAGE_KEY, JSON.stringify(s));
    else this.storage?.removeItem(STORAGE_KEY);
    for (const f of this.#listeners) f(s);
  }

  async login(username: string, password: string): Promise<Session> {
    const s = await this.#fetch<Session>('POST', '/api/v1/auth/login', { body: { username, password } }, false);
    this.#setSession(s);
    return s;
  }

  async logout(): Promise<void> {
    const s = this.#session;
    this.#setSession(undefined);
    if (!s) return;
    await this.#raw('POST', '/api/v1/auth/logout', { body: { refreshToken: s.refreshToken } }, s.accessToken).catch(() => undefined);
  }

  get<T>(path: string, o: RequestOptions = {}): Promise<T> {
    return this.#fetch<T>('GET', path, o);
  }
  post<T>(path: string, body?: unknown, o: RequestOptions = {}): Promise<T> {
    return this.#fetch<T>('POST', path, { ...o, ...(body === undefined ? {} : { body }) });
  }
  put<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.#fetch<T>('PUT', path, { ...o, body });
  }
  patch<T>(path: string, body: unknown, o: RequestOptions = {}): Promise<T> {
    return this.#fetch<T>('PATCH', path, { ...o, body });
  }
  /** The offline codes of an incident's route doors whose controller is offline (audited at the gateway). */
  offlineCodes(incidentId: string, signal?: AbortSignal): Promise<{ items: OfflineCode[]; nextWindowAt: number }> {
    return this.get(`/api/v1/incidents/${encodeURIComponent(incidentId)}/offline-codes`, signal ? { signal } : {});
  }

  /** POST a CSV file's text (`text/csv`), answered with JSON. */
  postCsv<T>(path: string, csv: string, o: RequestOptions = {}): Promise<T> {
    return this.#fetch<T>('POST', path, { ...o, csv });
  }

  del(path: string, o: RequestOptions = {}): Promise<void> {
    return this.#fetch<void>('DELETE', path, o);
  }

  /** A file the API streams (an audit export): the body as a Blob and the server's file name. */
  async download(path: string, o: RequestOptions = {}): Promise<{ blob: Blob; filename: string }> {
    const res = await this.#authed('GET', path, o);
    const cd = res.headers.get('content-disposition') ?? '';
    const filename = /filename="([^"]+)"/.exec(cd)?.[1] ?? 'download';
    return { blob: await res.blob(), filename };
  }

  /**
   * The live channel. The handshake is computed on every (re)connect: the current access token and
   * the last audit id seen, so a reconnect resumes the feed after it (DESIGN §6).
   */
  connect(lastAuditId: () => string | undefined = () => undefined): LiveSocket {
    const socket: LiveSocket = io(this.base || undefined, {
      auth: (cb) => {
        const last = lastAuditId();
        cb({ token: this.#session?.accessToken ?? '', ...(last ? { lastAuditId: last } : {}) });
      },
      transports: ['websocket'],
    });
    return socket;
  }

  /** Refresh the access token (rotates the refresh token); ends the session when that fails. */
  async refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      const s = this.#session;
      if (!s) throw new ApiError(401, 'unauthenticated', 'not logged in');
      try {
        const next = await this.#fetch<Session>('POST', '/api/v1/auth/refresh', { body: { refreshToken: s.refreshToken } }, false);
        this.#setSession(next);
      } catch (err) {
        this.#setSession(undefined);
        throw err;
      }
    })().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #fetch<T>(method: string, path: string, o: RequestOptions, auth = true): Promise<T> {
    const res = auth ? await this.#authed(method, path, o) : await this.#raw(method, path, o, undefined);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  async #authed(method: string, path: string, o: RequestOptions): Promise<Response> {
    if (!this.#session) throw new ApiError(401, 'unauthenticated', 'not logged in');
    if (this.#session.accessExpiresAt - 10_000 < Date.now()) await this.refresh();
    try {
      return await this.#raw(method, path, o, this.#session?.accessToken);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'token-expired') {
        await this.refresh();
        return this.#raw(method, path, o, this.#session?.accessToken);
      }
      if (err instanceof ApiError && err.status === 401) this.#setSession(undefined);
      throw err;
    }
  }

  async #raw(method: string, path: string, o: RequestOptions, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (o.csv !== undefined) headers['content-type'] = 'text/csv';
    else if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}${queryString(o.query)}`, {
      method,
      headers,
      ...(o.csv !== undefined ? { body: o.csv } : o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (res.ok) return res;
    let body: ApiErrorBody | undefined;
    try {
      body = (await res.json()) as ApiErrorBody;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, body?.error.code ?? 'internal', body?.error.message ?? res.statusText, body?.error.details);
  }
}

/** The app's one client. */
export const api = new Api();
