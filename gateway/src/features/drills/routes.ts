/**
 * Readiness and drills over REST (DESIGN §9, issue 8):
 * - `GET /api/v1/readiness`: every building in the caller's scope with its readiness and reasons
 *   (the map's colours; kept out of `GET /api/v1/map`, which is cached for minutes). Live changes
 *   come over the socket as `readiness`.
 * - `GET /api/v1/buildings/{id}/readiness`, `…/drills` (history), `POST …/drills` (run now),
 *   `GET`/`PUT …/drill-schedule`.
 * Admin and dispatcher see every building; an owner only its organisation's (another's is 404).
 */
import { Type } from '@sinclair/typebox';
import type { Drill, DrillSchedule } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';
import { IdParams, scanAll, visibleBuilding } from '../admin/common.js';
import type { ReadinessService } from '../readiness/readiness-service.js';
import type { DrillService } from './drill-service.js';
import { isTimeZone } from './schedule.js';

const ReadinessReasonSchema = Type.Object({
  code: Type.String(),
  doorId: Type.Optional(Type.String()),
  controllerId: Type.Optional(Type.String()),
  text: Type.String(),
});
const LastDrillSchema = Type.Object({ id: Type.String(), status: Type.Union([Type.Literal('passed'), Type.Literal('failed')]), at: Type.Integer(), reasons: Type.Array(Type.String()) });
export const ReadinessSchema = Type.Object({
  buildingId: Type.String(),
  state: Type.Union([Type.Literal('ready'), Type.Literal('degraded'), Type.Literal('offline'), Type.Literal('no-access')]),
  reasons: Type.Array(ReadinessReasonSchema),
  lastDrill: Type.Optional(LastDrillSchema),
});

const DrillDoorSchema = Type.Object({
  doorId: Type.String(),
  doorName: Type.String(),
  controllerId: Type.String(),
  granted: Type.Optional(Type.Boolean()),
  deniedAfter: Type.Optional(Type.Boolean()),
  ok: Type.Boolean(),
  reason: Type.Optional(Type.String()),
});
export const DrillSchema = Type.Object({
  id: Type.String(),
  buildingId: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('passed'), Type.Literal('failed')]),
  trigger: Type.Union([Type.Literal('manual'), Type.Literal('schedule')]),
  by: Type.Optional(Type.String()),
  startedAt: Type.Integer(),
  endedAt: Type.Optional(Type.Integer()),
  grantId: Type.Optional(Type.String()),
  doors: Type.Array(DrillDoorSchema),
  reasons: Type.Array(Type.String()),
});

const ScheduleBody = Type.Object(
  {
    enabled: Type.Boolean(),
    everyDays: Type.Integer({ minimum: 1, maximum: 365, description: 'Days between drills' }),
    hour: Type.Integer({ minimum: 0, maximum: 23, description: 'Local hour of day the drill runs' }),
    timeZone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Stockholm' }),
  },
  { additionalProperties: false },
);
const ScheduleSchema = Type.Object({
  enabled: Type.Boolean(),
  everyDays: Type.Integer(),
  hour: Type.Integer(),
  timeZone: Type.String(),
  nextAt: Type.Optional(Type.Integer({ description: 'When the next scheduled drill is due (absent when disabled)' })),
});

const HistoryQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 20 })) });

export interface DrillRoutesDeps {
  store: StorePort;
  drills: DrillService;
  readiness: ReadinessService;
}

const pickDrill = (d: Drill): Drill => ({
  id: d.id,
  buildingId: d.buildingId,
  status: d.status,
  trigger: d.trigger,
  ...(d.by !== undefined ? { by: d.by } : {}),
  startedAt: d.startedAt,
  ...(d.endedAt !== undefined ? { endedAt: d.endedAt } : {}),
  ...(d.grantId !== undefined ? { grantId: d.grantId } : {}),
  doors: d.doors.map((x) => ({ ...x })),
  reasons: [...d.reasons],
});

