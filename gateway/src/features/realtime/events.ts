/**
 * The real-time contract (DESIGN §6): the socket.io event maps, the handshake, rooms by scope,
 * and PIN redaction. Plain types and pure functions with no socket.io import, so the dispatch UI
 * can share the maps (`Socket<ServerToClientEvents, ClientToServerEvents>`) and tests can use
 * them without a server. `adapters/realtime.ts` is the one module that speaks socket.io.
 *
 * A client connects with `auth: { token, lastAuditId? }` (never the query string: URLs end up in
 * logs), receives `snapshot` for its scope, then the audit entries after `lastAuditId`, then
 * deltas. A refused handshake is a `connect_error` whose `err.data` is a {@link ConnectErrorData}.
 * At token expiry the server sends `auth:expired` and disconnects (DESIGN §7); before that the
 * client may send `auth:refresh` with a fresh access token to stay connected.
 */
import type { ApiErrorCode } from '@smart-passage/protocol';
import type { ControllerLive, Grant, Incident, Role } from '../../domain/types.js';
import type { BuildingReadiness } from '../readiness/readiness.js';

/** Issue 8: something a dispatcher and the building's owner must see now (a failed drill). */
export interface RealtimeAlert {
  kind: 'drill-failed';
  buildingId: string;
  buildingName: string;
  drillId: string;
  reasons: string[];
  at: number;
}

/** Who is connected: the fields of a verified access token the channel needs. `exp` in seconds. */
export interface RealtimePrincipal {
  sub: string;
  role: Role;
  orgId?: string;
  unitId?: string;
  exp: number;
}

/** An audit entry as the channel carries it (protocol/AUDIT.md); `id` is the resume cursor. */
export type { AuditCheckpoint, AuditItem } from '@smart-passage/protocol';
import type { AuditCheckpoint, AuditItem } from '@smart-passage/protocol';

/** What a client gets first: the current state of everything in its scope. `at` is ms epoch. */
export interface Snapshot {
  incidents: Incident[];
  grants: Grant[];
  controllers: ControllerLive[];
  at: number;
}

/** The deltas, by event name. Grants carry `pin` only to the dispatch room. */
export interface RealtimePayloads {
  grant: Grant;
  incident: Incident;
  controller: ControllerLive;
  audit: AuditItem;
  /** A newly signed audit checkpoint (DESIGN §8 "publishes it to owners"): keep it to check later exports. */
  checkpoint: AuditCheckpoint;
  /** Issue 8: a building's readiness changed (DESIGN §9). */
  readiness: BuildingReadiness;
  /** Issue 8: a failed drill. */
  alert: RealtimeAlert;
}
export type RealtimeEvent = keyof RealtimePayloads;
export const REALTIME_EVENTS: readonly RealtimeEvent[] = ['grant', 'incident', 'controller', 'audit', 'checkpoint', 'readiness', 'alert'];

/** Why a handshake or a refresh was refused; `code` is one of the API's stable error codes. */
export interface ConnectErrorData {
  code: ApiErrorCode;
  message: string;
}

export type AuthRefreshResult = { ok: true; exp: number } | { ok: false; error: ConnectErrorData };

/** `io(url, { auth })` — what the client sends in the handshake. */
export interface HandshakeAuth {
  token: string;
  /** The last audit id the client saw; the entries after it are sent after the snapshot. */
  lastAuditId?: string;
}

export interface ServerToClientEvents {
  snapshot: (snapshot: Snapshot) => void;
  grant: (grant: Grant) => void;
  incident: (incident: Incident) => void;
  controller: (controller: ControllerLive) => void;
  audit: (entry: AuditItem) => void;
  checkpoint: (cp: AuditCheckpoint) => void;
  readiness: (r: BuildingReadiness) => void;
  alert: (a: RealtimeAlert) => void;
  /** Sent just before the server disconnects a socket whose token expired; reconnect with a fresh one. */
  'auth:expired': (reason: ConnectErrorData) => void;
}

export interface ClientToServerEvents {
  /** Extend the connection with a fresh access token of the same user (same scope). */
  'auth:refresh': (token: string, ack: (result: AuthRefreshResult) => void) => void;
}

/** Who a publish is for, besides dispatch (which gets everything). */
export interface RealtimeScope {
  /** The owner organisation of the building concerned. */
  buildingOrgId?: string;
  /** The units concerned (e.g. a grant's units). */
  unitIds?: readonly string[];
}

export const DISPATCH_ROOM = 'dispatch';
export const orgRoom = (orgId: string): string => `org:${orgId}`;
export const unitRoom = (unitId: string): string => `unit:${unitId}`;

/**
 * The room a principal joins (DESIGN §6): admin and dispatcher → dispatch; owner → its
 * organisation; responder → its unit. Undefined when the user has no scope (an owner without an
 * organisation, a responder without a unit): such a user is refused, not given an empty feed.
 */
export function roomFor(p: Pick<RealtimePrincipal, 'role' | 'orgId' | 'unitId'>): string | undefined {
  switch (p.role) {
    case 'admin':
    case 'dispatcher':
      return DISPATCH_ROOM;
    case 'owner':
      return p.orgId ? orgRoom(p.orgId) : undefined;
    case 'responder':
      return p.unitId ? unitRoom(p.unitId) : undefined;
  }
}

/** The rooms a publish goes to besides dispatch, without duplicates. */
export function scopeRooms(scope: RealtimeScope): string[] {
  const rooms = new Set<string>();
  if (scope.buildingOrgId) rooms.add(orgRoom(scope.buildingOrgId));
  for (const u of scope.unitIds ?? []) if (u) rooms.add(unitRoom(u));
  return [...rooms];
}

/** A grant as `room` may see it: the incident PIN goes to dispatch only (DESIGN §7). */
export function redactGrant(grant: Grant, room: string): Grant {
  if (room === DISPATCH_ROOM || grant.pin === undefined) return grant;
  const { pin: _pin, ...rest } = grant;
  return rest;
}

/** A payload as `room` may see it. */
export function redactFor<E extends RealtimeEvent>(event: E, payload: RealtimePayloads[E], room: string): RealtimePayloads[E] {
  return event === 'grant' ? (redactGrant(payload as Grant, room) as RealtimePayloads[E]) : payload;
}
