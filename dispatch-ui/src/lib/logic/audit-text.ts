/**
 * Audit entries as people read them (DESIGN §8; issue 5 owner log and dispatcher feed). Pure: no
 * DOM, no API; the caller passes the names it knows (doors, tags, units …) and ids stand in for
 * the rest.
 *
 * @example
 *   describeAudit(item, { doors: { 'door-1': 'Street door' }, tags: { 'tag-rtj-2310-1': 'RTJ 2310-1' } })
 *   // "12:03:41 Access granted — Street door, tag RTJ 2310-1 (unit-rtj-2310)"
 */
import { AUDIT_TYPES } from '@smart-passage/protocol/audit-types';
import type { AuditItem, AuditType } from '../api/types';

/** The kind filter of the owner log, in the order the log shows them. */
export const AUDIT_GROUP_NAMES = ['access', 'grants', 'incidents', 'doors', 'controllers', 'security'] as const;
export type AuditGroup = (typeof AUDIT_GROUP_NAMES)[number];

export const AUDIT_GROUP_LABEL: Record<AuditGroup, string> = {
  access: 'Access',
  grants: 'Grants',
  incidents: 'Incidents',
  doors: 'Doors',
  controllers: 'Controllers',
  security: 'Security',
};

/** A type's group by its first segment (`door.forced` → doors); the rest (tamper, auth, tags, policy, audit, rejections) is security. */
const GROUP_OF_PREFIX: Readonly<Record<string, AuditGroup>> = {
  access: 'access',
  grant: 'grants',
  incident: 'incidents',
  door: 'doors',
  controller: 'controllers',
  drill: 'controllers',
  'offline-code': 'doors',
};

/** The group of a type (every type has one). */
export function groupOf(type: AuditType): AuditGroup {
  return GROUP_OF_PREFIX[type.split('.', 1)[0] ?? ''] ?? 'security';
}

/** Every audit type in exactly one group, from the protocol's own list (so a new type is never left out). */
export const AUDIT_GROUPS: Readonly<Record<AuditGroup, readonly AuditType[]>> = {
  access: AUDIT_TYPES.filter((t) => groupOf(t) === 'access'),
  grants: AUDIT_TYPES.filter((t) => groupOf(t) === 'grants'),
  incidents: AUDIT_TYPES.filter((t) => groupOf(t) === 'incidents'),
  doors: AUDIT_TYPES.filter((t) => groupOf(t) === 'doors'),
  controllers: AUDIT_TYPES.filter((t) => groupOf(t) === 'controllers'),
  security: AUDIT_TYPES.filter((t) => groupOf(t) === 'security'),
};

/** The `type` query of GET /api/v1/audit for the chosen groups; undefined = every type. */
export function auditTypesParam(groups: readonly AuditGroup[]): string | undefined {
  if (groups.length === 0 || groups.length === AUDIT_GROUP_NAMES.length) return undefined;
  return groups.flatMap((g) => AUDIT_GROUPS[g]).join(',');
}

const LABEL: Record<AuditType, string> = {
  'incident.opened': 'Incident opened',
  'incident.closed': 'Incident closed',
  'grant.created': 'Access granted to units',
  'grant.extended': 'Grant extended',
  'grant.revoked': 'Grant revoked',
  'grant.expired': 'Grant expired',
  'grant.delivered': 'Grant delivered to controller',
  'door.pulse.requested': 'Door opening requested',
  'door.pulse.done': 'Door opened remotely',
  'door.hold.requested': 'Door hold requested',
  'door.hold.done': 'Door held open',
  'door.release.requested': 'Door release requested',
  'door.release.done': 'Door released',
  'offline-code.issued': 'Offline code given to dispatcher',
  'access.granted': 'Access granted',
  'access.denied': 'Access denied',
  'door.state': 'Door',
  'door.forced': 'Door forced open',
  'door.held-open': 'Door held open too long',
  tamper: 'Tamper alarm',
  'controller.online': 'Controller online',
  'controller.offline': 'Controller offline',
  'controller.clock-unsafe': 'Controller clock unsafe',
  'controller.events-missing': 'Controller events missing',
  'controller.rejected': 'Controller rejected a message',
  'tag.blocked': 'Tag blocked',
  'auth.login': 'Login',
  'auth.login-failed': 'Login failed',
  'auth.logout': 'Logout',
  'security.rejected': 'Message rejected',
  'policy.changed': 'Emergency policy changed',
  'audit.exported': 'Log exported',
  'audit.trimmed': 'Old entries trimmed',
  'drill.started': 'Readiness drill started',
  'drill.passed': 'Readiness drill passed',
  'drill.failed': 'Readiness drill failed',
};

export function auditLabel(type: AuditType): string {
  return LABEL[type] ?? type;
}

/** Names by id; a Map or a plain record. */
export type NameTable = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

export interface AuditNames {
  buildings?: NameTable;
  doors?: NameTable;
  tags?: NameTable;
  units?: NameTable;
  controllers?: NameTable;
  users?: NameTable;
  incidents?: NameTable;
}

export interface DescribeOptions {
  /** IANA zone for the time; default the browser's. */
  timeZone?: string;
}

function lookup(t: NameTable | undefined, id: string): string {
  if (!t) return id;
  const v: unknown = t instanceof Map ? (t as ReadonlyMap<string, string>).get(id) : (t as Readonly<Record<string, string>>)[id];
  return typeof v === 'string' && v !== '' ? v : id;
}

