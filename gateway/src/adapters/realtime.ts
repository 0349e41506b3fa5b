/**
 * The real-time channel (DESIGN §6, §7): socket.io on the gateway's HTTP server. The only module
 * that imports socket.io; the contract (event maps, rooms, redaction) is in
 * `features/realtime/events.ts`.
 *
 * - Handshake: the access token in `auth.token` (never the query string), checked by the injected
 *   `verify`; a refusal is a `connect_error` with `err.data = {code, message}` (STYLE: socket.io
 *   auth through `next(err)` with `err.data.code`): `unauthenticated`, `token-expired`,
 *   `forbidden` (a user with no scope), `validation-failed` (a malformed `auth.lastAuditId`),
 *   `unavailable` (the store is down).
 * - Rooms: one per principal, see `roomFor`. `publish` always reaches dispatch, plus the building's
 *   owner organisation and the units given; grants lose their PIN outside dispatch.
 * - Snapshot first, then deltas: the snapshot and the resumed audit entries are read during the
 *   handshake. Deltas published meanwhile are held for that socket and sent right after them, and
 *   the socket joins its room in the same tick, so nothing published after the snapshot was read
 *   is lost. (A delta may repeat what the snapshot already shows; payloads are whole records, so
 *   applying one twice is harmless.)
 * - Expiry: each socket has a timer at its token's `exp`; it then gets `auth:expired` and is
 *   disconnected, and must reconnect with a fresh token. `auth:refresh` with a fresh token of the
 *   same user and scope moves the timer without reconnecting.
 *
 * The token is a bearer credential sent in the handshake body, not a cookie, so a page on another
 * origin cannot ride a user's session (no cross-site WebSocket hijacking); `corsOrigins` only
 * decides which origins may use the long-polling transport from a browser.
 *
 * Several instances (DESIGN §11, issue 6): with `redis` set, socket.io runs on the Redis streams
 * adapter (@socket.io/redis-streams-adapter, its own ioredis connection, stream and channels under
 * the store's key prefix). `publish` then emits to this instance's sockets and sends the delta to
 * every other instance as a server-side event; each instance emits it to its own sockets and holds
 * it for its own sockets in handshake, exactly as for a local delta. The held deltas stay per
 * instance, but they see every instance's deltas, so the snapshot-then-deltas promise holds across
 * instances:
 * - nothing is lost: a delta is published after its write is stored, so one that reaches this
 *   instance before a socket's handshake began is already in the snapshot read after it, and one
 *   that reaches it later is held (or, once the socket joined, emitted to its room);
 * - a delta published by another instance while a handshake runs may travel through Redis faster
 *   or slower than the snapshot is read, so it can show a change the snapshot shows too, or even
 *   come (held) right after a snapshot that is newer than it. That is a repeat, never a loss:
 *   grants, incidents and controllers are sent as whole records (the client keeps the last one;
 *   a held stale record is followed by the delta of the newer write, which is published after it
 *   on the same stream), and audit entries and checkpoints carry ids the client deduplicates on.
 * Without `redis` the in-memory adapter serves one instance, as before.
 */
import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import { Server, type Socket } from 'socket.io';
import type { Logger } from '@smart-passage/protocol';
import { isAppError } from '../errors.js';
import { StoreUnavailableError } from '../store/port.js';
import {
  DISPATCH_ROOM,
  redactFor,
  redactGrant,
  roomFor,
  scopeRooms,
  type AuditItem,
  type AuthRefreshResult,
  type ClientToServerEvents,
  type ConnectErrorData,
  type RealtimeEvent,
  type RealtimePayloads,
  type RealtimePrincipal,
  type RealtimeScope,
  type ServerToClientEvents,
  type Snapshot,
} from '../features/realtime/events.js';

