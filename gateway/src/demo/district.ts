/**
 * The demo district the embedded setup starts with (DESIGN §3 objects, plain data): a slice of
 * Södermalm, Stockholm around Medborgarplatsen, Folkungagatan and Nytorget, with two property
 * owners, a fire and an ambulance agency, six units and their tags, twelve buildings, forty doors
 * on fifteen controllers, and one user per role.
 *
 * Street names are real; house numbers are plausible, not checked; coordinates are hand-made
 * approximations for the demo (no map data copied). Owners, agencies and people are invented.
 *
 * Ids are fixed (`bld-01`, `door-01-1`, `ctl-sofa-01`, `unit-rtj-2310` …) so tests and docs can
 * name them; `door-BB-N` is door N on building BB's default route (N = routeOrder).
 *
 * Secrets are not here: users carry no password hash and controllers no keys. `seedDemo` (seed.ts)
 * adds them from what the gateway hands it.
 */
import type {
  Agency,
  AgencyKind,
  Building,
  Controller,
  Door,
  DoorKind,
  EmergencyPolicy,
  LatLng,
  Organisation,
  Role,
  Tag,
  Unit,
  User,
} from '../domain/types.js';

/** A user before the seeding step hashes the password it is given for them. */
export type DemoUser = Omit<User, 'passwordHash'>;
/** The secret half of a controller, made by the gateway at seeding time (DESIGN §5.9). */
export type ControllerSecrets = Pick<Controller, 'publicKey' | 'controllerKid' | 'mqttPasswordHash' | 'offlineSecret'>;
/** A controller before the seeding step adds its keys. */
export type DemoController = Omit<Controller, keyof ControllerSecrets>;

export interface DemoDistrict {
  organisations: Organisation[];
  agencies: Agency[];
  units: Unit[];
  tags: Tag[];
  buildings: Building[];
  controllers: DemoController[];
  doors: Door[];
  users: DemoUser[];
}

/** `createdAt` when the caller gives no `now`: a fixed instant keeps the function pure. */
export const DEMO_EPOCH = Date.UTC(2026, 0, 1);

/** Vendor string of the demo controllers: the gateway runs protocol's reference controller for them. */
export const DEMO_VENDOR = 'smart-passage-reference';

/**
 * The box every demo building lies in (WGS 84). It runs a little further south than
 * Medborgarplatsen–Folkungagatan so that Bondegatan, Åsögatan and Ringvägen fit.
 */
export const DEMO_BBOX = { south: 59.306, north: 59.32, west: 18.062, east: 18.095 } as const;

/** Where the dispatch map opens. Medborgarplatsen, approximately. */
export const DEMO_CENTRE: LatLng = { lat: 59.3146, lng: 18.0745 };

/** The demo's usernames by what they are for; passwords are the caller's (seedDemo). */
export const DEMO_USERNAMES = {
  admin: 'admin',
  dispatcher: 'dispatch',
  responder: 'responder',
  responderAmbulance: 'amb3010',
  owner: 'owner',
  ownerBrf: 'owner-brf',
} as const;

// ── Organisations and agencies ───────────────────────────────────────────────────────────────
const ORG = {
  operator: 'org-operator',
  municipal: 'org-soderporten',
  brf: 'org-brf-nytorgsvinkeln',
  fire: 'org-fire',
  ambulance: 'org-ambulance',
} as const;

const ORGANISATIONS: readonly Omit<Organisation, 'createdAt'>[] = [
  { id: ORG.operator, name: 'Smart Passage drift', kind: 'operator' },
  // A municipal housing company (kommunalt bostadsbolag) and a housing cooperative; invented.
  { id: ORG.municipal, name: 'Söderporten Bostäder AB', kind: 'owner' },
  { id: ORG.brf, name: 'Bostadsrättsföreningen Nytorgsvinkeln', kind: 'owner' },
  { id: ORG.fire, name: 'Södra Storstadens räddningstjänst', kind: 'agency' },
  { id: ORG.ambulance, name: 'Stadsambulansen Söder', kind: 'agency' },
];

export const DEMO_AGENCY = { fire: 'ag-fire', ambulance: 'ag-ambulance' } as const;

const AGENCIES: readonly Agency[] = [
  { id: DEMO_AGENCY.fire, name: 'Södra Storstadens räddningstjänst', kind: 'fire', orgId: ORG.fire },
  { id: DEMO_AGENCY.ambulance, name: 'Stadsambulansen Söder', kind: 'ambulance', orgId: ORG.ambulance },
];

