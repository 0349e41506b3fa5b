/**
 * Readiness on the gateway (DESIGN §9, issue 8): computes each building's readiness from the store
 * (computeReadiness), answers the API, and pushes a change live. What can change it, and when it
 * is recomputed: a controller's presence (the bridge's `controller` event), a drill's end, and a
 * sweep every `sweepMs` for the rest (a policy or door edit, a version bump, a drill growing old).
 * Each instance pushes the changes it sees; payloads are whole records, so a repeat is harmless.
 */
import type { Logger } from '@smart-passage/protocol';
import type { Building, ControllerLive, Door, DrillSchedule } from '../../domain/types.js';
import { listAll } from '../../store/list-all.js';
import { scanAll as scan } from '../admin/common.js';
import type { StorePort } from '../../store/port.js';
import { computeReadiness, routeDoors, type BuildingReadiness } from './readiness.js';

export interface ReadinessServiceOptions {
  store: StorePort;
  logger: Logger;
  now?: () => number;
  /** A passed drill older than this counts against readiness. Default 0 = never. */
  drillMaxAgeMs?: number;
  /** How often to recompute every building. Default 60 s; 0 = never. */
  sweepMs?: number;
  /** Presence changes within this window are recomputed together, once per building (a birth storm). Default 100 ms. */
  debounceMs?: number;
  /** A building's readiness changed (or was computed for the first time here). */
  onChange?: (r: BuildingReadiness, building: Building) => void;
}

/** Loaded once per computation over many buildings. */
interface Loaded {
  doorsByBuilding: Map<string, Door[]>;
  live: Map<string, ControllerLive>;
  schedules: Map<string, DrillSchedule>;
}

export class ReadinessService {
  readonly #o: ReadinessServiceOptions;
  readonly #now: () => number;
  /**
   * Per building, the last readiness pushed, as its JSON: all the change check compares, kept as
   * one flat string rather than the object with its reasons (issue 7: ~0.4 KB less per building,
   * measured with 1,000 buildings).
   */
  readonly #last = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  readonly #dirty = new Set<string>();
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(o: ReadinessServiceOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  start(): void {
    const every = this.#o.sweepMs ?? 60_000;
    if (every > 0) {
      this.#timer = setInterval(() => void this.sweep(), every);
      this.#timer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#dirty.clear();
    await this.#sweeping;
    await this.#flushing;
  }

  /**
   * A controller's presence changed: recompute the buildings of its doors soon. Many changes in a
   * short while (a broker restart brings every controller back) cost one computation per building.
   */
  controllerChanged(controllerId: string): void {
    this.#dirty.add(controllerId);
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      const ids = [...this.#dirty];
      this.#dirty.clear();
      this.#flushing = (async () => {
        const buildings = new Set<string>();
        for (const id of ids) {
          const c = await this.#o.store.get('controllers', id);
          if (c) buildings.add(c.buildingId);
          for (const d of await listAll(this.#o.store, 'doors', { field: 'controllerId', value: id })) buildings.add(d.buildingId);
        }
        for (const b of buildings) await this.refresh(b);
      })()
        .catch((err: unknown) => this.#o.logger.warn('readiness not refreshed', { err: String(err) }))
        .finally(() => (this.#flushing = undefined));
    }, this.#o.debounceMs ?? 100);
  }

  /** One building, fresh from the store; undefined when there is no such building. */
  async of(buildingId: string): Promise<BuildingReadiness | undefined> {
    const b = await this.#o.store.get('buildings', buildingId);
    if (!b) return undefined;
    const { store } = this.#o;
    const doors = await listAll(store, 'doors', { field: 'buildingId', value: b.id });
    const live = new Map<string, ControllerLive>();
    for (const c of new Set(doors.map((d) => d.controllerId))) {
      const l = await store.get('controllerLive', c);
      if (l) live.set(c, l);
    }
    const s = await store.get('drillSchedules', b.id);
    return this.#compute(b, { doorsByBuilding: new Map([[b.id, doors]]), live, schedules: new Map(s ? [[b.id, s]] : []) });
  }

  /** Every building given, computed from one read of doors, presence and drill state. */
  async many(buildings: readonly Building[]): Promise<BuildingReadiness[]> {
    const loaded = await this.#loadAll();
    const out: BuildingReadiness[] = [];
    for (const b of buildings) out.push(await this.#compute(b, loaded));
    return out;
  }

  /** Recompute one building and push it if it changed. */
  async refresh(buildingId: string): Promise<void> {
    const b = await this.#o.store.get('buildings', buildingId);
    const r = b ? await this.of(buildingId) : undefined;
    if (b && r) this.#changed(r, b);
  }

  /** Recompute every building; push the changes. */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = (async () => {
      try {
        const buildings = await scan(this.#o.store, 'buildings');
        const loaded = await this.#loadAll();
        for (const b of buildings) this.#changed(await this.#compute(b, loaded), b);
      } catch (err) {
        this.#o.logger.warn('readiness sweep failed; the next one retries', { err: String(err) });
      }
    })();
    try {
      await this.#sweeping;
    } finally {
      this.#sweeping = undefined;
    }
  }

  #changed(r: BuildingReadiness, b: Building): void {
    const seen = JSON.stringify(r);
    if (this.#last.get(b.id) === seen) return;
    this.#last.set(b.id, seen);
    this.#o.onChange?.(r, b);
  }

  async #loadAll(): Promise<Loaded> {
    const { store } = this.#o;
    const doorsByBuilding = new Map<string, Door[]>();
    for (const d of await scan(store, 'doors')) {
      const list = doorsByBuilding.get(d.buildingId) ?? [];
      list.push(d);
      doorsByBuilding.set(d.buildingId, list);
    }
    const live = new Map((await scan(store, 'controllerLive')).map((l) => [l.id, l]));
    const schedules = new Map((await scan(store, 'drillSchedules')).map((s) => [s.id, s]));
    return { doorsByBuilding, live, schedules };
  }

  async #compute(b: Building, l: Loaded): Promise<BuildingReadiness> {
    const doors = l.doorsByBuilding.get(b.id) ?? [];
    // Desired versions only for the route's controllers: one store read each.
    const desired = new Map<string, number>();
    for (const d of routeDoors(b.policy, doors)) if (!desired.has(d.controllerId)) desired.set(d.controllerId, await this.#o.store.desiredVersion(d.controllerId));
    const last = l.schedules.get(b.id)?.last;
    return computeReadiness({
      building: b,
      doors,
      live: (id) => l.live.get(id),
      desiredVersion: (id) => desired.get(id) ?? 0,
      lastDrill: last ? { id: last.id, status: last.status, startedAt: last.at, endedAt: last.at, reasons: last.reasons } : undefined,
      now: this.#now(),
      ...(this.#o.drillMaxAgeMs !== undefined ? { drillMaxAgeMs: this.#o.drillMaxAgeMs } : {}),
    });
  }
}