/** Between instances (Redis adapter only): a delta to fan out locally, a user to cut off, a building changed. */
interface InterServerEvents {
  delta: (event: RealtimeEvent, payload: unknown, scope: RealtimeScope) => void;
  'disconnect-user': (sub: string) => void;
  'building-changed': (buildingId: string) => void;
}
interface SocketData {
  principal: RealtimePrincipal;
  room: string;
}
type RtServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
type RtSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface RealtimeOptions {
  /** The HTTP server the API runs on; attach after the app's request handler is on it. */
  httpServer: HttpServer;
  /** Verify an access token (TokenService.verifyAccess); throw AppError `token-expired` / `unauthenticated`. */
  verify: (token: string) => Promise<RealtimePrincipal>;
  /** Everything `principal` may see right now; the caller does the scoping. */
  snapshot: (principal: RealtimePrincipal) => Promise<Omit<Snapshot, 'at'>>;
  /** Audit entries after `lastId` in `principal`'s scope, oldest first (DESIGN §6 resume). */
  auditSince?: (principal: RealtimePrincipal, lastId: string) => Promise<AuditItem[]>;
  logger: Logger;
  /** Exact browser origins allowed cross-origin (as for the REST API). */
  corsOrigins: readonly string[];
  /** ms epoch. */
  now?: () => number;
  /** socket.io path; default `/socket.io`. */
  path?: string;
  /**
   * Several instances sharing Redis (DESIGN §11): the Redis streams adapter on its own connection,
   * its stream and channels under `prefix` (the store's key prefix). Absent: the in-memory adapter.
   */
  redis?: { url: string; prefix: string };
  /** Another instance changed a building (see `buildingChanged`): drop what is cached about it. */
  onBuildingChanged?: (buildingId: string) => void;
}

/** A socket between handshake and connection: its snapshot, and the deltas published meanwhile. */
interface Pending {
  room: string;
  ready?: { snapshot: Snapshot; audit: AuditItem[] };
  held: [RealtimeEvent, unknown][];
  overflow: boolean;
}

/** More deltas than this during one handshake: drop the socket, let it reconnect to a new snapshot. */
const MAX_HELD = 10_000;
/** setTimeout's limit (~24.8 days); longer waits are re-armed. */
const MAX_DELAY_MS = 2 ** 31 - 1;
const MAX_AUDIT_ID_CHARS = 200;
/** Clients send only tokens: keep their messages small. */
const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;

type HttpListener = (...args: unknown[]) => void;
const HTTP_EVENTS = ['request', 'upgrade', 'close', 'listening'] as const;

function errorData(code: ConnectErrorData['code'], message: string): ConnectErrorData {
  return { code, message };
}

export class Realtime {
  readonly #o: RealtimeOptions;
  readonly #now: () => number;
  #io: RtServer | undefined;
  readonly #pending = new Map<RtSocket, Pending>();
  readonly #timers = new Map<RtSocket, NodeJS.Timeout>();
  readonly #refreshing = new Set<RtSocket>();
  #httpListeners: Map<string, HttpListener[]> | undefined;
  #redis: Redis | undefined;