// ── Units and their tags ─────────────────────────────────────────────────────────────────────
/**
 * Call signs in the Swedish style; tag uids are fixed so docs and tests can present them:
 * 4-byte uids (MIFARE Classic-like) and 7-byte ones starting `04` (NXP NTAG-like).
 */
const UNITS: readonly { callSign: string; kind: AgencyKind; tags: readonly string[] }[] = [
  { callSign: 'RTJ 2310', kind: 'fire', tags: ['F1231001', 'F1231002', '0423100381A680'] },
  { callSign: 'RTJ 2340', kind: 'fire', tags: ['F1234001', 'F1234002'] },
  { callSign: 'RTJ 2360', kind: 'fire', tags: ['F1236001', 'F1236002', '0423600381A680'] },
  { callSign: 'AMB 3010', kind: 'ambulance', tags: ['A3301001', 'A3301002', '0430100381A680'] },
  { callSign: 'AMB 3020', kind: 'ambulance', tags: ['A3302001', 'A3302002'] },
  { callSign: 'AMB 3040', kind: 'ambulance', tags: ['A3304001', 'A3304002'] },
];

/** `RTJ 2310` → `unit-rtj-2310`. */
export function demoUnitId(callSign: string): string {
  return `unit-${callSign.toLowerCase().replace(/\s+/g, '-')}`;
}

// ── Buildings, controllers, doors ────────────────────────────────────────────────────────────
/** One door on a building's route: kind, name, floor, which of the building's controllers, ref. */
type DoorSpec = readonly [kind: DoorKind, name: string, floor: number | undefined, ctl: number, ref: string, emergency?: false];

interface BuildingSpec {
  n: number;
  org: string;
  name: string;
  address: string;
  location: LatLng;
  /** How many controllers drive the doors (1–2). */
  controllers: 1 | 2;
  policy: Partial<EmergencyPolicy>;
  /** In route order: the street door first. */
  doors: readonly DoorSpec[];
}

