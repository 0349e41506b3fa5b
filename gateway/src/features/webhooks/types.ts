/**
 * What the integrations and webhooks features keep in the store (issue 8). Plain data, like
 * domain/types.ts; secrets are marked where they live and never leave through the API again.
 */

/** An API scope an integration may hold. */
export type IntegrationScope = 'incidents:write' | 'incidents:read';
export const INTEGRATION_SCOPES: readonly IntegrationScope[] = ['incidents:write', 'incidents:read'];

/** A machine client (a CAD) with an API key. */
export interface Integration {
  id: string;
  name: string;
  kind: 'cad';
  scopes: IntegrationScope[];
  /** SHA-256 (hex) of the API key; the key itself is shown once and never stored. */
  keyHash: string;
  /** The key's first characters (`sp_int_ab12…`), to tell keys apart in lists. */
  keyHint: string;
  /** Where this integration's webhooks go; absent = none. */
  webhookUrl?: string;
  /** HMAC key of its webhooks (base64url). Stored because signing needs it; shown once. */
  webhookSecret: string;
  createdAt: number;
  createdBy: string;
  revokedAt?: number;
}

/** A CAD incident id bound to our incident: the idempotency record of POST /cad/incidents. */
export interface CadLink {
  /** `cad:<integrationId>:<sha256(external id)>`. */
  id: string;
  integrationId: string;
  externalId: string;
  incidentId: string;
  /** Caller information and other free text from the CAD (not in the audit trail: personal data). */
  note?: string;
  createdAt: number;
}

/** An owner organisation's webhook (id = the organisation's id). */
export interface OrgWebhook {
  id: string;
  url: string;
  /** HMAC key (base64url). Stored because signing needs it; shown once. */
  secret: string;
  createdAt: number;
  updatedAt: number;
}

export type WebhookEventType = 'access.granted' | 'grant.created' | 'grant.delivered';
export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryAttempt {
  at: number;
  /** The receiver's HTTP status; absent when no answer came (refused, timeout). */
  status?: number;
  error?: string;
  ms: number;
}

/** One webhook to one target, with its attempts: the delivery log. */
export interface WebhookDelivery {
  /** `whd-<audit id>-<target key>`: one audit entry gives at most one delivery per target. */
  id: string;
  /** `org:<orgId>` or `int:<integrationId>`. */
  target: string;
  event: WebhookEventType;
  /** The audit entry it reports. */
  auditId: string;
  /** The exact JSON body sent (so every attempt signs the same bytes). */
  body: string;
  state: DeliveryState;
  attempts: DeliveryAttempt[];
  /** When the next attempt is due (pending only). */
  nextAt?: number;
  createdAt: number;
  finishedAt?: number;
}
