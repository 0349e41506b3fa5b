/**
 * The live picture (DESIGN §6): the socket's snapshot, then deltas, kept in reactive maps keyed by
 * id; the audit feed (newest last, bounded) with the last id seen so a reconnect resumes it with
 * no gap; and alerts when a controller on an active route goes offline.
 */
import { SvelteMap } from 'svelte/reactivity';
import type { Api, LiveSocket } from '../api/client';
import type { AuditCheckpoint, AuditItem, BuildingReadiness, ControllerLive, DrillAlert, Grant, Incident } from '../api/types';

/** Entries the feed keeps in memory; the full log is the REST API's. */
export const FEED_LIMIT = 500;

export interface OfflineAlert {
  controllerId: string;
  grantIds: string[];
  at: number;
}

export function isLiveGrant(g: Grant, now = Date.now()): boolean {
  return (g.status === 'pending' || g.status === 'active') && g.notAfter > now;
}

export class LiveState {
  readonly incidents = new SvelteMap<string, Incident>();
  readonly grants = new SvelteMap<string, Grant>();
  readonly controllers = new SvelteMap<string, ControllerLive>();
  /** Issue 8: each building's readiness as the gateway computes it (DESIGN §9): REST first, then the socket. */
  readonly readiness = new SvelteMap<string, BuildingReadiness>();
  #drillAlerts = $state<DrillAlert[]>([]);
  /** Called when a failed drill is reported (the dispatcher view beeps, as for an offline alert). */
  onDrillAlert: (a: DrillAlert) => void = () => undefined;
  #feed = $state<AuditItem[]>([]);
  #checkpoints = $state<AuditCheckpoint[]>([]);
  #connected = $state(false);
  #error = $state<string | undefined>(undefined);
  #alerts = $state<OfflineAlert[]>([]);
  #lastAuditId: string | undefined;
  #socket: LiveSocket | undefined;
  /** Called when a new offline alert is raised (the dispatcher view beeps). */
  onAlert: (a: OfflineAlert) => void = () => undefined;

  get feed(): AuditItem[] {
    return this.#feed;
  }
  get checkpoints(): AuditCheckpoint[] {
    return this.#checkpoints;
  }
  get connected(): boolean {
    return this.#connected;
  }
  get error(): string | undefined {
    return this.#error;
  }
  get alerts(): OfflineAlert[] {
    return this.#alerts;
  }
  get drillAlerts(): DrillAlert[] {
    return this.#drillAlerts;
  }
  get lastAuditId(): string | undefined {
    return this.#lastAuditId;
  }

  connect(api: Api): void {
    this.disconnect();
    const socket = api.connect(() => this.#lastAuditId);
    this.#socket = socket;
    socket.on('connect', () => {
      this.#connected = true;
      this.#error = undefined;
    });
    socket.on('disconnect', () => (this.#connected = false));
    socket.on('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
      this.#connected = false;
      this.#error = err.data?.message ?? err.message;
      if (err.data?.code === 'token-expired') void api.refresh().then(() => socket.connect(), () => undefined);
    });
    socket.on('auth:expired', () => void api.refresh().then(() => this.connect(api), () => undefined));
    socket.on('snapshot', (s) => {
      this.incidents.clear();
      this.grants.clear();
      this.controllers.clear();
      for (const i of s.incidents) this.incidents.set(i.id, i);
      for (const g of s.grants) this.grants.set(g.id, g);
      for (const c of s.controllers) this.controllers.set(c.id, c);
    });
    socket.on('incident', (i) => this.incidents.set(i.id, i));
    socket.on('grant', (g) => this.grants.set(g.id, g));
    socket.on('controller', (c) => this.applyController(c));
    socket.on('audit', (a) => this.addAudit(a));
    socket.on('checkpoint', (cp) => (this.#checkpoints = [...this.#checkpoints.slice(-99), cp]));
    socket.on('readiness', (r) => this.applyReadiness(r));
    socket.on('alert', (a) => this.applyDrillAlert(a));
  }

  disconnect(): void {
    this.#socket?.disconnect();
    this.#socket = undefined;
    this.#connected = false;
  }

  /** Apply a controller delta; raise an alert when one on a live grant's route goes offline. */
  applyController(c: ControllerLive, now = Date.now()): void {
    const before = this.controllers.get(c.id);
    this.controllers.set(c.id, c);
    if (before?.online === true && !c.online) {
      const grantIds = [...this.grants.values()].filter((g) => isLiveGrant(g, now) && g.deliveries.some((d) => d.controllerId === c.id)).map((g) => g.id);
      if (grantIds.length > 0) {
        const alert = { controllerId: c.id, grantIds, at: now };
        this.#alerts = [...this.#alerts, alert];
        this.onAlert(alert);
      }
    }
    if (c.online) this.#alerts = this.#alerts.filter((a) => a.controllerId !== c.id);
  }

  /** A readiness delta (whole record); a passing drill clears that building's drill alerts. */
  applyReadiness(r: BuildingReadiness): void {
    this.readiness.set(r.buildingId, r);
    if (r.lastDrill?.status === 'passed') this.#drillAlerts = this.#drillAlerts.filter((a) => a.buildingId !== r.buildingId || a.at > r.lastDrill!.at);
  }

  /** A REST answer: kept only where no socket delta (which is newer) arrived first. */
  seedReadiness(items: readonly BuildingReadiness[]): void {
    for (const r of items) if (!this.readiness.has(r.buildingId)) this.readiness.set(r.buildingId, r);
  }

  applyDrillAlert(a: DrillAlert): void {
    if (this.#drillAlerts.some((x) => x.drillId === a.drillId)) return;
    this.#drillAlerts = [...this.#drillAlerts, a];
    this.onDrillAlert(a);
  }

  dismissDrillAlert(drillId: string): void {
    this.#drillAlerts = this.#drillAlerts.filter((a) => a.drillId !== drillId);
  }

  dismissAlert(controllerId: string): void {
    this.#alerts = this.#alerts.filter((a) => a.controllerId !== controllerId);
  }

  /** Add an entry once (a resumed feed may repeat none, but a REST refill may). */
  addAudit(a: AuditItem): void {
    if (this.#lastAuditId !== undefined && Number(a.id) <= Number(this.#lastAuditId) && this.#feed.some((x) => x.id === a.id)) return;
    const next = [...this.#feed, a];
    this.#feed = next.length > FEED_LIMIT ? next.slice(next.length - FEED_LIMIT) : next;
    if (this.#lastAuditId === undefined || Number(a.id) > Number(this.#lastAuditId)) this.#lastAuditId = a.id;
  }
}

export const live = new LiveState();
