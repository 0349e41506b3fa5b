/**
 * Prometheus metrics (issue 6): the only importer of prom-client. Implements the features'
 * Metrics port on a registry of its own (no global default registry, so several gateways in one
 * process — the tests — do not share series) and renders the text exposition for GET /metrics.
 *
 * Label values are clamped to fixed lists here too, so a bug upstream cannot grow the series
 * without bound or put a secret in a label.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { REJECT_CODES, type Logger } from '@smart-passage/protocol';
import type { EventKind, GrantChange, HttpObservation, Metrics } from '../features/metrics/metrics.js';

export interface PromMetricsOptions {
  /** Read at scrape time: controllers whose live state says online (DESIGN §5: presence). */
  controllersOnline: () => Promise<number>;
  /** Read at scrape time: connected socket.io clients on this instance. */
  socketConnections: () => number;
  logger: Logger;
}

export interface Exposition {
  contentType: string;
  body: string;
}

/** 1 ms … 10 s: a demo controller applies in milliseconds, a far one over a bad link in seconds. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const REJECT_LABELS = new Set<string>([...Object.keys(REJECT_CODES), 'unknown-controller']);
const EVENT_KINDS = new Set<string>(['access', 'door', 'tamper', 'rejected'] satisfies EventKind[]);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const ROUTE = /^[A-Za-z0-9/{}._-]{1,120}$/;

export class PromMetrics implements Metrics {
  readonly registry = new Registry();
  readonly #grants: Counter<'kind'>;
  readonly #deliveries: Counter;
  readonly #latency: Histogram;
  readonly #rejected: Counter<'code'>;
  readonly #events: Counter<'kind'>;
  readonly #audit: Counter;
  readonly #http: Histogram<'method' | 'route' | 'status_class'>;

  constructor(o: PromMetricsOptions) {
    const registers = [this.registry];
    // Standard process_* and nodejs_* names, so stock dashboards work; ours carry sp_.
    collectDefaultMetrics({ register: this.registry });
    this.#grants = new Counter({ name: 'sp_grants_total', help: 'Grant lifecycle changes made by this instance, by kind', labelNames: ['kind'], registers });
    for (const kind of ['created', 'extended', 'revoked', 'expired'] satisfies GrantChange[]) this.#grants.inc({ kind }, 0);
    this.#deliveries = new Counter({ name: 'sp_grant_deliveries_confirmed_total', help: 'Grant deliveries (grant × controller) confirmed applied', registers });
    this.#latency = new Histogram({
      name: 'sp_grant_delivery_latency_seconds',
      help: 'From a grant being created to each of its controllers confirming it applied',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#rejected = new Counter({ name: 'sp_mqtt_messages_rejected_total', help: 'Controller messages dropped (PROTOCOL §9), by reject code', labelNames: ['code'], registers });
    this.#events = new Counter({ name: 'sp_controller_events_total', help: 'New verified controller events, by kind', labelNames: ['kind'], registers });
    this.#audit = new Counter({ name: 'sp_audit_entries_appended_total', help: 'Audit entries appended by this instance', registers });
    this.#http = new Histogram({
      name: 'sp_http_request_duration_seconds',
      help: 'HTTP requests by route template and status class',
      labelNames: ['method', 'route', 'status_class'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    const log = o.logger;
    new Gauge({
      name: 'sp_controllers_online',
      help: 'Registered controllers whose presence is online',
      registers,
      async collect() {
        try {
          this.set(await o.controllersOnline());
        } catch (err) {
          // The store is down: keep the last value rather than fail the whole scrape.
          log.warn('metrics: controllers online not read', { err: err instanceof Error ? err.name : 'unknown' });
        }
      },
    });
    new Gauge({
      name: 'sp_socket_connections',
      help: 'socket.io clients connected to this instance',
      registers,
      collect() {
        this.set(o.socketConnections());
      },
    });
  }

  grantChanged(kind: GrantChange): void {
    this.#grants.inc({ kind });
  }

  deliveryConfirmed(latencySeconds?: number): void {
    this.#deliveries.inc();
    if (latencySeconds !== undefined && Number.isFinite(latencySeconds) && latencySeconds >= 0) this.#latency.observe(latencySeconds);
  }

  messageRejected(code: string): void {
    this.#rejected.inc({ code: REJECT_LABELS.has(code) ? code : 'other' });
  }

  controllerEvent(kind: EventKind): void {
    this.#events.inc({ kind: EVENT_KINDS.has(kind) ? kind : 'other' });
  }

  auditAppended(): void {
    this.#audit.inc();
  }

  httpRequest(o: HttpObservation): void {
    this.#http.observe(
      {
        method: METHODS.has(o.method) ? o.method : 'other',
        route: ROUTE.test(o.route) ? o.route : 'other',
        status_class: o.status >= 100 && o.status < 600 ? `${Math.floor(o.status / 100)}xx` : 'other',
      },
      o.seconds,
    );
  }

  /** The text exposition format (version 0.0.4). */
  async render(): Promise<Exposition> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  stop(): void {
    this.registry.clear();
  }
}
