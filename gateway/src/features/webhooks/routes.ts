/**
 * An owner organisation's webhook (issue 8): `/api/v1/organisations/{id}/webhook` and its delivery
 * log. The organisation's owners (role owner, their own organisation only) and admins; anyone else
 * is answered 404, as for a thing that does not exist (DESIGN §7: an owner learns nothing of
 * another organisation). The signing secret is in the answer that creates (or rotates) it, never
 * again.
 */
import { Type } from '@sinclair/typebox';
import type { Logger } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import { route, type Principal, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { checkWebhookUrl, newWebhookSecret } from './signing.js';
import type { OrgWebhook, WebhookDelivery } from './types.js';
import { deliveryView, type WebhookService } from './webhook-service.js';

export interface WebhookRoutesDeps {
  store: StorePort;
  webhooks: WebhookService;
  logger: Logger;
  now?: () => number;
}

const OrgParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', maxLength: 64 }) });
const Url = Type.String({ minLength: 8, maxLength: 2000 });

export const WebhookView = Type.Object(
  {
    orgId: Type.String(),
    url: Type.String(),
    createdAt: Type.Integer(),
    updatedAt: Type.Integer(),
    /** Only in the answer that made it. */
    secret: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const DeliveryView = Type.Object(
  {
    id: Type.String(),
    event: Type.String(),
    auditId: Type.String(),
    state: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
    attempts: Type.Array(
      Type.Object({ at: Type.Integer(), status: Type.Optional(Type.Integer()), error: Type.Optional(Type.String()), ms: Type.Integer() }, { additionalProperties: false }),
    ),
    nextAt: Type.Optional(Type.Integer()),
    createdAt: Type.Integer(),
    finishedAt: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);

const view = (w: OrgWebhook, secret?: string) => ({ orgId: w.id, url: w.url, createdAt: w.createdAt, updatedAt: w.updatedAt, ...(secret !== undefined ? { secret } : {}) });

/** Newest first, at most `limit`. */
export async function deliveriesOf(store: StorePort, target: string, limit: number): Promise<WebhookDelivery[]> {
  const all = await listAll(store, 'webhookDeliveries', { field: 'target', value: target });
  return all.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1)).slice(0, limit);
}

export function webhookRoutes(d: WebhookRoutesDeps): RouteDef[] {
  const now = d.now ?? Date.now;
  const tags = ['webhooks'];
  /** The organisation, if this caller may manage its webhook; 404 otherwise. */
  async function orgFor(id: string, p: Principal): Promise<string> {
    const mine = p.role === 'admin' || (p.role === 'owner' && p.orgId === id);
    const org = mine ? await d.store.get('organisations', id) : undefined;
    if (!org) throw AppError.notFound('organisation');
    return org.id;
  }
  return [
    route({
      method: 'get',
      path: '/api/v1/organisations/{id}/webhook',
      summary: "An organisation's webhook (without its secret)",
      description: '`configured: false` (and no URL) when the organisation has none.',
      tags,
      auth: ['admin', 'owner'],
      params: OrgParams,
      responses: { 200: Type.Object({ orgId: Type.String(), configured: Type.Boolean(), url: Type.Optional(Type.String()), createdAt: Type.Optional(Type.Integer()), updatedAt: Type.Optional(Type.Integer()) }, { additionalProperties: false }) },
      errors: ['not-found'],
      handler: async ({ params, principal }) => {
        const orgId = await orgFor(params.id, principal);
        const w = await d.store.get('orgWebhooks', orgId);
        return w ? { ...view(w), configured: true } : { orgId, configured: false };
      },
    }),
    route({
      method: 'put',
      path: '/api/v1/organisations/{id}/webhook',
      summary: "Set an organisation's webhook URL; a new signing secret comes back once",
      description:
        'Creating the webhook, or `rotateSecret: true`, makes a new signing secret: it is in this answer only. Changing only the URL keeps the secret. Every emergency entry at the organisation\'s buildings is then POSTed there, signed (`X-SP-Signature`).',
      tags,
      auth: ['admin', 'owner'],
      params: OrgParams,
      body: Type.Object({ url: Url, rotateSecret: Type.Optional(Type.Boolean()) }),
      responses: { 200: WebhookView },
      errors: ['not-found'],
      handler: async ({ params, body, principal, log }) => {
        const orgId = await orgFor(params.id, principal);
        const url = checkWebhookUrl(body.url, d.webhooks.allowHttp);
        const t = now();
        const cur = await d.store.get('orgWebhooks', orgId);
        const secret = !cur || body.rotateSecret === true ? newWebhookSecret() : undefined;
        const next: OrgWebhook = { id: orgId, url, secret: secret ?? cur!.secret, createdAt: cur?.createdAt ?? t, updatedAt: t };
        await d.store.put('orgWebhooks', next);
        log.info('organisation webhook set', { orgId, by: principal.userId, newSecret: secret !== undefined });
        return view(next, secret);
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/organisations/{id}/webhook',
      summary: "Remove an organisation's webhook (pending deliveries then fail)",
      tags,
      auth: ['admin', 'owner'],
      params: OrgParams,
      responses: { 204: null },
      errors: ['not-found'],
      handler: async ({ params, principal, log }) => {
        const orgId = await orgFor(params.id, principal);
        if (!(await d.store.delete('orgWebhooks', orgId))) throw AppError.notFound('webhook');
        log.info('organisation webhook removed', { orgId, by: principal.userId });
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/organisations/{id}/webhook/deliveries',
      summary: "An organisation's webhook delivery log, newest first",
      description: 'Each delivery with its attempts (time, HTTP status or error), the next retry while pending, and its final state.',
      tags,
      auth: ['admin', 'owner'],
      params: OrgParams,
      query: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }) }),
      responses: { 200: Type.Object({ items: Type.Array(DeliveryView) }) },
      errors: ['not-found'],
      handler: async ({ params, query, principal }) => {
        const orgId = await orgFor(params.id, principal);
        return { items: (await deliveriesOf(d.store, `org:${orgId}`, query.limit)).map(deliveryView) };
      },
    }),
  ];
}
