/**
 * Readiness drills as an owner (or admin) manages them (issue 8, DESIGN §9): per building, its
 * drill history, its schedule, and "run now". Readiness itself (state, reasons, last drill) is
 * `live.readiness`: seeded here over REST, then kept by the socket.
 */
import { SvelteMap } from 'svelte/reactivity';
import { api, type Api } from '../api/client';
import type { BuildingReadiness, Drill, DrillSchedule } from '../api/types';
import { errorText } from '../logic/format';
import { live as liveState, type LiveState } from './live.svelte';

/** A form's worth of schedule: what PUT /api/v1/buildings/{id}/drill-schedule takes. */
export type ScheduleForm = Pick<DrillSchedule, 'enabled' | 'everyDays' | 'hour' | 'timeZone'>;

/** The browser's own time zone, the default for a new schedule. */
export function localTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** A schedule in words: "Every 7 days at 03:00 (Europe/Stockholm)" or "Not scheduled". */
export function scheduleText(s: DrillSchedule | undefined): string {
  if (!s || !s.enabled) return 'Not scheduled';
  const every = s.everyDays === 1 ? 'Every day' : `Every ${s.everyDays} days`;
  return `${every} at ${String(s.hour).padStart(2, '0')}:00 (${s.timeZone})`;
}

export class DrillsState {
  readonly #history = new SvelteMap<string, Drill[]>();
  readonly #schedules = new SvelteMap<string, DrillSchedule>();
  #busy = $state<string | undefined>(undefined);
  #error = $state<string | undefined>(undefined);
  readonly #api: Api;
  readonly #live: LiveState;

  constructor(client: Api = api, live: LiveState = liveState) {
    this.#api = client;
    this.#live = live;
  }

  get busy(): string | undefined {
    return this.#busy;
  }
  get error(): string | undefined {
    return this.#error;
  }
  readinessOf(buildingId: string): BuildingReadiness | undefined {
    return this.#live.readiness.get(buildingId);
  }
  historyOf(buildingId: string): Drill[] {
    return this.#history.get(buildingId) ?? [];
  }
  scheduleOf(buildingId: string): DrillSchedule | undefined {
    return this.#schedules.get(buildingId);
  }

  /** Readiness of every building in scope; socket deltas that came first are kept (they are newer). */
  async loadReadiness(): Promise<void> {
    try {
      const r = await this.#api.get<{ items: BuildingReadiness[] }>('/api/v1/readiness');
      this.#live.seedReadiness(r.items);
    } catch (err) {
      this.#error = errorText(err);
    }
  }

  async loadBuilding(buildingId: string): Promise<void> {
    const id = encodeURIComponent(buildingId);
    try {
      const [h, s] = await Promise.all([this.#api.get<{ items: Drill[] }>(`/api/v1/buildings/${id}/drills`, { query: { limit: 10 } }), this.#api.get<DrillSchedule>(`/api/v1/buildings/${id}/drill-schedule`)]);
      this.#history.set(buildingId, h.items);
      this.#schedules.set(buildingId, s);
    } catch (err) {
      this.#error = errorText(err);
    }
  }

  /** Save a schedule; the answer carries when the next drill is due. Throws for the form to show. */
  async saveSchedule(buildingId: string, form: ScheduleForm): Promise<DrillSchedule> {
    const s = await this.#api.put<DrillSchedule>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/drill-schedule`, form);
    this.#schedules.set(buildingId, s);
    return s;
  }

  /** Run a drill now; it goes to the top of the history. A failed drill is a result, not an error. */
  async run(buildingId: string): Promise<Drill | undefined> {
    if (this.#busy !== undefined) return undefined;
    this.#busy = buildingId;
    this.#error = undefined;
    try {
      const d = await this.#api.post<Drill>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/drills`);
      this.#history.set(buildingId, [d, ...this.historyOf(buildingId).filter((x) => x.id !== d.id)].slice(0, 10));
      return d;
    } catch (err) {
      this.#error = errorText(err);
      return undefined;
    } finally {
      this.#busy = undefined;
    }
  }
}