/** `HH:MM:SS`, 24-hour. */
export function auditTime(at: number, o: DescribeOptions = {}): string {
  return new Intl.DateTimeFormat('en-GB', {
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
    ...(o.timeZone !== undefined ? { timeZone: o.timeZone } : {}),
  }).format(at);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Who did it, for entries a person caused. */
function actorText(item: AuditItem, names: AuditNames): string | undefined {
  const a = item.actor;
  if (a.kind === 'user') return `by ${a.name ?? lookup(names.users, a.id)}`;
  if (a.kind === 'integration') return `by integration ${a.id}`;
  return undefined;
}

/** The details after the dash: door, tag and unit, controller, reason. */
export function auditDetails(item: AuditItem, names: AuditNames = {}): string {
  const parts: string[] = [];
  const data = item.data ?? {};
  if (item.doorId !== undefined) parts.push(lookup(names.doors, item.doorId));
  else if (str(data.door) !== undefined) parts.push(`door ${str(data.door)}`);

  if (item.type === 'door.state' && str(data.state) !== undefined) parts.push(String(data.state));

  if (item.tagId !== undefined) {
    const unit = item.unitId !== undefined ? ` (${lookup(names.units, item.unitId)})` : '';
    parts.push(`tag ${lookup(names.tags, item.tagId)}${unit}`);
  } else if (str(data.uid) !== undefined) {
    parts.push(`unknown tag ${str(data.uid)}`);
  } else if (data.credential === 'offline-code') {
    parts.push('offline code');
  } else if (data.credential === 'pin') {
    parts.push('PIN');
    if (item.unitId !== undefined) parts.push(`unit ${lookup(names.units, item.unitId)}`);
  } else if (item.unitId !== undefined) {
    parts.push(`unit ${lookup(names.units, item.unitId)}`);
  }

  if (item.type === 'grant.created' && Array.isArray(data.unitIds)) {
    const units = (data.unitIds as unknown[]).filter((u): u is string => typeof u === 'string').map((u) => lookup(names.units, u));
    if (units.length > 0) parts.push(`units ${units.join(', ')}`);
    if (Array.isArray(data.doorIds)) parts.push(`${data.doorIds.length} door${data.doorIds.length === 1 ? '' : 's'}`);
  }
  if (item.type === 'policy.changed') {
    const p = data.policy as { enabled?: unknown; maxMinutes?: unknown } | undefined;
    if (p && typeof p.enabled === 'boolean') parts.push(p.enabled ? `enabled, ${String(p.maxMinutes)} min` : 'disabled');
  }
  if (item.type === 'audit.exported' && str(data.format) !== undefined) parts.push(`${String(data.format).toUpperCase()}, ${typeof data.entries === 'number' ? data.entries : 0} entries`);
  if (item.controllerId !== undefined && (item.type.startsWith('controller.') || item.type === 'tamper' || item.type === 'security.rejected')) {
    parts.push(`controller ${lookup(names.controllers, item.controllerId)}`);
  }
  if (item.type === 'controller.events-missing' && typeof data.count === 'number') parts.push(`${data.count} missing`);
  if (item.reason !== undefined && item.type !== 'tag.blocked') parts.push(`reason: ${item.reason}`);
  const actor = actorText(item, names);
  if (actor !== undefined) parts.push(actor);
  return parts.join(', ');
}

/** One line: `HH:MM:SS Label — details`. */
export function describeAudit(item: AuditItem, names: AuditNames = {}, o: DescribeOptions = {}): string {
  const details = auditDetails(item, names);
  return `${auditTime(item.at, o)} ${auditLabel(item.type)}${details ? ` — ${details}` : ''}`;
}

/** What the owner log filters by (all optional; `from`/`to` ms epoch, inclusive). */
export interface AuditFilter {
  buildingId?: string | undefined;
  incidentId?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  groups?: readonly AuditGroup[] | undefined;
}

/** Whether a live entry belongs in a log filtered by `f` (the same rules as GET /api/v1/audit). */
export function matchesAuditFilter(item: AuditItem, f: AuditFilter): boolean {
  if (f.buildingId !== undefined && item.buildingId !== f.buildingId) return false;
  if (f.incidentId !== undefined && item.incidentId !== f.incidentId) return false;
  if (f.from !== undefined && item.at < f.from) return false;
  if (f.to !== undefined && item.at > f.to) return false;
  if (f.groups !== undefined && f.groups.length > 0 && !f.groups.includes(groupOf(item.type))) return false;
  return true;
}

/** Newest first by (at, id); `id` is decimal and increases in append order. */
export function compareNewestFirst(a: AuditItem, b: AuditItem): number {
  if (a.at !== b.at) return b.at - a.at;
  if (/^\d+$/.test(a.id) && /^\d+$/.test(b.id)) {
    const x = BigInt(a.id);
    const y = BigInt(b.id);
    return x === y ? 0 : x > y ? -1 : 1;
  }
  return a.id === b.id ? 0 : a.id > b.id ? -1 : 1;
}

/** `existing` with `incoming` added once each (by id), newest first. */
export function mergeAudit(existing: readonly AuditItem[], incoming: readonly AuditItem[]): AuditItem[] {
  const seen = new Set(existing.map((e) => e.id));
  const add = incoming.filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return true;
  });
  if (add.length === 0) return existing as AuditItem[];
  return [...existing, ...add].sort(compareNewestFirst);
}
