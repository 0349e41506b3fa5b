/**
 * One webhook delivery engine for owner organisations and CAD integrations (issue 8).
 *
 * Fed from the audit trail (`AuditLog` 'entry', emitted once per appended entry by the process
 * that appended it — a controller event handled by several instances is appended once): each
 * entry worth a webhook becomes one delivery per target, stored under an id made of the entry's id
 * and the target, so it can never be queued twice. Deliveries live in the store: a restarted
 * gateway resumes the pending ones, and a per-delivery lease lets one instance at a time send each.
 *
 * Which entries go where:
 * - `access.granted` through a grant (an emergency entry) → the building's owner organisation's
 *   webhook, and the CAD integration that created the incident;
 * - `grant.created`, `grant.delivered` → the CAD integration that created the incident.
 *
 * Retries: attempt n failing waits backoffMs·2^(n−1) (capped at maxBackoffMs), until maxAttempts
 * or maxAgeMs from the first; then the delivery is `failed`. Success is any 2xx; redirects are
 * not followed. Constructor stores; start() polls; stop() waits for attempts in flight.
 */
import { type AuditItem, type Logger } from '@smart-passage/protocol';
import { buildingOfChain } from '../audit/audit-log.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';
import { SIGNATURE_HEADER, signatureHeader } from './signing.js';
import type { DeliveryAttempt, WebhookDelivery, WebhookEventType } from './types.js';

export interface WebhookSettings {
  /** First retry delay (SP_WEBHOOK_BACKOFF_MS, default 1000). */
  backoffMs?: number;
  /** Longest retry delay (default 1 h). */
  maxBackoffMs?: number;
  /** Attempts before a delivery is failed (SP_WEBHOOK_MAX_ATTEMPTS, default 20). */
  maxAttempts?: number;
  /** Give up this long after the event (default 24 h). */
  maxAgeMs?: number;
  /** One attempt's timeout (default 10 s). */
  timeoutMs?: number;
  /** How often pending deliveries are looked at (default 1000 ms). */
  pollMs?: number;
  /** Allow http:// URLs (SP_WEBHOOK_ALLOW_HTTP; default https only). */
  allowHttp?: boolean;
}

export interface WebhookServiceOptions extends WebhookSettings {
  store: StorePort;
  logger: Logger;
  /** This instance's lease owner name. */
  owner: string;
  now?: () => number;
}

const EVENTS: ReadonlySet<string> = new Set<WebhookEventType>(['access.granted', 'grant.created', 'grant.delivered']);

/** The part of a delivery the API shows (never the body's secrets: it has none; never the URL's query). */
export function deliveryView(d: WebhookDelivery) {
  return {
    id: d.id,
    event: d.event,
    auditId: d.auditId,
    state: d.state,
    attempts: d.attempts.map((a) => ({ ...a })),
    ...(d.nextAt !== undefined ? { nextAt: d.nextAt } : {}),
    createdAt: d.createdAt,
    ...(d.finishedAt !== undefined ? { finishedAt: d.finishedAt } : {}),
  };
}

export class WebhookService {
  readonly #o: WebhookServiceOptions;
  readonly #now: () => number;
  readonly #backoff: number;
  readonly #maxBackoff: number;
  readonly #maxAttempts: number;
  readonly #maxAge: number;
  readonly #timeout: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = true;

  constructor(o: WebhookServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#backoff = o.backoffMs ?? 1000;
    this.#maxBackoff = o.maxBackoffMs ?? 3_600_000;
    this.#maxAttempts = o.maxAttempts ?? 20;
    this.#maxAge = o.maxAgeMs ?? 24 * 3_600_000;
    this.#timeout = o.timeoutMs ?? 10_000;
  }

  get allowHttp(): boolean {
    return this.#o.allowHttp ?? false;
  }

  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.kick(), this.#o.pollMs ?? 1000);
    this.#timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }

