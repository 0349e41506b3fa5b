/**
 * Incidents, their grants, and "open now" (DESIGN §4 flows 1, 3, 4; issue 3 API).
 * Dispatchers (and admins) act; a responder reads the grants of its own unit; an owner reads the
 * grants on its own buildings, never a PIN.
 *
 * Every action is audited before it takes effect (issue 4): an incident opened or closed, a pulse
 * asked for here; grants through the GrantService. When the entry cannot be stored the request
 * fails with the store's error and nothing changes.
 */
import { Type, type Static } from '@sinclair/typebox';
import { newId, type AuditActor } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Grant, Incident } from '../../domain/types.js';
import { route, type Principal, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import type { AuditInput, AuditSink } from '../audit/audit-log.js';
import type { GrantService } from '../grants/grant-service.js';

const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });
const LatLng = Type.Object({ lat: Type.Number({ minimum: -90, maximum: 90 }), lng: Type.Number({ minimum: -180, maximum: 180 }) });

export const IncidentView = Type.Object({
  id: Type.String(),
  ref: Type.Optional(Type.String()),
  kind: Type.String(),
  location: LatLng,
  address: Type.Optional(Type.String()),
  status: Type.Union([Type.Literal('open'), Type.Literal('closed')]),
  buildingIds: Type.Array(Type.String()),
  openedBy: Type.String(),
  openedAt: Type.Integer(),
  closedAt: Type.Optional(Type.Integer()),
});

export const GrantView = Type.Object({
  id: Type.String(),
  incidentId: Type.String(),
  buildingId: Type.String(),
  doorIds: Type.Array(Type.String()),
  unitIds: Type.Array(Type.String()),
  notBefore: Type.Integer(),
  notAfter: Type.Integer(),
  status: Type.Union(['pending', 'active', 'expired', 'revoked'].map((s) => Type.Literal(s))),
  reason: Type.Optional(Type.String()),
  createdBy: Type.String(),
  createdAt: Type.Integer(),
  endedAt: Type.Optional(Type.Integer()),
  hasPin: Type.Boolean(),
  /** Only to a responder of a granted unit, while the grant lives. */
  pin: Type.Optional(Type.String()),
  deliveries: Type.Array(
    Type.Object({
      controllerId: Type.String(),
      version: Type.Integer(),
      state: Type.Union([Type.Literal('pending'), Type.Literal('delivered')]),
      deliveredAt: Type.Optional(Type.Integer()),
    }),
  ),
});
export type GrantView = Static<typeof GrantView>;

/** A grant as a caller may see it: the PIN only for a responder of a granted unit. */
export function grantView(g: Grant, viewer?: Principal): GrantView {
  const { pin, ...rest } = g;
  const showPin = pin !== undefined && viewer?.role === 'responder' && viewer.unitId !== undefined && g.unitIds.includes(viewer.unitId);
  return { ...rest, hasPin: pin !== undefined, ...(showPin ? { pin } : {}) };
}

export interface IncidentRoutesDeps {
  store: StorePort;
  grants: GrantService;
  /** Publishes "open now" to a door's controller; returns the command id. */
  pulse: (controllerId: string, door: string, seconds: number) => Promise<string>;
  /** Real-time and audit hooks (wired by the composition root). */
  onIncident?: (i: Incident) => void;
  onGrant?: (g: Grant) => void;
  /** The audit trail: incident.opened/closed, door.pulse.requested. Default: no auditing. */
  audit?: AuditSink;
  now?: () => number;
}

const DISPATCH = ['admin', 'dispatcher'] as const;