const BUILDINGS: readonly BuildingSpec[] = [
  {
    n: 1, org: ORG.municipal, name: 'Götgatshuset', address: 'Götgatan 78, Stockholm',
    location: { lat: 59.31352, lng: 18.07178 }, controllers: 2, policy: { maxMinutes: 60 },
    doors: [
      ['entrance', 'Entré Götgatan 78', 0, 1, 'entre'],
      ['stairwell', 'Trapphus A', 0, 1, 'trapp-a'],
      ['elevator', 'Hiss A', 0, 2, 'hiss-a'],
      ['floor', 'Plan 4, trapphusdörr', 4, 2, 'plan-4'],
      // Not on the emergency route: the tenant asked to be opened only by the owner.
      ['apartment', 'Lägenhet 1402', 4, 2, 'lgh-1402', false],
    ],
  },
  {
    n: 2, org: ORG.municipal, name: 'Folkungagatan 56', address: 'Folkungagatan 56, Stockholm',
    location: { lat: 59.31375, lng: 18.07762 }, controllers: 1, policy: { maxMinutes: 45 },
    doors: [
      ['entrance', 'Entré Folkungagatan 56', 0, 1, 'entre'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['floor', 'Plan 2, trapphusdörr', 2, 1, 'plan-2'],
    ],
  },
  {
    n: 3, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Östgötagatan 44', address: 'Östgötagatan 44, Stockholm',
    location: { lat: 59.31212, lng: 18.07538 }, controllers: 1, policy: { maxMinutes: 30 },
    doors: [
      ['entrance', 'Port Östgötagatan 44', 0, 1, 'port'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['floor', 'Plan 3, trapphusdörr', 3, 1, 'plan-3'],
    ],
  },
  {
    n: 4, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Skånegatan 83', address: 'Skånegatan 83, Stockholm',
    location: { lat: 59.31308, lng: 18.08098 }, controllers: 1, policy: { maxMinutes: 30 },
    doors: [
      ['gate', 'Gårdsgrind Skånegatan', 0, 1, 'grind'],
      ['entrance', 'Entré gårdshuset', 0, 1, 'entre-gard'],
      ['stairwell', 'Trapphus gårdshuset', 0, 1, 'trapp'],
    ],
  },
  {
    n: 5, org: ORG.municipal, name: 'Nytorgsgatan 25', address: 'Nytorgsgatan 25, Stockholm',
    location: { lat: 59.31358, lng: 18.08352 }, controllers: 2, policy: { maxMinutes: 60 },
    doors: [
      ['entrance', 'Entré Nytorgsgatan 25', 0, 1, 'entre'],
      ['stairwell', 'Trapphus A', 0, 1, 'trapp-a'],
      ['elevator', 'Hiss A', 0, 2, 'hiss-a'],
      ['floor', 'Plan 5, trapphusdörr', 5, 2, 'plan-5'],
    ],
  },
  {
    n: 6, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Bondegatan 46', address: 'Bondegatan 46, Stockholm',
    location: { lat: 59.31118, lng: 18.08478 }, controllers: 1, policy: { maxMinutes: 40, allowedAgencyIds: [DEMO_AGENCY.fire] },
    doors: [
      ['entrance', 'Port Bondegatan 46', 0, 1, 'port'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['apartment', 'Lägenhet 1101 (trygghetsboende)', 1, 1, 'lgh-1101'],
    ],
  },
  {
    n: 7, org: ORG.municipal, name: 'Renstiernas gata 29', address: 'Renstiernas gata 29, Stockholm',
    location: { lat: 59.31352, lng: 18.08578 }, controllers: 1, policy: { maxMinutes: 45 },
    doors: [
      ['entrance', 'Entré Renstiernas gata 29', 0, 1, 'entre'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['floor', 'Plan 3, trapphusdörr', 3, 1, 'plan-3'],
    ],
  },
  {
    n: 8, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Åsögatan 122', address: 'Åsögatan 122, Stockholm',
    location: { lat: 59.31062, lng: 18.07778 }, controllers: 1, policy: { maxMinutes: 30 },
    doors: [
      ['gate', 'Portvalv Åsögatan', 0, 1, 'valv'],
      ['entrance', 'Entré gårdshuset', 0, 1, 'entre-gard'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
    ],
  },
  {
    // Emergency access switched off by the owner: the dispatcher sees the building but may not grant.
    n: 9, org: ORG.municipal, name: 'Södermannagatan 21', address: 'Södermannagatan 21, Stockholm',
    location: { lat: 59.31502, lng: 18.07982 }, controllers: 1, policy: { enabled: false, maxMinutes: 30 },
    doors: [
      ['entrance', 'Entré Södermannagatan 21', 0, 1, 'entre'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['floor', 'Plan 2, trapphusdörr', 2, 1, 'plan-2'],
    ],
  },
  {
    n: 10, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Tjärhovsgatan 30', address: 'Tjärhovsgatan 30, Stockholm',
    location: { lat: 59.31528, lng: 18.07748 }, controllers: 1, policy: { maxMinutes: 30 },
    doors: [
      ['entrance', 'Port Tjärhovsgatan 30', 0, 1, 'port'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['elevator', 'Hiss', 0, 1, 'hiss'],
    ],
  },
  {
    n: 11, org: ORG.municipal, name: 'Götgatan 93', address: 'Götgatan 93, Stockholm',
    location: { lat: 59.31092, lng: 18.07498 }, controllers: 1, policy: { maxMinutes: 45 },
    doors: [
      ['entrance', 'Entré Götgatan 93', 0, 1, 'entre'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['floor', 'Plan 4, trapphusdörr', 4, 1, 'plan-4'],
    ],
  },
  {
    n: 12, org: ORG.brf, name: 'Brf Nytorgsvinkeln, Ringvägen 100', address: 'Ringvägen 100, Stockholm',
    location: { lat: 59.30892, lng: 18.08118 }, controllers: 2, policy: { maxMinutes: 60 },
    doors: [
      ['entrance', 'Entré Ringvägen 100', 0, 1, 'entre'],
      ['stairwell', 'Trapphus', 0, 1, 'trapp'],
      ['elevator', 'Hiss (bårhiss)', 0, 1, 'hiss'],
      ['garage', 'Garageport', -1, 2, 'garage'],
    ],
  },
];

/** Seconds a door stays unlocked on a pulse, by kind: longer where a stretcher goes through. */
const PULSE_SECONDS: Record<DoorKind, number> = {
  entrance: 6, gate: 8, garage: 10, stairwell: 5, floor: 5, elevator: 5, apartment: 4,
};

const pad2 = (n: number) => String(n).padStart(2, '0');

/** `bld-01` for building 1. */
export function demoBuildingId(n: number): string {
  return `bld-${pad2(n)}`;
}

/**
 * The demo district as plain domain objects. Pure: the same `now` gives the same objects.
 *
 * @example
 * const d = demoDistrict({ now: Date.now() });
 * d.doors.filter((x) => x.buildingId === 'bld-01').map((x) => x.ref); // ['entre', 'trapp-a', …]
 */
export function demoDistrict(opts: { now?: number } = {}): DemoDistrict {
  const now = opts.now ?? DEMO_EPOCH;

  const organisations: Organisation[] = ORGANISATIONS.map((o) => ({ ...o, createdAt: now }));
  const agencies: Agency[] = AGENCIES.map((a) => ({ ...a }));

  const units: Unit[] = [];
  const tags: Tag[] = [];
  for (const u of UNITS) {
    const unitId = demoUnitId(u.callSign);
    units.push({ id: unitId, agencyId: DEMO_AGENCY[u.kind === 'fire' ? 'fire' : 'ambulance'], callSign: u.callSign });
    u.tags.forEach((uid, i) => {
      tags.push({ id: `tag-${unitId.slice('unit-'.length)}-${i + 1}`, uid, label: `${u.callSign} bricka ${i + 1}`, unitId, status: 'active' });
    });
  }

  const buildings: Building[] = [];
  const controllers: DemoController[] = [];
  const doors: Door[] = [];
  let ctlSerial = 0;
  for (const b of BUILDINGS) {
    const buildingId = demoBuildingId(b.n);
    buildings.push({
      id: buildingId,
      orgId: b.org,
      name: b.name,
      address: b.address,
      location: { ...b.location },
      policy: {
        enabled: b.policy.enabled ?? true,
        maxMinutes: b.policy.maxMinutes ?? 30,
        allowedAgencyIds: [...(b.policy.allowedAgencyIds ?? [])],
        doorIds: [...(b.policy.doorIds ?? [])],
      },
      createdAt: now,
      updatedAt: now,
    });
    const ctlIds: string[] = [];
    for (let i = 0; i < b.controllers; i++) {
      ctlSerial += 1;
      const id = `ctl-sofa-${pad2(ctlSerial)}`;
      ctlIds.push(id);
      controllers.push({ id, buildingId, vendor: DEMO_VENDOR, createdAt: now });
    }
    b.doors.forEach(([kind, name, floor, ctl, ref, emergency], i) => {
      const controllerId = ctlIds[ctl - 1];
      if (controllerId === undefined) throw new Error(`demo district: ${buildingId} has no controller ${ctl}`);
      doors.push({
        id: `door-${pad2(b.n)}-${i + 1}`,
        buildingId,
        name,
        kind,
        ...(floor !== undefined ? { floor } : {}),
        routeOrder: i + 1,
        controllerId,
        ref,
        pulseSeconds: PULSE_SECONDS[kind],
        emergency: emergency ?? true,
      });
    });
  }

  const user = (id: string, username: string, displayName: string, role: Role, more: Partial<DemoUser> = {}): DemoUser => ({
    id, username, displayName, role, ...more, disabled: false, createdAt: now,
  });
  const users: DemoUser[] = [
    user('user-admin', DEMO_USERNAMES.admin, 'Alva Administratör', 'admin', { orgId: ORG.operator }),
    user('user-dispatch', DEMO_USERNAMES.dispatcher, 'Dana Larmoperatör', 'dispatcher', { orgId: ORG.operator }),
    user('user-responder', DEMO_USERNAMES.responder, 'Rikard Rökdykare (RTJ 2310)', 'responder', { orgId: ORG.fire, unitId: demoUnitId('RTJ 2310') }),
    user('user-amb3010', DEMO_USERNAMES.responderAmbulance, 'Amira Ambulanssjuksköterska (AMB 3010)', 'responder', { orgId: ORG.ambulance, unitId: demoUnitId('AMB 3010') }),
    user('user-owner', DEMO_USERNAMES.owner, 'Olle Fastighetsförvaltare (Söderporten)', 'owner', { orgId: ORG.municipal }),
    user('user-owner-brf', DEMO_USERNAMES.ownerBrf, 'Britta Styrelseledamot (Brf Nytorgsvinkeln)', 'owner', { orgId: ORG.brf }),
  ];

  return { organisations, agencies, units, tags, buildings, controllers, doors, users };
}