  /** Look at pending deliveries now (after an enqueue, and on every poll). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass()
      .catch((err: unknown) => this.#o.logger.warn('webhook pass failed; the next poll retries', { err: err instanceof Error ? err.message : String(err) }))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** An audit entry: queue one delivery per target it concerns. */
  async onEntry(item: AuditItem): Promise<void> {
    if (!EVENTS.has(item.type)) return;
    const { store } = this.#o;
    const targets: string[] = [];
    const buildingId = item.buildingId ?? buildingOfChain(item.chain);
    // An emergency entry: access granted through a grant (not a resident's own tag).
    if (item.type === 'access.granted' && item.grantId !== undefined && buildingId !== undefined) {
      const b = await store.get('buildings', buildingId);
      if (b && (await store.get('orgWebhooks', b.orgId))) targets.push(`org:${b.orgId}`);
    }
    if (item.incidentId !== undefined) {
      for (const link of await listAll(store, 'cadLinks', { field: 'incidentId', value: item.incidentId })) {
        const i = await store.get('integrations', link.integrationId);
        if (i && i.revokedAt === undefined && i.webhookUrl !== undefined) targets.push(`int:${i.id}`);
      }
    }
    if (targets.length === 0) return;
    const body = JSON.stringify(await this.#payload(item, buildingId));
    const t = this.#now();
    for (const target of new Set(targets)) {
      const d: WebhookDelivery = { id: `whd-${item.id}-${target.replace(':', '-')}`, target, event: item.type as WebhookEventType, auditId: item.id, body, state: 'pending', attempts: [], nextAt: t, createdAt: t };
      try {
        await store.insert('webhookDeliveries', d);
      } catch (err) {
        if (err instanceof Error && err.name === 'StoreConflictError') continue; // already queued
        throw err;
      }
    }
    this.kick();
  }

  /** What the receiver gets: ids and names, never a PIN or a secret. */
  async #payload(item: AuditItem, buildingId: string | undefined): Promise<Record<string, unknown>> {
    const { store } = this.#o;
    const [b, door, incident, unit, grant] = await Promise.all([
      buildingId !== undefined ? store.get('buildings', buildingId) : undefined,
      item.doorId !== undefined ? store.get('doors', item.doorId) : undefined,
      item.incidentId !== undefined ? store.get('incidents', item.incidentId) : undefined,
      item.unitId !== undefined ? store.get('units', item.unitId) : undefined,
      item.grantId !== undefined ? store.get('grants', item.grantId) : undefined,
    ]);
    const data = item.data ?? {};
    return {
      id: `evt-${item.id}`,
      type: item.type,
      occurredAt: new Date(typeof data['at'] === 'number' ? data['at'] : item.at).toISOString(),
      building: b ? { id: b.id, name: b.name, address: b.address } : buildingId !== undefined ? { id: buildingId } : null,
      door: door ? { id: door.id, name: door.name, ref: door.ref } : item.doorId !== undefined ? { id: item.doorId } : null,
      incident: incident ? { id: incident.id, ...(incident.ref !== undefined ? { ref: incident.ref } : {}), kind: incident.kind } : item.incidentId !== undefined ? { id: item.incidentId } : null,
      unit: unit ? { id: unit.id, callSign: unit.callSign } : item.unitId !== undefined ? { id: item.unitId } : null,
      grant: grant ? { id: grant.id, status: grant.status, notBefore: grant.notBefore, notAfter: grant.notAfter, doorIds: grant.doorIds, unitIds: grant.unitIds } : item.grantId !== undefined ? { id: item.grantId } : null,
      ...(typeof data['credential'] === 'string' ? { credential: data['credential'] } : {}),
      ...(item.controllerId !== undefined ? { controllerId: item.controllerId } : {}),
      audit: { id: item.id, chain: item.chain, seq: item.seq, hash: item.hash },
    };
  }

