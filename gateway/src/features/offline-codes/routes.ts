/**
 * Offline emergency codes for dispatchers (DESIGN §5.7, PROTOCOL §2.6, issue 8). For each door on
 * the route of an incident's live grants whose controller is offline, the gateway computes the
 * 8-digit code of the current window from the controller's offlineSecret, so the dispatcher can
 * read it to the crew: "controller offline — give the crew code NNNN NNNN for door X, valid until
 * HH:MM". A door whose controller is online gets no code: the controller refuses codes then, and
 * the gateway can open the door itself.
 *
 * Every code handed out is audited as `offline-code.issued` before it is returned — who asked,
 * door, controller, window — never the digits. One entry per (incident, user, door, window): the UI
 * re-fetches on every presence change and at each rollover, and the trail needs the first ask.
 */
import { Type, type Static } from '@sinclair/typebox';
import { offlineCode, offlineCodeValidUntil, offlineCodeWindow, OFFLINE_CODE_WINDOW_MS } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Door, Grant } from '../../domain/types.js';
import { route, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import type { AuditSink } from '../audit/audit-log.js';

const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });

export const OfflineCodeView = Type.Object({
  doorId: Type.String(),
  doorName: Type.String(),
  /** The controller's name for the door (PROTOCOL DoorRef). */
  doorRef: Type.String(),
  buildingId: Type.String(),
  controllerId: Type.String(),
  /** The grant whose route names the door (the first, when several do). */
  grantId: Type.String(),
  /** 8 digits, leading zeros kept. */
  code: Type.String({ pattern: '^[0-9]{8}$' }),
  window: Type.Integer(),
  /** ms epoch: the controller refuses the code from this instant on (PROTOCOL §2.6). */
  validUntil: Type.Integer(),
});
export type OfflineCodeView = Static<typeof OfflineCodeView>;

export const OfflineCodesResponse = Type.Object({
  items: Type.Array(OfflineCodeView),
  /** ms epoch: when the window rolls over and a fresh code (a new window) can be fetched. */
  nextWindowAt: Type.Integer(),
});

export interface OfflineCodeRoutesDeps {
  store: StorePort;
  audit: AuditSink;
  now?: () => number;
}

const live = (g: Grant, now: number) => (g.status === 'active' || g.status === 'pending') && g.notAfter > now;

export function offlineCodeRoutes(d: OfflineCodeRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  return [
    route({
      method: 'get',
      path: '/api/v1/incidents/{id}/offline-codes',
      summary: 'Offline emergency codes for the route doors whose controller is offline',
      description:
        'For every door of the incident\'s live grants whose controller is offline (PROTOCOL §2.6), the 8-digit code the controller accepts once at that door, and until when. Doors whose controller is online are left out. Each code handed out is audited as `offline-code.issued` (never the digits).',
      tags: ['incidents'],
      auth: ['admin', 'dispatcher'],
      params: Type.Object({ id: Id }),
      responses: { 200: OfflineCodesResponse },
      errors: ['not-found'],
      handler: async ({ params, principal }) => {
        const t = now();
        const window = offlineCodeWindow(t);
        const nextWindowAt = (window + 1) * OFFLINE_CODE_WINDOW_MS;
        const incident = await d.store.get('incidents', params.id);
        if (!incident) throw AppError.notFound('incident');
        if (incident.status !== 'open') return { items: [], nextWindowAt };
        const grants = (await listAll(d.store, 'grants', { field: 'incidentId', value: incident.id })).filter((g) => live(g, t)).sort((a, b) => a.createdAt - b.createdAt);
        const grantOf = new Map<string, Grant>();
        for (const g of grants) for (const id of g.doorIds) if (!grantOf.has(id)) grantOf.set(id, g);

        const items: OfflineCodeView[] = [];
        const doors = (await Promise.all([...grantOf.keys()].map((id) => d.store.get('doors', id)))).filter((x): x is Door => x !== undefined);
        doors.sort((a, b) => a.buildingId.localeCompare(b.buildingId) || a.routeOrder - b.routeOrder || a.id.localeCompare(b.id));
        const buildings = new Map<string, boolean>();
        for (const door of doors) {
          // As for "Open now": only a door the owner opens to emergency access.
          if (!buildings.has(door.buildingId)) buildings.set(door.buildingId, (await d.store.get('buildings', door.buildingId))?.policy.enabled === true);
          if (!door.emergency || !buildings.get(door.buildingId)) continue;
          const presence = await d.store.get('controllerLive', door.controllerId);
          if (presence?.online === true) continue;
          const controller = await d.store.get('controllers', door.controllerId);
          if (!controller) continue;
          const grant = grantOf.get(door.id)!;
          const validUntil = offlineCodeValidUntil(window);
          // Audited before the code leaves the gateway; the entry never holds the digits.
          await d.audit.record({
            type: 'offline-code.issued',
            actor: { kind: 'user', id: principal.userId },
            buildingId: door.buildingId,
            incidentId: incident.id,
            grantId: grant.id,
            doorId: door.id,
            controllerId: controller.id,
            data: { door: door.ref, window, validUntil },
            dedupe: `offline-code:${incident.id}:${principal.userId}:${door.id}:${window}`,
          });
          const code = offlineCode({ secret: controller.offlineSecret, ctrl: controller.id, door: door.ref, window });
          items.push({ doorId: door.id, doorName: door.name, doorRef: door.ref, buildingId: door.buildingId, controllerId: controller.id, grantId: grant.id, code, window, validUntil });
        }
        return { items, nextWindowAt };
      },
    }),
  ];
}