export function incidentRoutes(d: IncidentRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  const notifyGrant = (g: Grant) => d.onGrant?.(g);
  const audit = async (input: AuditInput): Promise<void> => {
    if (d.audit) await d.audit.record(input);
  };
  const userOf = (p: Principal): AuditActor => ({ kind: 'user', id: p.userId });

  async function visibleGrant(id: string, p: Principal): Promise<Grant> {
    const g = await d.store.get('grants', id);
    if (!g) throw AppError.notFound('grant');
    if (p.role === 'admin' || p.role === 'dispatcher') return g;
    if (p.role === 'responder' && p.unitId !== undefined && g.unitIds.includes(p.unitId)) return g;
    if (p.role === 'owner') {
      const b = await d.store.get('buildings', g.buildingId);
      if (b && b.orgId === p.orgId) return g;
    }
    // Not 403: whether a grant exists is itself not for everyone to learn.
    throw AppError.notFound('grant');
  }

  return [
    route({
      method: 'post',
      path: '/api/v1/incidents',
      summary: 'Open an incident',
      tags: ['incidents'],
      auth: DISPATCH,
      body: Type.Object({
        ref: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        kind: Type.String({ minLength: 1, maxLength: 64 }),
        location: LatLng,
        address: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
      }),
      responses: { 201: IncidentView },
      handler: async ({ body, principal }) => {
        const t = now();
        const incident: Incident = {
          id: `inc-${newId(t)}`,
          ...(body.ref !== undefined ? { ref: body.ref } : {}),
          kind: body.kind,
          location: body.location,
          ...(body.address !== undefined ? { address: body.address } : {}),
          status: 'open',
          buildingIds: [],
          openedBy: principal.userId,
          openedAt: t,
        };
        await audit({
          type: 'incident.opened',
          actor: userOf(principal),
          incidentId: incident.id,
          data: { kind: incident.kind, ...(incident.ref !== undefined ? { ref: incident.ref } : {}), ...(incident.address !== undefined ? { address: incident.address } : {}), location: incident.location },
          dedupe: `opened:${incident.id}`,
        });
        await d.store.insert('incidents', incident);
        d.onIncident?.(incident);
        return incident;
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/incidents',
      summary: 'List incidents',
      tags: ['incidents'],
      auth: DISPATCH,
      query: Type.Object({ status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('closed')])) }),
      responses: { 200: Type.Object({ items: Type.Array(IncidentView) }) },
      handler: async ({ query }) => {
        const items = query.status ? await listAll(d.store, 'incidents', { field: 'status', value: query.status }) : await d.store.list('incidents', { limit: 1000 });
        return { items: items.sort((a, b) => b.openedAt - a.openedAt) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/incidents/{id}',
      summary: 'An incident and its grants',
      tags: ['incidents'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      responses: { 200: Type.Object({ incident: IncidentView, grants: Type.Array(GrantView) }) },
      handler: async ({ params, principal }) => {
        const incident = await d.store.get('incidents', params.id);
        if (!incident) throw AppError.notFound('incident');
        const grants = await listAll(d.store, 'grants', { field: 'incidentId', value: incident.id });
        return { incident, grants: grants.map((g) => grantView(g, principal)) };
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/incidents/{id}/close',
      summary: 'Close an incident: every grant of it is revoked at once',
      tags: ['incidents'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      responses: { 200: IncidentView },
      errors: ['conflict'],
      handler: async ({ params, principal }) => {
        const cur = await d.store.get('incidents', params.id);
        if (!cur) throw AppError.notFound('incident');
        if (cur.status === 'closed') throw AppError.conflict('the incident is already closed');
        await audit({ type: 'incident.closed', actor: userOf(principal), incidentId: cur.id, data: { buildingIds: cur.buildingIds }, dedupe: `closed:${cur.id}` });
        const closed = await d.store.update('incidents', params.id, (i) => ({ ...i, status: 'closed', closedAt: now() }));
        for (const g of await d.grants.revokeIncident(params.id, userOf(principal))) notifyGrant(g);
        if (!closed) throw AppError.notFound('incident');
        d.onIncident?.(closed);
        return closed;
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/incidents/{id}/grants',
      summary: 'Grant units access to a route of doors in a building',
      description: 'Checks the building policy, stores the grant and sends each controller touched its new set. The PIN, when asked for, is in this answer only.',
      tags: ['grants'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      body: Type.Object({
        buildingId: Id,
        doorIds: Type.Array(Id, { minItems: 1, maxItems: 64, uniqueItems: true }),
        unitIds: Type.Array(Id, { minItems: 1, maxItems: 32, uniqueItems: true }),
        pin: Type.Optional(Type.Boolean()),
        minutes: Type.Integer({ minimum: 1, maximum: 24 * 60 }),
      }),
      responses: { 201: Type.Object({ grant: GrantView, pin: Type.Optional(Type.String()) }) },
      errors: ['not-found', 'conflict', 'policy-violation'],
      handler: async ({ params, body, principal }) => {
        const { grant, pin } = await d.grants.create(
          { incidentId: params.id, buildingId: body.buildingId, doorIds: body.doorIds, unitIds: body.unitIds, pin: body.pin ?? false, durationMs: body.minutes * 60_000 },
          { userId: principal.userId },
        );
        notifyGrant(grant);
        return { grant: grantView(grant), ...(pin !== undefined ? { pin } : {}) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/grants/{id}',
      summary: 'A grant with its delivery state per controller',
      tags: ['grants'],
      auth: ['admin', 'dispatcher', 'responder', 'owner'],
      params: Type.Object({ id: Id }),
      responses: { 200: GrantView },
      handler: async ({ params, principal }) => grantView(await visibleGrant(params.id, principal), principal),
    }),
    route({
      method: 'post',
      path: '/api/v1/grants/{id}/extend',
      summary: 'Move a live grant\'s end later (within the building policy, counted from now)',
      tags: ['grants'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      body: Type.Object({ minutes: Type.Integer({ minimum: 1, maximum: 24 * 60 }) }),
      responses: { 200: GrantView },
      errors: ['not-found', 'conflict', 'policy-violation'],
      handler: async ({ params, body, principal }) => {
        const g = await d.grants.extend(params.id, body.minutes * 60_000, userOf(principal));
        notifyGrant(g);
        return grantView(g);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/grants/{id}/revoke',
      summary: 'End a grant now',
      tags: ['grants'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      responses: { 200: GrantView },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, principal }) => {
        const g = await d.grants.revoke(params.id, 'revoked', userOf(principal));
        notifyGrant(g);
        return grantView(g);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/doors/{id}/pulse',
      summary: 'Open a door now for a few seconds (crew without tag or PIN)',
      tags: ['doors'],
      auth: DISPATCH,
      params: Type.Object({ id: Id }),
      body: Type.Object({ seconds: Type.Integer({ minimum: 1, maximum: 30 }), incidentId: Id }),
      responses: { 202: Type.Object({ commandId: Type.String() }) },
      errors: ['not-found', 'conflict', 'policy-violation'],
      handler: async ({ params, body, principal }) => {
        const door = await d.store.get('doors', params.id);
        if (!door) throw AppError.notFound('door');
        const incident = await d.store.get('incidents', body.incidentId);
        if (!incident) throw AppError.notFound('incident');
        if (incident.status !== 'open') throw AppError.conflict('the incident is closed');
        const building = await d.store.get('buildings', door.buildingId);
        if (!building?.policy.enabled || !door.emergency) throw AppError.policy('this door is not open to emergency access');
        // Before the command: a door never opens without its entry in the trail.
        await audit({
          type: 'door.pulse.requested',
          actor: userOf(principal),
          buildingId: door.buildingId,
          incidentId: incident.id,
          doorId: door.id,
          controllerId: door.controllerId,
          data: { seconds: body.seconds, door: door.ref },
        });
        return { commandId: await d.pulse(door.controllerId, door.ref, body.seconds) };
      },
    }),
  ];
}
