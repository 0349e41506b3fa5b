/**
 * What the features report for Prometheus (issue 6: grants, deliveries, latency, rejected
 * messages, controllers online). Features get this through their constructors and default to
 * NO_METRICS; only adapters/metrics.ts turns it into prom-client series.
 *
 * Labels are bounded by type: grant change kinds, event kinds and reject codes come from fixed
 * lists (PROTOCOL §9), HTTP routes are templates. Nothing here takes an id, a name, a PIN or a token.
 */
import type { EvtBody } from '@smart-passage/protocol';

export type GrantChange = 'created' | 'extended' | 'revoked' | 'expired';
export type EventKind = EvtBody['kind'];

export interface HttpObservation {
  method: string;
  /** The route template (`/api/v1/grants/{id}`), or a fixed word for what no route matched. */
  route: string;
  status: number;
  seconds: number;
}

export interface Metrics {
  grantChanged(kind: GrantChange): void;
  /** One (grant, controller) delivery confirmed; the latency from creation when it was the grant's first. */
  deliveryConfirmed(latencySeconds?: number): void;
  /** A controller message dropped (PROTOCOL §9), by its reject code. */
  messageRejected(code: string): void;
  /** A new verified controller event (duplicates are not counted). */
  controllerEvent(kind: EventKind): void;
  auditAppended(): void;
  httpRequest(o: HttpObservation): void;
}

const nothing = (): void => undefined;

/** The default: report nothing. */
export const NO_METRICS: Metrics = {
  grantChanged: nothing,
  deliveryConfirmed: nothing,
  messageRejected: nothing,
  controllerEvent: nothing,
  auditAppended: nothing,
  httpRequest: nothing,
};
