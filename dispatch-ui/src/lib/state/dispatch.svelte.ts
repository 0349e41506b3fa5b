/**
 * The dispatcher's working state (DESIGN §4 flow 1; issue 5): buildings, their doors (loaded on
 * demand), units and agencies, what is selected, the grant being drafted, and the actions that
 * call the API. Live incidents, grants and controllers are `live`'s (the socket); this class only
 * reads them, and puts an answer it got over REST there at once so the screen does not wait for the
 * socket's echo of the same object.
 */
import { SvelteMap, SvelteSet } from 'svelte/reactivity';
import { ApiError, type Api } from '../api/client';
import type { Agency, AuditItem, Building, BuildingReadiness, Door, Drill, Grant, Incident, LatLng, MapConfig, Page, Unit } from '../api/types';
import { errorText } from '../logic/format';
import type { Readiness } from '../logic/readiness';
import { clampMinutes, defaultMinutes, routeDoors } from '../logic/route-doors';
import type { LiveState } from './live.svelte';

export const INCIDENT_KINDS = ['fire', 'ambulance', 'police', 'rescue'] as const;
export type IncidentKind = (typeof INCIDENT_KINDS)[number];

/** Minutes "Extend" adds. */
export const EXTEND_MINUTES = 15;

/**
 * The gateway's largest page of GET /api/v1/buildings (MAX_BUILDINGS_PAGE): a city's 10,000
 * buildings come in one request, not 21 pages of 500 one after another (issue 7, scenario 5).
 */
export const BUILDINGS_PAGE = 20_000;

/** A failure as one line: the API's message (validation issues spelled out) and its code. */
function failure(err: unknown): string {
  return `${errorText(err)}${err instanceof ApiError ? ` (${err.code})` : ''}`;
}

const isAbort = (err: unknown): boolean => err instanceof DOMException && err.name === 'AbortError';

export class DispatchState {
  #buildings = $state.raw<Building[]>([]);
  #buildingById = $state.raw<Readonly<Record<string, Building>>>({});
  readonly #doors = new SvelteMap<string, Door[]>();
  #units = $state.raw<Unit[]>([]);
  #agencies = $state.raw<Agency[]>([]);
  #mapConfig = $state.raw<MapConfig | undefined>(undefined);
  #loaded = $state(false);

  #selectedBuildingId = $state<string | undefined>(undefined);
  #selectedIncidentId = $state<string | undefined>(undefined);
  #busy = $state<string | undefined>(undefined);
  #error = $state<string | undefined>(undefined);

  // The grant being drafted for the selected building.
  readonly #draftDoors = new SvelteSet<string>();
  readonly #draftUnits = new SvelteSet<string>();
  #minutes = $state(30);
  #withPin = $state(false);
  #kind = $state<IncidentKind>('fire');

  readonly #api: Api;
  readonly #live: LiveState;
  /** Door lists being fetched (not state: only to ask once). */
  readonly #doorLoads: Record<string, Promise<Door[]>> = {};
  /** An incident's entries from before this page saw them live (GET /api/v1/audit?incidentId=). */
  readonly #history = new SvelteMap<string, AuditItem[]>();

  constructor(api: Api, live: LiveState) {
    this.#api = api;
    this.#live = live;
  }

  get buildings(): Building[] {
    return this.#buildings;
  }
  get units(): Unit[] {
    return this.#units;
  }
  get agencies(): Agency[] {
    return this.#agencies;
  }
  get mapConfig(): MapConfig | undefined {
    return this.#mapConfig;
  }
  get loaded(): boolean {
    return this.#loaded;
  }
  get busy(): string | undefined {
    return this.#busy;
  }
  get error(): string | undefined {
    return this.#error;
  }
  clearError(): void {
    this.#error = undefined;
  }

  building(id: string): Building | undefined {
    return this.#buildingById[id];
  }
  doorsOf(buildingId: string): Door[] | undefined {
    return this.#doors.get(buildingId);
  }
  door(buildingId: string, doorId: string): Door | undefined {
    return this.#doors.get(buildingId)?.find((d) => d.id === doorId);
  }
  unit(id: string): Unit | undefined {
    return this.#units.find((u) => u.id === id);
  }

