/**
 * The gateway's domain model (DESIGN §3). Plain data: what the store keeps and the API returns
 * (minus secrets). Ids are strings chosen by the gateway (ULIDs) unless a caller supplies one.
 */

export type Role = 'admin' | 'dispatcher' | 'responder' | 'owner';
export const ROLES: readonly Role[] = ['admin', 'dispatcher', 'responder', 'owner'];

export interface LatLng {
  lat: number;
  lng: number;
}

/** A property owner, a dispatch agency's organisation, or the operator itself. */
export interface Organisation {
  id: string;
  name: string;
  kind: 'owner' | 'agency' | 'operator';
  createdAt: number;
}

export interface User {
  id: string;
  username: string;
  displayName: string;
  role: Role;
  /** The organisation an owner (or a dispatcher) belongs to. */
  orgId?: string;
  /** The unit a responder rides with. */
  unitId?: string;
  /** scrypt hash, `scrypt$N$r$p$salt$hash` (base64url). Never returned by the API. */
  passwordHash: string;
  disabled: boolean;
  createdAt: number;
}

export interface EmergencyPolicy {
  enabled: boolean;
  /** Longest grant a dispatcher may issue, minutes. */
  maxMinutes: number;
  /** Agencies whose units may be granted; empty = every agency. */
  allowedAgencyIds: string[];
  /** Doors the owner allows for emergency access; empty = every door with `emergency: true`. */
  doorIds: string[];
}

export interface Building {
  id: string;
  orgId: string;
  name: string;
  address: string;
  location: LatLng;
  policy: EmergencyPolicy;
  createdAt: number;
  updatedAt: number;
}

export type DoorKind = 'entrance' | 'stairwell' | 'floor' | 'elevator' | 'garage' | 'gate' | 'apartment';

export interface Door {
  id: string;
  buildingId: string;
  name: string;
  kind: DoorKind;
  floor?: number;
  location?: LatLng;
  /** The order a crew passes the doors on the default route (1 = street door). */
  routeOrder: number;
  controllerId: string;
  /** The controller's local name for the door (PROTOCOL DoorRef). */
  ref: string;
  pulseSeconds: number;
  /** Part of the emergency route. */
  emergency: boolean;
}

/** A registered controller: identity and desired state, kept in the store. */
export interface Controller {
  id: string;
  buildingId: string;
  vendor: string;
  /** base64url raw Ed25519 public key and the kid the controller signs under. */
  publicKey: string;
  controllerKid: string;
  /** scrypt hash of its MQTT password. */
  mqttPasswordHash: string;
  /** base64url 32-byte secret for offline codes (DESIGN §5.7). Never returned after provisioning. */
  offlineSecret: string;
  createdAt: number;
}

/** What the gateway knows of a controller right now (DESIGN §5.3), from births, wills and replies. */
export interface ControllerLive {
  id: string;
  online: boolean;
  boot?: string;
  fw?: string;
  appliedVersion: number;
  /** The controller's highest accepted gateway seq, from its last birth. */
  lastSeq: number;
  clockSkewMs?: number;
  clockSafe: boolean;
  lastSeen?: number;
  doors: { ref: string; locked: boolean; open: boolean }[];
}

export type AgencyKind = 'fire' | 'ambulance' | 'police' | 'rescue';

export interface Agency {
  id: string;
  name: string;
  kind: AgencyKind;
  orgId?: string;
}

export interface Unit {
  id: string;
  agencyId: string;
  /** Call sign, e.g. `RTJ 2310`. */
  callSign: string;
}

export type TagStatus = 'active' | 'blocked' | 'lost';

export interface Tag {
  id: string;
  /** Upper-case hex (PROTOCOL TagUid). */
  uid: string;
  label: string;
  unitId: string;
  status: TagStatus;
}

export interface Incident {
  id: string;
  /** CAD number, if the incident came from one. */
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

/** Per controller: which desired version carries the grant, and whether the controller applied it. */
export interface Delivery {
  controllerId: string;
  /** The first desired version that includes this grant's current form. */
  version: number;
  state: 'pending' | 'delivered';
  deliveredAt?: number;
}

export interface Grant {
  id: string;
  incidentId: string;
  buildingId: string;
  doorIds: string[];
  unitIds: string[];
  /** The incident PIN, kept only while the grant lives (DESIGN §7). */
  pin?: string;
  notBefore: number;
  notAfter: number;
  status: GrantStatus;
  reason?: string;
  createdBy: string;
  createdAt: number;
  endedAt?: number;
  deliveries: Delivery[];
  /**
   * A readiness drill's test grant (issue 8, DESIGN §9): `incidentId` is the drill id (no incident
   * exists), `unitIds` is empty and the one credential is this tag uid, which nobody carries. Never
   * shown as an emergency (left out of snapshots and grant events).
   */
  drill?: { tagUid: string };
}

/** Issue 8 (DESIGN §9): one door's part in a drill. */
export interface DrillDoorResult {
  doorId: string;
  doorName: string;
  controllerId: string;
  /** The controller said it would grant the drill tag while the test grant was live. */
  granted?: boolean;
  /** The controller said it would deny the drill tag after the revoke applied. */
  deniedAfter?: boolean;
  ok: boolean;
  /** Why not, when `ok` is false: `controller offline`, `not delivered`, `no reply`, `refused: <reason>`, … */
  reason?: string;
}

/**
 * A readiness drill (DESIGN §9): a test grant to a tag nobody carries, checked on every route
 * door's controller with `access.check` (PROTOCOL §7.5: nothing unlocks), then revoked and
 * checked again. `running` until it ends; a gateway restarted mid-drill fails it and revokes.
 */
export interface Drill {
  id: string;
  buildingId: string;
  status: 'running' | 'passed' | 'failed';
  trigger: 'manual' | 'schedule';
  /** The user who asked for it (manual). */
  by?: string;
  startedAt: number;
  endedAt?: number;
  /** The test grant (Grant.drill set); revoked by the end of the drill. */
  grantId?: string;
  doors: DrillDoorResult[];
  /** Why it failed, one line each (empty when it passed). */
  reasons: string[];
}

/**
 * A building's drill schedule (DESIGN §9): every `everyDays` days at `hour`:00 in `timeZone`, plus
 * the last finished drill (what readiness reads). Id = the building id; made at the first drill
 * (disabled) or when someone sets the schedule.
 */
export interface DrillSchedule {
  id: string;
  enabled: boolean;
  everyDays: number;
  /** 0–23, local to `timeZone`. */
  hour: number;
  /** IANA time zone, e.g. `Europe/Stockholm`. */
  timeZone: string;
  /** When the next scheduled drill is due (ms epoch); moved on when one is claimed. */
  nextAt: number;
  updatedAt: number;
  last?: { id: string; status: 'passed' | 'failed'; at: number; reasons: string[] };
}
