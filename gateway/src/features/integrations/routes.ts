/**
 * CAD integrations (issue 8): admins create machine clients with an API key (shown once) and a
 * webhook; a CAD opens incidents at the caller's position over REST — our own body or a NENA EIDO
 * document (./eido.ts) — idempotently by its own incident id, and reads back the incidents it
 * opened. An API key opens only the `integration` routes its scopes allow: every other route
 * answers 403 `forbidden` (the HTTP layer's role check), a revoked key 401.
 */
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { newId, type Logger } from '@smart-passage/protocol';
import type { Incident } from '../../domain/types.js';
import { AppError } from '../../errors.js';
import { route, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import type { AuditSink } from '../audit/audit-log.js';
import { GrantView, grantView, IncidentView } from '../incidents/routes.js';
import { checkWebhookUrl, newWebhookSecret } from '../webhooks/signing.js';
import { DeliveryView, deliveriesOf } from '../webhooks/routes.js';
import { INTEGRATION_SCOPES, type CadLink, type Integration } from '../webhooks/types.js';
import { deliveryView, type WebhookService } from '../webhooks/webhook-service.js';
import { hashApiKey, keyHint, newApiKey, requireScope } from './api-keys.js';
import { EidoError, fromEido, isEido, type CadIncidentInput } from './eido.js';

export interface IntegrationRoutesDeps {
  store: StorePort;
  audit: AuditSink;
  webhooks: WebhookService;
  logger: Logger;
  /** A new incident, for the dispatchers' live view (the socket `incident` event). */
  onIncident: (i: Incident) => void;
  now?: () => number;
}

const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });
const LatLng = Type.Object({ lat: Type.Number({ minimum: -90, maximum: 90 }), lng: Type.Number({ minimum: -180, maximum: 180 }) });
const Scope = Type.Union(INTEGRATION_SCOPES.map((s) => Type.Literal(s)));

export const IntegrationView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    kind: Type.Literal('cad'),
    scopes: Type.Array(Scope),
    keyHint: Type.String(),
    webhookUrl: Type.Optional(Type.String()),
    createdAt: Type.Integer(),
    createdBy: Type.String(),
    revokedAt: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);

const integrationView = (i: Integration) => ({
  id: i.id,
  name: i.name,
  kind: i.kind,
  scopes: [...i.scopes],
  keyHint: i.keyHint,
  ...(i.webhookUrl !== undefined ? { webhookUrl: i.webhookUrl } : {}),
  createdAt: i.createdAt,
  createdBy: i.createdBy,
  ...(i.revokedAt !== undefined ? { revokedAt: i.revokedAt } : {}),
});

/** Our own body: the incident at the caller's position, keyed by the CAD's incident id. */
const CadBody = Type.Object(
  {
    cadId: Type.String({ minLength: 1, maxLength: 64, description: "The CAD's incident id: a repeat with the same id returns the incident already opened" }),
    kind: Type.String({ minLength: 1, maxLength: 64 }),
    location: LatLng,
    address: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    note: Type.Optional(Type.String({ maxLength: 1000, description: 'Caller information and other free text; kept with the link, not in the audit trail' })),
  },
  { additionalProperties: false, title: 'CadIncident' },
);
/** A NENA EIDO document (JSON); only the parts gateway/docs/CAD.md lists are read. */
const EidoBody = Type.Object(
  { incidentComponent: Type.Union([Type.Array(Type.Object({}, { additionalProperties: true }), { minItems: 1 }), Type.Object({}, { additionalProperties: true })]) },
  { additionalProperties: true, title: 'EidoDocument' },
);

const CadAnswer = Type.Object({ incident: IncidentView, created: Type.Boolean(), note: Type.Optional(Type.String()) });

const linkId = (integrationId: string, externalId: string) => `cad:${integrationId}:${createHash('sha256').update(externalId).digest('hex').slice(0, 40)}`;