  get selectedBuilding(): Building | undefined {
    return this.#selectedBuildingId === undefined ? undefined : this.#buildingById[this.#selectedBuildingId];
  }
  get selectedBuildingId(): string | undefined {
    return this.#selectedBuildingId;
  }
  /** The selected incident while it is open. */
  get selectedIncident(): Incident | undefined {
    const i = this.#selectedIncidentId === undefined ? undefined : this.#live.incidents.get(this.#selectedIncidentId);
    return i?.status === 'open' ? i : undefined;
  }
  /** Open incidents, newest first. */
  get openIncidents(): Incident[] {
    return [...this.#live.incidents.values()].filter((i) => i.status === 'open').sort((a, b) => b.openedAt - a.openedAt);
  }
  grantsOf(incidentId: string): Grant[] {
    return [...this.#live.grants.values()].filter((g) => g.incidentId === incidentId).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Route doors of the selected building (undefined while loading). */
  get route(): Door[] | undefined {
    const b = this.selectedBuilding;
    const doors = b ? this.#doors.get(b.id) : undefined;
    return b && doors ? routeDoors(doors, b.policy) : undefined;
  }

  /**
   * A building's readiness as the gateway computed it (DESIGN §9, issue 8: one source of truth).
   * Unknown (not loaded yet) is "offline": never a hopeful "ready".
   */
  readiness(b: Building): Readiness {
    return this.#live.readiness.get(b.id)?.state ?? 'offline';
  }

  /** The gateway's reasons and last drill for a building, when known. */
  readinessDetail(buildingId: string): BuildingReadiness | undefined {
    return this.#live.readiness.get(buildingId);
  }

  // ── Draft ────────────────────────────────────────────────────────────────────────────────
  get draftDoors(): ReadonlySet<string> {
    return this.#draftDoors;
  }
  get draftUnits(): ReadonlySet<string> {
    return this.#draftUnits;
  }
  get minutes(): number {
    return this.#minutes;
  }
  get withPin(): boolean {
    return this.#withPin;
  }
  get kind(): IncidentKind {
    return this.#kind;
  }
  get maxMinutes(): number {
    return this.selectedBuilding?.policy.maxMinutes ?? 30;
  }
  toggleDoor(id: string, on: boolean): void {
    if (on) this.#draftDoors.add(id);
    else this.#draftDoors.delete(id);
  }
  toggleUnit(id: string, on: boolean): void {
    if (on) this.#draftUnits.add(id);
    else this.#draftUnits.delete(id);
  }
  setMinutes(m: number): void {
    this.#minutes = clampMinutes(m, this.maxMinutes);
  }
  setWithPin(on: boolean): void {
    this.#withPin = on;
  }
  setKind(k: IncidentKind): void {
    this.#kind = k;
  }

  // ── Loading ──────────────────────────────────────────────────────────────────────────────
  async #all<T>(path: string, limit: number, signal?: AbortSignal): Promise<T[]> {
    const out: T[] = [];
    let after: string | undefined;
    do {
      const page: Page<T> = await this.#api.get<Page<T>>(path, { query: { limit, after }, ...(signal ? { signal } : {}) });
      out.push(...page.items);
      after = page.next;
    } while (after !== undefined);
    return out;
  }

  /** Everything the view needs at start; each part fails on its own (the error is shown). */
  async load(signal?: AbortSignal): Promise<void> {
    const fail = (err: unknown) => {
      if (!isAbort(err)) this.#error = failure(err);
    };
    await Promise.all([
      // Asked first: the map opens on its view, and every circle drawn before it comes is drawn again.
      this.#api.get<MapConfig>('/api/v1/map', signal ? { signal } : {}).then(
        (m) => (this.#mapConfig = m),
        // No map endpoint (or no base layer) yet: the map still works, on a plain background.
        () => undefined,
      ),
      this.#all<Building>('/api/v1/buildings', BUILDINGS_PAGE, signal).then((bs) => {
        this.#buildings = bs.sort((a, b) => a.name.localeCompare(b.name));
        this.#buildingById = Object.fromEntries(bs.map((b) => [b.id, b]));
      }, fail),
      this.#api.get<{ items: BuildingReadiness[] }>('/api/v1/readiness', signal ? { signal } : {}).then((r) => this.#live.seedReadiness(r.items), fail),
      this.#all<Unit>('/api/v1/units', 500, signal).then((us) => (this.#units = us.sort((a, b) => a.callSign.localeCompare(b.callSign))), fail),
      this.#all<Agency>('/api/v1/agencies', 500, signal).then((as) => (this.#agencies = as.sort((a, b) => a.name.localeCompare(b.name))), fail),
    ]);
    this.#loaded = true;
  }