const pickSchedule = (s: DrillSchedule | undefined) =>
  s ? { enabled: s.enabled, everyDays: s.everyDays, hour: s.hour, timeZone: s.timeZone, ...(s.enabled ? { nextAt: s.nextAt } : {}) } : { enabled: false, everyDays: 7, hour: 3, timeZone: 'UTC' };

export function drillRoutes(d: DrillRoutesDeps): RouteDef[] {
  const tags = ['readiness'];
  return [
    route({
      method: 'get',
      path: '/api/v1/readiness',
      summary: 'Readiness of every building in scope (DESIGN §9)',
      description: 'State and reasons per building, and its last drill. Admin and dispatcher: every building; an owner: its own.',
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      responses: { 200: Type.Object({ items: Type.Array(ReadinessSchema) }) },
      handler: async ({ principal }) => {
        const all = await scanAll(d.store, 'buildings');
        const mine = principal.role === 'owner' ? all.filter((b) => principal.orgId !== undefined && b.orgId === principal.orgId) : all;
        return { items: await d.readiness.many(mine) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}/readiness',
      summary: "A building's readiness (DESIGN §9)",
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: IdParams,
      responses: { 200: ReadinessSchema },
      errors: ['not-found'],
      handler: async ({ params, principal }) => {
        await visibleBuilding(d.store, params.id, principal);
        const r = await d.readiness.of(params.id);
        if (!r) throw AppError.notFound('building');
        return r;
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/buildings/{id}/drills',
      summary: 'Run a readiness drill now',
      description:
        'A test grant to a tag nobody carries on every route door, checked on each controller with access.check (nothing unlocks), then revoked and checked again. Answers when the drill ends. 409 while one runs for the building.',
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: IdParams,
      responses: { 201: DrillSchema },
      errors: ['not-found', 'conflict'],
      handler: async ({ params, principal, log }) => {
        await visibleBuilding(d.store, params.id, principal);
        const drill = await d.drills.run(params.id, { userId: principal.userId });
        log.info('drill run', { building: params.id, by: principal.userId, status: drill.status });
        return pickDrill(drill);
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}/drills',
      summary: "A building's drill history, newest first",
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: IdParams,
      query: HistoryQuery,
      responses: { 200: Type.Object({ items: Type.Array(DrillSchema) }) },
      errors: ['not-found'],
      handler: async ({ params, query, principal }) => {
        await visibleBuilding(d.store, params.id, principal);
        return { items: (await d.drills.history(params.id, query.limit ?? 20)).map(pickDrill) };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/buildings/{id}/drill-schedule',
      summary: "A building's drill schedule",
      tags,
      auth: ['admin', 'dispatcher', 'owner'],
      params: IdParams,
      responses: { 200: ScheduleSchema },
      errors: ['not-found'],
      handler: async ({ params, principal }) => {
        await visibleBuilding(d.store, params.id, principal);
        return pickSchedule(await d.store.get('drillSchedules', params.id));
      },
    }),
    route({
      method: 'put',
      path: '/api/v1/buildings/{id}/drill-schedule',
      summary: "Set a building's drill schedule",
      description: 'Every `everyDays` days at `hour`:00 in `timeZone`. For the admin and for an owner of the building.',
      tags,
      auth: ['admin', 'owner'],
      params: IdParams,
      body: ScheduleBody,
      responses: { 200: ScheduleSchema },
      errors: ['not-found'],
      handler: async ({ params, body, principal, log }) => {
        await visibleBuilding(d.store, params.id, principal);
        if (!isTimeZone(body.timeZone)) throw AppError.badRequest('/timeZone', 'not an IANA time zone this gateway knows');
        const s = await d.drills.setSchedule(params.id, body);
        log.info('drill schedule set', { building: params.id, by: principal.userId, enabled: s.enabled, everyDays: s.everyDays });
        return pickSchedule(s);
      },
    }),
  ];
}