export function integrationRoutes(d: IntegrationRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  const { store } = d;

  /**
   * Open (or find) the incident of `input`. The link (CAD id → our incident id) is written first:
   * of two racing requests one inserts it and both then complete the same incident, each step
   * idempotent (the audit entry by its dedupe key, the incident by its id).
   */
  async function openFromCad(integrationId: string, input: CadIncidentInput): Promise<{ incident: Incident; created: boolean; note?: string }> {
    const t = now();
    const id = linkId(integrationId, input.externalId);
    let link = await store.get('cadLinks', id);
    if (!link) {
      const fresh: CadLink = { id, integrationId, externalId: input.externalId, incidentId: `inc-${newId(t)}`, ...(input.note !== undefined ? { note: input.note } : {}), createdAt: t };
      try {
        await store.insert('cadLinks', fresh);
        link = fresh;
      } catch (err) {
        if (!(err instanceof Error && err.name === 'StoreConflictError')) throw err;
        link = await store.get('cadLinks', id);
        if (!link) throw AppError.conflict('the incident is being opened; try again');
      }
    }
    const existing = await store.get('incidents', link.incidentId);
    const note = link.note !== undefined ? { note: link.note } : {};
    if (existing) return { incident: existing, created: false, ...note };
    const incident: Incident = {
      id: link.incidentId,
      ref: input.externalId,
      kind: input.kind,
      location: input.location,
      ...(input.address !== undefined ? { address: input.address } : {}),
      status: 'open',
      buildingIds: [],
      openedBy: integrationId,
      openedAt: t,
    };
    await d.audit.record({
      type: 'incident.opened',
      actor: { kind: 'integration', id: integrationId },
      incidentId: incident.id,
      data: {
        kind: incident.kind,
        ref: input.externalId,
        ...(incident.address !== undefined ? { address: incident.address } : {}),
        location: incident.location,
        via: 'cad',
        ...(input.reportedAt !== undefined ? { reportedAt: input.reportedAt } : {}),
      },
      dedupe: `opened:${incident.id}`,
    });
    try {
      await store.insert('incidents', incident);
    } catch (err) {
      if (!(err instanceof Error && err.name === 'StoreConflictError')) throw err;
      const other = await store.get('incidents', incident.id);
      if (other) return { incident: other, created: false, ...note };
      throw err;
    }
    d.onIncident(incident);
    return { incident, created: true, ...note };
  }

  return [
    route({
      method: 'post',
      path: '/api/v1/integrations',
      summary: 'Create an integration (a CAD): its API key and webhook secret are in this answer only',
      tags: ['integrations'],
      auth: ['admin'],
      body: Type.Object({
        name: Type.String({ minLength: 1, maxLength: 120 }),
        kind: Type.Literal('cad'),
        scopes: Type.Optional(Type.Array(Scope, { minItems: 1, uniqueItems: true })),
        webhookUrl: Type.Optional(Type.String({ minLength: 8, maxLength: 2000 })),
      }),
      responses: { 201: Type.Object({ integration: IntegrationView, apiKey: Type.String(), webhookSecret: Type.String() }) },
      handler: async ({ body, principal, log, setHeader }) => {
        const webhookUrl = body.webhookUrl !== undefined ? checkWebhookUrl(body.webhookUrl, d.webhooks.allowHttp, '/webhookUrl') : undefined;
        const t = now();
        const apiKey = newApiKey();
        const webhookSecret = newWebhookSecret();
        const i: Integration = {
          id: `int-${newId(t)}`,
          name: body.name.normalize('NFC'),
          kind: 'cad',
          scopes: body.scopes ?? [...INTEGRATION_SCOPES],
          keyHash: hashApiKey(apiKey),
          keyHint: keyHint(apiKey),
          ...(webhookUrl !== undefined ? { webhookUrl } : {}),
          webhookSecret,
          createdAt: t,
          createdBy: principal.userId,
        };
        await store.insert('integrations', i);
        log.info('integration created', { integration: i.id, scopes: i.scopes.join(' '), by: principal.userId });
        setHeader('Location', `/api/v1/integrations/${i.id}`);
        return { integration: integrationView(i), apiKey, webhookSecret };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/integrations',
      summary: 'List integrations (never their keys)',
      tags: ['integrations'],
      auth: ['admin'],
      responses: { 200: Type.Object({ items: Type.Array(IntegrationView) }) },
      handler: async () => ({ items: (await store.list('integrations', { limit: 1000 })).map(integrationView) }),
    }),
    route({
      method: 'post',
      path: '/api/v1/integrations/{id}/revoke',
      summary: "Revoke an integration's API key at once (its webhooks stop too)",
      tags: ['integrations'],
      auth: ['admin'],
      params: Type.Object({ id: Id }),
      responses: { 200: IntegrationView },
      errors: ['not-found'],
      handler: async ({ params, principal, log }) => {
        const t = now();
        const i = await store.update('integrations', params.id, (cur) => (cur.revokedAt === undefined ? { ...cur, revokedAt: t } : undefined));
        if (!i) throw AppError.notFound('integration');
        log.info('integration revoked', { integration: i.id, by: principal.userId });
        return integrationView(i);
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/integrations/{id}/deliveries',
      summary: "An integration's webhook delivery log, newest first",
      tags: ['integrations'],
      auth: ['admin'],
      params: Type.Object({ id: Id }),
      query: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
      responses: { 200: Type.Object({ items: Type.Array(DeliveryView) }) },
      errors: ['not-found'],
      handler: async ({ params, query }) => {
        if (!(await store.get('integrations', params.id))) throw AppError.notFound('integration');
        return { items: (await deliveriesOf(store, `int:${params.id}`, query.limit)).map(deliveryView) };
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/cad/incidents',
      summary: "Open an incident from a CAD at the caller's position (idempotent by the CAD's incident id)",
      description:
        'Takes our own body (`cadId`, `kind`, `location`, …) or a NENA EIDO JSON document (gateway/docs/CAD.md lists the fields read). A repeat with the same CAD id answers the incident already opened, with `created: false`. Needs the scope `incidents:write`.',
      tags: ['cad'],
      auth: ['integration'],
      body: Type.Union([CadBody, EidoBody]),
      responses: { 200: CadAnswer },
      errors: ['forbidden', 'conflict'],
      handler: async ({ body, principal }) => {
        const me = requireScope(principal, 'incidents:write');
        let input: CadIncidentInput;
        if (isEido(body)) {
          try {
            input = fromEido(body);
          } catch (err) {
            if (err instanceof EidoError) throw AppError.badRequest(err.path, err.message);
            throw err;
          }
        } else {
          const b = body as { cadId: string; kind: string; location: { lat: number; lng: number }; address?: string; note?: string };
          input = { externalId: b.cadId, kind: b.kind, location: b.location, ...(b.address !== undefined ? { address: b.address } : {}), ...(b.note !== undefined ? { note: b.note } : {}) };
        }
        return openFromCad(me.id, input);
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/cad/incidents/{id}',
      summary: 'An incident this integration opened, with its grants (never a PIN)',
      tags: ['cad'],
      auth: ['integration'],
      params: Type.Object({ id: Id }),
      responses: { 200: Type.Object({ incident: IncidentView, grants: Type.Array(GrantView), note: Type.Optional(Type.String()) }) },
      errors: ['forbidden', 'not-found'],
      handler: async ({ params, principal }) => {
        const me = requireScope(principal, 'incidents:read');
        const link = (await listAll(store, 'cadLinks', { field: 'incidentId', value: params.id })).find((l) => l.integrationId === me.id);
        const incident = link ? await store.get('incidents', params.id) : undefined;
        if (!link || !incident) throw AppError.notFound('incident');
        const grants = await listAll(store, 'grants', { field: 'incidentId', value: incident.id });
        return { incident, grants: grants.map((g) => grantView(g)), ...(link.note !== undefined ? { note: link.note } : {}) };
      },
    }),
  ];
}
