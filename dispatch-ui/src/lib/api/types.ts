/**
 * The gateway's REST and socket.io shapes as the UI reads them (the OpenAPI document at
 * /api/v1/openapi.json is the source; these mirror it). Audit entries and checkpoints are the
 * protocol package's own types (protocol/AUDIT.md), imported as types only: nothing of Node's
 * reaches the browser bundle.
 */
import type { AuditCheckpoint, AuditItem, AuditType } from '@smart-passage/protocol/audit-types';

export type { AuditCheckpoint, AuditItem, AuditType };

export type Role = 'admin' | 'dispatcher' | 'responder' | 'owner';

export interface LatLng {
  lat: number;
  lng: number;
}

export interface SessionUser {
  id: string;
  username: string;
  displayName: string;
  role: Role;
  orgId?: string;
  unitId?: string;
}

export interface Session {
  accessToken: string;
  accessExpiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
  user: SessionUser;
}

export interface EmergencyPolicy {
  enabled: boolean;
  maxMinutes: number;
  allowedAgencyIds: string[];
  doorIds: string[];
}

export interface Building {
  id: string;
  orgId: string;
  name: string;
  address: string;
  location: LatLng;
  policy: EmergencyPolicy;
}

export type DoorKind = 'entrance' | 'stairwell' | 'floor' | 'elevator' | 'garage' | 'gate' | 'apartment';

export interface Door {
  id: string;
  buildingId: string;
  name: string;
  kind: DoorKind;
  floor?: number;
  location?: LatLng;
  routeOrder: number;
  controllerId: string;
  ref: string;
  pulseSeconds: number;
  emergency: boolean;
}

export interface ControllerLive {
  id: string;
  online: boolean;
  boot?: string;
  fw?: string;
  appliedVersion: number;
  lastSeq: number;
  clockSkewMs?: number;
  clockSafe: boolean;
  lastSeen?: number;
  doors: { ref: string; locked: boolean; open: boolean }[];
}

export interface Agency {
  id: string;
  name: string;
  kind: 'fire' | 'ambulance' | 'police' | 'rescue';
}

export interface Unit {
  id: string;
  agencyId: string;
  callSign: string;
}

export interface Tag {
  id: string;
  uid: string;
  label: string;
  unitId: string;
  status: 'active' | 'blocked' | 'lost';
}

export interface Incident {
  id: string;
  ref?: string;
  kind: string;
  location: LatLng;
  address?: string;
  status: 'open' | 'closed';
  buildingIds: string[];
  openedBy: string;
  openedAt: number;
  closedAt?: number;
}

export type GrantStatus = 'pending' | 'active' | 'expired' | 'revoked';

export interface Delivery {
  controllerId: string;
  version: number;
  state: 'pending' | 'delivered';
  deliveredAt?: number;
}

/** A grant as the API and the socket give it; `pin` only where the caller may see it. */
export interface Grant {
  id: string;
  incidentId: string;
  buildingId: string;
  doorIds: string[];
  unitIds: string[];
  pin?: string;
  notBefore: number;
  notAfter: number;
  status: GrantStatus;
  reason?: string;
  createdBy: string;
  createdAt: number;
  endedAt?: number;
  deliveries: Delivery[];
}

/** GET /api/v1/incidents/{id}/offline-codes: a route door whose controller is offline (PROTOCOL §2.6). */
export interface OfflineCode {
  doorId: string;
  doorName: string;
  doorRef: string;
  buildingId: string;
  controllerId: string;
  grantId: string;
  /** 8 digits; read it out, never log it. */
  code: string;
  window: number;
  /** ms epoch: the controller refuses the code from then on. */
  validUntil: number;
}

/** What a socket gets first (then deltas). */
export interface Snapshot {
  incidents: Incident[];
  grants: Grant[];
  controllers: ControllerLive[];
  at: number;
}

/** `{error:{code,message,details?}}` from the API (DESIGN §6). */
export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export interface Page<T> {
  items: T[];
  next?: string;
}

/** Issue 8 (DESIGN §9): readiness as the gateway computes it (GET /api/v1/readiness, socket `readiness`). */
export type ReadinessState = 'ready' | 'degraded' | 'offline' | 'no-access';
export interface ReadinessReason {
  code: string;
  doorId?: string;
  controllerId?: string;
  text: string;
}
export interface LastDrill {
  id: string;
  status: 'passed' | 'failed';
  at: number;
  reasons: string[];
}
export interface BuildingReadiness {
  buildingId: string;
  state: ReadinessState;
  reasons: ReadinessReason[];
  lastDrill?: LastDrill;
}
export interface DrillDoorResult {
  doorId: string;
  doorName: string;
  controllerId: string;
  granted?: boolean;
  deniedAfter?: boolean;
  ok: boolean;
  reason?: string;
}
export interface Drill {
  id: string;
  buildingId: string;
  status: 'running' | 'passed' | 'failed';
  trigger: 'manual' | 'schedule';
  by?: string;
  startedAt: number;
  endedAt?: number;
  grantId?: string;
  doors: DrillDoorResult[];
  reasons: string[];
}
export interface DrillSchedule {
  enabled: boolean;
  everyDays: number;
  hour: number;
  timeZone: string;
  nextAt?: number;
}
/** Socket `alert`: a failed drill, to dispatch and the building's owner. */
export interface DrillAlert {
  kind: 'drill-failed';
  buildingId: string;
  buildingName: string;
  drillId: string;
  reasons: string[];
  at: number;
}

export interface ServerToClientEvents {
  readiness: (r: BuildingReadiness) => void;
  alert: (a: DrillAlert) => void;
  snapshot: (s: Snapshot) => void;
  grant: (g: Grant) => void;
  incident: (i: Incident) => void;
  controller: (c: ControllerLive) => void;
  audit: (a: AuditItem) => void;
  checkpoint: (cp: AuditCheckpoint) => void;
  'auth:expired': (r: { code: string; message: string }) => void;
}

export interface ClientToServerEvents {
  'auth:refresh': (token: string, ack: (r: { ok: true; exp: number } | { ok: false; error: { code: string; message: string } }) => void) => void;
}

/** GET /api/v1/me/grants (a responder's unit): what the crew needs at the door. */
export interface MyGrant {
  /** With `pin` while it lives (the responder of a granted unit may see it). */
  grant: Grant;
  incident: { id: string; kind: string; address?: string };
  building: { id: string; name: string; address: string; location: LatLng };
  /** The granted doors in route order; `canOpen` when the responder may open it from the phone. */
  doors: { id: string; name: string; kind: DoorKind; floor?: number; routeOrder: number; canOpen: boolean }[];
}

/** GET /api/v1/map: the offline base layer and the optional tile layer. */
export interface MapConfig {
  /** e.g. `https://tile.openstreetmap.org/{z}/{x}/{y}.png`; absent = offline base layer only. */
  tileUrl?: string;
  attribution?: string;
  /** GeoJSON FeatureCollection of streets and building outlines (properties.kind: 'street' | 'building' | …). */
  basemap: { type: 'FeatureCollection'; features: { type: 'Feature'; properties: Record<string, unknown>; geometry: { type: string; coordinates: unknown } }[] };
  /** Where the map opens. */
  center: LatLng;
  zoom: number;
}