  /** A building's doors in route order, loaded once. */
  loadDoors(buildingId: string): Promise<Door[]> {
    const have = this.#doors.get(buildingId);
    if (have) return Promise.resolve(have);
    let p = this.#doorLoads[buildingId];
    if (!p) {
      p = this.#all<Door>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/doors`, 500).then(
        (ds) => {
          this.#doors.set(buildingId, ds);
          return ds;
        },
        (err: unknown) => {
          delete this.#doorLoads[buildingId];
          throw err;
        },
      );
      this.#doorLoads[buildingId] = p;
    }
    return p;
  }

  /** Where a map click opens the card: the nearest building within `maxM` metres. */
  nearest(at: LatLng, maxM = 120): Building | undefined {
    const mPerLat = 111_320;
    const mPerLng = mPerLat * Math.cos((at.lat * Math.PI) / 180);
    let best: Building | undefined;
    let bestD = maxM * maxM;
    for (const b of this.#buildings) {
      const dx = (b.location.lng - at.lng) * mPerLng;
      const dy = (b.location.lat - at.lat) * mPerLat;
      const d = dx * dx + dy * dy;
      if (d <= bestD) {
        bestD = d;
        best = b;
      }
    }
    return best;
  }

  // ── Selection ────────────────────────────────────────────────────────────────────────────
  selectBuilding(id: string | undefined): void {
    if (id === this.#selectedBuildingId) return;
    this.#selectedBuildingId = id;
    this.#draftDoors.clear();
    this.#draftUnits.clear();
    this.#withPin = false;
    this.#error = undefined;
    const b = id === undefined ? undefined : this.#buildingById[id];
    if (!b) return;
    this.#minutes = defaultMinutes(b.policy.maxMinutes);
    this.loadDoors(b.id).then(
      (ds) => {
        // The default route: every door the policy allows (the dispatcher trims it).
        if (this.#selectedBuildingId === b.id && this.#draftDoors.size === 0) for (const d of routeDoors(ds, b.policy)) this.#draftDoors.add(d.id);
      },
      (err: unknown) => (this.#error = failure(err)),
    );
  }

  selectIncident(id: string | undefined): void {
    this.#selectedIncidentId = id;
    const inc = id === undefined ? undefined : this.#live.incidents.get(id);
    // The incident's grants name doors of its buildings: load them for the door names.
    // loadDoors asks once per building, so repeats here cost nothing.
    for (const b of [...(inc?.buildingIds ?? []), ...(id === undefined ? [] : this.grantsOf(id).map((g) => g.buildingId))]) this.loadDoors(b).catch(() => undefined);
    if (id !== undefined && !this.#history.has(id)) void this.#loadHistory(id);
  }

  historyOf(incidentId: string): AuditItem[] {
    return this.#history.get(incidentId) ?? [];
  }

  async #loadHistory(incidentId: string): Promise<void> {
    this.#history.set(incidentId, []);
    try {
      const out: AuditItem[] = [];
      let cursor: string | undefined;
      // A few pages are plenty for one incident; the owner's log has the rest.
      for (let i = 0; i < 5; i++) {
        const page = await this.#api.get<Page<AuditItem>>('/api/v1/audit', { query: { incidentId, limit: 1000, cursor } });
        out.push(...page.items);
        cursor = page.next;
        if (cursor === undefined) break;
      }
      this.#history.set(incidentId, out);
    } catch {
      // The live feed still shows what happens from now on.
      this.#history.delete(incidentId);
    }
  }

  // ── Actions ──────────────────────────────────────────────────────────────────────────────
  async #run<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
    if (this.#busy !== undefined) return undefined;
    this.#busy = what;
    this.#error = undefined;
    try {
      return await f();
    } catch (err) {
      this.#error = failure(err);
      return undefined;
    } finally {
      this.#busy = undefined;
    }
  }

  /** Why the draft cannot be granted yet, or undefined when it can. */
  get draftProblem(): string | undefined {
    const b = this.selectedBuilding;
    if (!b) return 'select a building first';
    if (!b.policy.enabled) return 'emergency access is disabled for this building';
    if (this.#draftDoors.size === 0) return 'pick at least one door';
    if (this.#draftUnits.size === 0) return 'pick at least one unit';
    return undefined;
  }

  /**
   * Grant the draft: into the selected open incident, or a new one at the building. Returns the
   * incident PIN when one was asked for — the caller shows it once and keeps it nowhere.
   */
  async grant(): Promise<{ pin?: string } | undefined> {
    const problem = this.draftProblem;
    const b = this.selectedBuilding;
    if (problem !== undefined || !b) {
      this.#error = problem;
      return undefined;
    }
    const route = this.route ?? [];
    const doorIds = route.filter((d) => this.#draftDoors.has(d.id)).map((d) => d.id);
    const unitIds = [...this.#draftUnits];
    const minutes = clampMinutes(this.#minutes, b.policy.maxMinutes);
    const pin = this.#withPin;
    return this.#run('grant', async () => {
      let incident = this.selectedIncident;
      if (!incident) {
        incident = await this.#api.post<Incident>('/api/v1/incidents', { kind: this.#kind, location: b.location, address: b.address });
        this.#live.incidents.set(incident.id, incident);
        this.#selectedIncidentId = incident.id;
      }
      const res = await this.#api.post<{ grant: Grant; pin?: string }>(`/api/v1/incidents/${encodeURIComponent(incident.id)}/grants`, {
        buildingId: b.id,
        doorIds,
        unitIds,
        pin,
        minutes,
      });
      // The socket's copy may already be newer (a delivery): keep whichever it has.
      if (!this.#live.grants.has(res.grant.id)) this.#live.grants.set(res.grant.id, res.grant);
      this.#withPin = false;
      return res.pin !== undefined ? { pin: res.pin } : {};
    });
  }

  /**
   * Run a readiness drill now (issue 8): the gateway answers when it ends; readiness and any alert
   * follow over the socket. A failed drill is an answer, not an error.
   */
  async runDrill(buildingId: string): Promise<Drill | undefined> {
    return this.#run(`drill:${buildingId}`, () => this.#api.post<Drill>(`/api/v1/buildings/${encodeURIComponent(buildingId)}/drills`));
  }

  async pulse(door: Door, incidentId: string): Promise<void> {
    await this.#run(`pulse:${door.id}`, () => this.#api.post(`/api/v1/doors/${encodeURIComponent(door.id)}/pulse`, { seconds: door.pulseSeconds, incidentId }));
  }

  async extend(grantId: string, minutes = EXTEND_MINUTES): Promise<void> {
    const g = await this.#run(`extend:${grantId}`, () => this.#api.post<Grant>(`/api/v1/grants/${encodeURIComponent(grantId)}/extend`, { minutes }));
    if (g) this.#live.grants.set(g.id, g);
  }

  async revoke(grantId: string): Promise<void> {
    const g = await this.#run(`revoke:${grantId}`, () => this.#api.post<Grant>(`/api/v1/grants/${encodeURIComponent(grantId)}/revoke`));
    if (g) this.#live.grants.set(g.id, g);
  }

  async closeIncident(id: string): Promise<void> {
    const i = await this.#run(`close:${id}`, () => this.#api.post<Incident>(`/api/v1/incidents/${encodeURIComponent(id)}/close`));
    if (i) {
      this.#live.incidents.set(i.id, i);
      if (this.#selectedIncidentId === id) this.#selectedIncidentId = undefined;
    }
  }
}