  constructor(o: RealtimeOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** Sockets connected now (after their snapshot). */
  get connections(): number {
    return this.#io?.of('/').sockets.size ?? 0;
  }

  /** Attach to the HTTP server and accept sockets. */
  start(): void {
    if (this.#io) return;
    const server = this.#o.httpServer;
    // engine.io takes over the server's request listeners (it forwards every non-socket.io request
    // to them); remember them so stop() can give the server back as it was.
    this.#httpListeners = new Map(HTTP_EVENTS.map((e) => [e, server.listeners(e) as HttpListener[]]));
    const io: RtServer = new Server(server, {
      path: this.#o.path ?? '/socket.io',
      serveClient: false,
      cors: { origin: [...this.#o.corsOrigins], methods: ['GET', 'POST'], credentials: false },
      maxHttpBufferSize: MAX_CLIENT_MESSAGE_BYTES,
      connectTimeout: 10_000,
    });
    const r = this.#o.redis;
    if (r !== undefined) {
      // The adapter duplicates this connection for its blocking XREAD and its pub/sub; keys and
      // channels are named under the prefix explicitly (not ioredis keyPrefix, which channels ignore).
      const redis = new Redis(r.url, { maxRetriesPerRequest: null });
      redis.on('error', (err: Error) => this.#o.logger.warn('realtime redis connection', { err: err.message }));
      this.#redis = redis;
      io.adapter(
        createAdapter(redis, {
          streamName: `${r.prefix}socket.io`,
          channelPrefix: `${r.prefix}socket.io`,
          sessionKeyPrefix: `${r.prefix}sio:session:`,
          // Short, so a stopping instance's reader ends soon after the adapter is closed.
          blockTimeInMs: 1_000,
          onlyPlaintext: true,
        }),
      );
      io.on('delta', (event, payload, scope) => this.#publishLocal(event, payload as RealtimePayloads[typeof event], scope));
      io.on('disconnect-user', (sub) => this.#disconnectLocal(sub));
      io.on('building-changed', (id) => this.#o.onBuildingChanged?.(id));
    }
    io.use((socket, next) => {
      this.#admit(socket).then(
        () => next(),
        (err: unknown) => next(this.#refusal(socket, err)),
      );
    });
    io.on('connection', (socket) => this.#connected(socket));
    this.#io = io;
    this.#o.logger.info('realtime channel started', { path: this.#o.path ?? '/socket.io' });
  }

  /** Disconnect every socket and detach from the HTTP server (which keeps running for its owner). */
  stop(): Promise<void> {
    const io = this.#io;
    if (!io) return Promise.resolve();
    this.#io = undefined;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#pending.clear();
    this.#refreshing.clear();
    io.disconnectSockets(true);
    io.engine.close();
    // io.close() would also close the HTTP server, which is not ours: close the adapter alone.
    if (this.#redis) {
      void io.of('/').adapter.close();
      this.#redis.disconnect();
      this.#redis = undefined;
    }
    const server = this.#o.httpServer;
    for (const [event, before] of this.#httpListeners ?? []) {
      for (const l of server.listeners(event) as HttpListener[]) if (!before.includes(l)) server.removeListener(event, l);
      for (const l of before) if (!(server.listeners(event) as HttpListener[]).includes(l)) server.on(event, l);
    }
    this.#httpListeners = undefined;
    this.#o.logger.info('realtime channel stopped');
    return Promise.resolve();
  }

  /**
   * Send a delta to dispatch, to the owner organisation of the building concerned, and to the units
   * concerned. The payload must be plain JSON; a grant's PIN reaches dispatch only.
   */
  publish<E extends RealtimeEvent>(event: E, payload: RealtimePayloads[E], scope: RealtimeScope = {}): void {
    const io = this.#io;
    if (!io) return;
    // Every other instance fans it out to its own sockets, handshakes included (see the header).
    if (this.#redis) io.serverSideEmit('delta', event, payload, { ...(scope.buildingOrgId !== undefined ? { buildingOrgId: scope.buildingOrgId } : {}), ...(scope.unitIds !== undefined ? { unitIds: [...scope.unitIds] } : {}) });
    this.#publishLocal(event, payload, scope);
  }

  /** A delta to this instance's sockets: those in the rooms concerned, and those in handshake. */
  #publishLocal<E extends RealtimeEvent>(event: E, payload: RealtimePayloads[E], scope: RealtimeScope): void {
    const io = this.#io;
    if (!io) return;
    const others = scopeRooms(scope);
    emit(io.local.to(DISPATCH_ROOM), event, payload);
    if (others.length > 0) emit(io.local.to(others), event, redactFor(event, payload, others[0] as string));
    if (this.#pending.size === 0) return;
    const rooms = new Set([DISPATCH_ROOM, ...others]);
    for (const p of this.#pending.values()) {
      if (!rooms.has(p.room)) continue;
      if (p.held.length >= MAX_HELD) p.overflow = true;
      // A copy: the caller may change its object before the socket is ready.
      else p.held.push([event, structuredClone(redactFor(event, payload, p.room))]);
    }
  }

  /** Cut every socket of a user now (e.g. at logout or when the account is disabled). */
  disconnectUser(sub: string): void {
    if (this.#redis) this.#io?.serverSideEmit('disconnect-user', sub);
    this.#disconnectLocal(sub);
  }

  /**
   * Tell the other instances sharing Redis that a building was created, changed or deleted here,
   * so they drop what they cache about it (the owner the fan-out scopes by, issue 7). Best effort:
   * the cache's TTL bounds what a lost message costs. Without Redis there is no one to tell.
   */
  buildingChanged(buildingId: string): void {
    if (this.#redis) this.#io?.serverSideEmit('building-changed', buildingId);
  }

  #disconnectLocal(sub: string): void {
    for (const s of this.#io?.of('/').sockets.values() ?? []) {
      if (s.data.principal.sub === sub) s.disconnect(true);
    }
  }

  /** Handshake: check the token, find the room, read the snapshot while holding deltas. */
  async #admit(socket: RtSocket): Promise<void> {
    const auth = socket.handshake.auth as Record<string, unknown>;
    const token = auth.token;
    if (typeof token !== 'string' || token === '') throw new RefusedError('unauthenticated', 'access token required in auth.token');
    const lastAuditId = auth.lastAuditId;
    if (lastAuditId !== undefined && (typeof lastAuditId !== 'string' || lastAuditId === '' || lastAuditId.length > MAX_AUDIT_ID_CHARS)) {
      throw new RefusedError('validation-failed', 'auth.lastAuditId must be an audit id');
    }
    const principal = toPrincipal(await this.#o.verify(token));
    if (principal.exp * 1000 <= this.#now()) throw new RefusedError('token-expired', 'access token expired');
    const room = roomFor(principal);
    if (room === undefined) throw new RefusedError('forbidden', 'no real-time scope for this user');

    const pending: Pending = { room, held: [], overflow: false };
    this.#pending.set(socket, pending);
    socket.conn.once('close', () => this.#pending.delete(socket));
    try {
      const [state, audit] = await Promise.all([
        this.#o.snapshot(principal),
        lastAuditId === undefined || this.#o.auditSince === undefined ? Promise.resolve([]) : this.#o.auditSince(principal, lastAuditId),
      ]);
      const snapshot: Snapshot = {
        incidents: state.incidents,
        grants: state.grants.map((g) => redactGrant(g, room)),
        controllers: state.controllers,
        at: this.#now(),
      };
      pending.ready = { snapshot, audit };
    } catch (err) {
      this.#pending.delete(socket);
      throw err;
    }
    socket.data.principal = principal;
    socket.data.room = room;
  }

  /** Connected: snapshot, resumed audit, held deltas, then live in the room, all in one tick. */
  #connected(socket: RtSocket): void {
    const pending = this.#pending.get(socket);
    this.#pending.delete(socket);
    if (pending?.ready === undefined || pending.overflow) {
      socket.disconnect(true);
      return;
    }
    socket.emit('snapshot', pending.ready.snapshot);
    for (const a of pending.ready.audit) socket.emit('audit', a);
    // An entry stored while the resume was read may be both in it and held: send it once.
    const resumed = new Set(pending.ready.audit.map((a) => a.id));
    for (const [event, payload] of pending.held) {
      if (event === 'audit' && resumed.has((payload as AuditItem).id)) continue;
      emit(socket, event, payload as RealtimePayloads[typeof event]);
    }
    // Both adapters join locally and synchronously: no delta slips in between.
    void socket.join(pending.room);
    this.#arm(socket);
    socket.on('auth:refresh', (token: unknown, ack: unknown) => {
      const reply = typeof ack === 'function' ? (ack as (r: AuthRefreshResult) => void) : () => undefined;
      void this.#refresh(socket, token).then(reply);
    });
    socket.on('disconnect', () => {
      clearTimeout(this.#timers.get(socket));
      this.#timers.delete(socket);
      this.#refreshing.delete(socket);
    });
    const p = socket.data.principal;
    this.#o.logger.debug('realtime socket connected', { userId: p.sub, role: p.role, room: pending.room });
  }

  /** Disconnect at the token's expiry (DESIGN §7). */
  #arm(socket: RtSocket): void {
    clearTimeout(this.#timers.get(socket));
    const left = socket.data.principal.exp * 1000 - this.#now();
    const timer = setTimeout(() => {
      this.#timers.delete(socket);
      if (socket.data.principal.exp * 1000 > this.#now()) {
        this.#arm(socket);
        return;
      }
      this.#o.logger.debug('realtime token expired; disconnecting', { userId: socket.data.principal.sub });
      socket.emit('auth:expired', errorData('token-expired', 'access token expired; reconnect with a fresh token'));
      socket.disconnect(true);
    }, Math.min(Math.max(left, 0), MAX_DELAY_MS));
    timer.unref();
    this.#timers.set(socket, timer);
  }

  async #refresh(socket: RtSocket, token: unknown): Promise<AuthRefreshResult> {
    if (typeof token !== 'string' || token === '') return { ok: false, error: errorData('validation-failed', 'token must be a string') };
    if (this.#refreshing.has(socket)) return { ok: false, error: errorData('rate-limited', 'a refresh is already in progress') };
    this.#refreshing.add(socket);
    try {
      const next = toPrincipal(await this.#o.verify(token));
      const current = socket.data.principal;
      if (next.exp * 1000 <= this.#now()) return { ok: false, error: errorData('token-expired', 'access token expired') };
      if (next.sub !== current.sub) return { ok: false, error: errorData('forbidden', 'the token is for another user') };
      if (roomFor(next) !== socket.data.room) return { ok: false, error: errorData('forbidden', 'the scope changed; reconnect') };
      if (!socket.connected) return { ok: false, error: errorData('unauthenticated', 'disconnected') };
      socket.data.principal = next;
      this.#arm(socket);
      return { ok: true, exp: next.exp };
    } catch (err) {
      return { ok: false, error: this.#describe(err, 'realtime refresh failed') };
    } finally {
      this.#refreshing.delete(socket);
    }
  }

  /** A handshake refusal as socket.io sends it: `connect_error` with `err.data`. */
  #refusal(socket: RtSocket, err: unknown): Error & { data: ConnectErrorData } {
    const data = this.#describe(err, 'realtime handshake failed');
    this.#o.logger.debug('realtime handshake refused', { code: data.code, address: socket.handshake.address });
    const refusal = new Error(data.message) as Error & { data: ConnectErrorData };
    refusal.data = data;
    return refusal;
  }

  /** Translate at the boundary; an unexpected error is logged and described without detail. */
  #describe(err: unknown, what: string): ConnectErrorData {
    if (err instanceof RefusedError) return err.data;
    if (isAppError(err)) return errorData(err.code, err.message);
    if (err instanceof StoreUnavailableError) {
      this.#o.logger.warn(what, { err: err.message });
      return errorData('unavailable', 'service unavailable; try again');
    }
    this.#o.logger.error(what, { err: err instanceof Error ? err.message : String(err) });
    return errorData('internal', 'internal error');
  }
}

class RefusedError extends Error {
  readonly data: ConnectErrorData;
  constructor(code: ConnectErrorData['code'], message: string) {
    super(message);
    this.data = { code, message };
  }
}

/** Only the fields the channel needs, checked: `verify` may be any token checker. */
function toPrincipal(v: RealtimePrincipal): RealtimePrincipal {
  if (typeof v.sub !== 'string' || v.sub === '' || !Number.isFinite(v.exp)) throw new RefusedError('unauthenticated', 'invalid access token');
  const p: RealtimePrincipal = { sub: v.sub, role: v.role, exp: v.exp };
  if (v.orgId !== undefined) p.orgId = v.orgId;
  if (v.unitId !== undefined) p.unitId = v.unitId;
  return p;
}

/** socket.io's typed emit cannot follow a generic event name; the payload type is tied by the map. */
function emit<E extends RealtimeEvent>(target: { emit: (...args: never[]) => unknown }, event: E, payload: RealtimePayloads[E]): void {
  (target.emit as (event: string, payload: unknown) => unknown).call(target, event, payload);
}