  async #pass(): Promise<void> {
    const now = this.#now();
    const due = (await listAll(this.#o.store, 'webhookDeliveries', { field: 'state', value: 'pending' })).filter((d) => (d.nextAt ?? 0) <= now);
    due.sort((a, b) => (a.nextAt ?? 0) - (b.nextAt ?? 0));
    // In parallel: one slow receiver must not hold up every other.
    await Promise.all(due.slice(0, 50).map((d) => this.#deliver(d.id)));
  }

  async #deliver(id: string): Promise<void> {
    const { store, owner } = this.#o;
    const lease = `webhook:${id}`;
    if (!(await store.acquireLease(lease, owner, this.#timeout + 10_000))) return;
    try {
      const d = await store.get('webhookDeliveries', id);
      if (!d || d.state !== 'pending' || (d.nextAt ?? 0) > this.#now() || this.#stopped) return;
      const dest = await this.#destination(d.target);
      const attempt = dest ? await this.#send(d, dest) : { at: this.#now(), error: 'webhook removed', ms: 0 };
      const n = d.attempts.length + 1;
      const ok = attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300;
      const delay = Math.min(this.#backoff * 2 ** (n - 1), this.#maxBackoff);
      const giveUp = !ok && (!dest || n >= this.#maxAttempts || attempt.at + delay - d.createdAt > this.#maxAge);
      await store.update('webhookDeliveries', id, (cur) => {
        const { nextAt: _drop, ...rest } = cur;
        if (ok) return { ...rest, attempts: [...cur.attempts, attempt], state: 'delivered', finishedAt: attempt.at };
        if (giveUp) return { ...rest, attempts: [...cur.attempts, attempt], state: 'failed', finishedAt: attempt.at };
        return { ...cur, attempts: [...cur.attempts, attempt], nextAt: attempt.at + delay };
      });
      const fields = { delivery: id, target: d.target, attempt: n, ...(attempt.status !== undefined ? { status: attempt.status } : {}), ...(attempt.error !== undefined ? { error: attempt.error } : {}) };
      if (ok) this.#o.logger.info('webhook delivered', fields);
      else if (giveUp) this.#o.logger.warn('WEBHOOK DELIVERY FAILED for good', fields);
      else this.#o.logger.info('webhook attempt failed; retrying', { ...fields, retryInMs: delay });
    } finally {
      await store.releaseLease(lease, owner);
    }
  }

  /** The target's current URL and secret (a changed URL applies to pending retries too). */
  async #destination(target: string): Promise<{ url: string; secret: string } | undefined> {
    const [kind, id] = target.split(':', 2) as [string, string];
    if (kind === 'org') {
      const w = await this.#o.store.get('orgWebhooks', id);
      return w ? { url: w.url, secret: w.secret } : undefined;
    }
    const i = await this.#o.store.get('integrations', id);
    return i && i.revokedAt === undefined && i.webhookUrl !== undefined ? { url: i.webhookUrl, secret: i.webhookSecret } : undefined;
  }

  async #send(d: WebhookDelivery, dest: { url: string; secret: string }): Promise<DeliveryAttempt> {
    const at = this.#now();
    const t0 = performance.now();
    const ms = () => Math.round(performance.now() - t0);
    try {
      const res = await fetch(dest.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#timeout),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'smart-passage-webhooks/1',
          'x-sp-event': d.event,
          'x-sp-delivery': d.id,
          [SIGNATURE_HEADER]: signatureHeader(dest.secret, d.body, Date.now()),
        },
        body: d.body,
      });
      await res.body?.cancel();
      return { at, status: res.status, ms: ms() };
    } catch (err) {
      // The cause's code only (ECONNREFUSED, timeout): never the URL, which may carry a token.
      const cause = (err as { cause?: { code?: unknown } }).cause;
      const code = typeof cause?.code === 'string' ? cause.code : err instanceof Error && err.name === 'TimeoutError' ? 'timeout' : 'network error';
      return { at, error: code, ms: ms() };
    }
  }
}
