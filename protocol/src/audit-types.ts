/**
 * The audit trail's pure data types (DESIGN §8, protocol/AUDIT.md), apart from the hashing and
 * signing in `audit.ts` so a browser can import them (`@smart-passage/protocol/audit-types`)
 * without pulling in `node:crypto`. No imports: keep it that way.
 *
 * @example
 *   import { AUDIT_TYPES, type AuditItem } from '@smart-passage/protocol/audit-types';
 *   const known = (t: string) => (AUDIT_TYPES as readonly string[]).includes(t);
 */

/** Every kind of entry the gateway writes (DESIGN §8, issue 4). The UI filters on these. */
export const AUDIT_TYPES = [
  'incident.opened',
  'incident.closed',
  'grant.created',
  'grant.extended',
  'grant.revoked',
  'grant.expired',
  'grant.delivered',
  'door.pulse.requested',
  'door.pulse.done',
  'door.hold.requested',
  'door.hold.done',
  'door.release.requested',
  'door.release.done',
  'offline-code.issued',
  'access.granted',
  'access.denied',
  'door.state',
  'door.forced',
  'door.held-open',
  'tamper',
  'controller.online',
  'controller.offline',
  'controller.clock-unsafe',
  'controller.events-missing',
  'controller.rejected',
  'tag.blocked',
  'auth.login',
  'auth.login-failed',
  'auth.logout',
  'security.rejected',
  'policy.changed',
  'audit.exported',
  'audit.trimmed',
  // Issue 8: readiness drills (DESIGN §9).
  'drill.started',
  'drill.passed',
  'drill.failed',
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

/** Who did it: a user (by id, with the username at the time), a controller, an API integration, or the gateway itself. */
export type AuditActor =
  | { kind: 'user'; id: string; name?: string }
  | { kind: 'controller'; id: string }
  | { kind: 'integration'; id: string }
  | { kind: 'system'; id?: string };

/** What is hashed. Optional fields are absent, never null. `at` is ms epoch, non-decreasing in a chain. */
export interface AuditEntry {
  v: 1;
  chain: string;
  seq: number;
  at: number;
  type: AuditType;
  actor: AuditActor;
  buildingId?: string;
  incidentId?: string;
  grantId?: string;
  doorId?: string;
  unitId?: string;
  tagId?: string;
  controllerId?: string;
  /** Why: a denial reason, a revoke reason, a rejection code. */
  reason?: string;
  /** Small, non-secret details (e.g. `{ minutes: 30 }`, the event's own time). Never a PIN, password or key. */
  data?: Record<string, unknown>;
}

/**
 * An entry as the API, the live feed and exports carry it: the entry plus its hash and `id`, the
 * gateway's global position (decimal, increasing in append order across chains; the live feed's
 * resume cursor). Neither `id` nor `hash` is part of what is hashed.
 */
export type AuditItem = AuditEntry & { id: string; hash: string };

export interface AuditCheckpointBody {
  v: 1;
  chain: string;
  /** How many entries the chain held: `head` is the hash of entry `size`. */
  size: number;
  head: string;
  /** When it was signed, ms epoch. */
  at: number;
  kid: string;
}
export type AuditCheckpoint = AuditCheckpointBody & { sig: string };
