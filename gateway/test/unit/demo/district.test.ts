// The demo district (data) and its offline base map: counts, references, wire-safe names, geography.
import { describe, expect, it } from 'vitest';
import { ControllerId, DoorRef, TagUid } from '@smart-passage/protocol';
import { DEMO_BBOX, DEMO_CENTRE, DEMO_EPOCH, DEMO_USERNAMES, demoDistrict } from '../../../src/demo/district.js';
import { demoControllerDoors } from '../../../src/demo/seed.js';
import { basemap, rectangle, type BaseMapFeature, type Position } from '../../../src/demo/basemap.js';
import { ROLES } from '../../../src/domain/types.js';

const d = demoDistrict({ now: 1_780_000_000_000 });

/** The protocol's own patterns, so a change there shows up here. */
const pattern = (schema: { pattern?: string }) => new RegExp(schema.pattern ?? '(?!)');

/** Ray casting over a closed ring of [lng, lat]. */
function inRing(p: Position, ring: Position[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i] as Position;
    const [xj, yj] = ring[j] as Position;
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Twice the signed area (shoelace): positive for a counter-clockwise ring. */
function signedArea2(ring: Position[]): number {
  let s = 0;
  for (let i = 0; i + 1 < ring.length; i++) {
    const [x1, y1] = ring[i] as Position;
    const [x2, y2] = ring[i + 1] as Position;
    s += x1 * y2 - x2 * y1;
  }
  return s;
}

const outer = (f: BaseMapFeature): Position[] => {
  if (f.geometry.type !== 'Polygon') throw new Error(`${f.id} is not a polygon`);
  return f.geometry.coordinates[0] ?? [];
};

describe('demoDistrict', () => {
  it('has the documented size', () => {
    expect(d.buildings).toHaveLength(12);
    expect(d.doors).toHaveLength(40);
    expect(d.controllers).toHaveLength(15);
    expect(d.units).toHaveLength(6);
    expect(d.units.filter((u) => u.agencyId === 'ag-fire')).toHaveLength(3);
    expect(d.units.filter((u) => u.agencyId === 'ag-ambulance')).toHaveLength(3);
    expect(d.organisations.filter((o) => o.kind === 'owner')).toHaveLength(2);
    expect(new Set(d.agencies.map((a) => a.kind))).toEqual(new Set(['fire', 'ambulance']));
    expect(new Set(d.users.map((u) => u.role))).toEqual(new Set(ROLES));
    expect(d.users.map((u) => u.username).sort()).toEqual(Object.values(DEMO_USERNAMES).sort());
  });

  it('is pure and deterministic: same now, same objects; no now, the fixed epoch', () => {
    expect(demoDistrict({ now: 1_780_000_000_000 })).toEqual(d);
    const fixed = demoDistrict();
    expect(fixed.buildings.every((b) => b.createdAt === DEMO_EPOCH && b.updatedAt === DEMO_EPOCH)).toBe(true);
    // Nothing shared between calls: a caller may mutate what it got.
    fixed.buildings[0]?.policy.allowedAgencyIds.push('x');
    expect(demoDistrict().buildings[0]?.policy.allowedAgencyIds).toEqual([]);
  });

  it('has unique ids in every collection', () => {
    for (const [name, docs] of Object.entries(d)) {
      const ids = (docs as { id: string }[]).map((x) => x.id);
      expect(new Set(ids).size, name).toBe(ids.length);
    }
  });

  it('carries no secrets', () => {
    for (const u of d.users) expect(u).not.toHaveProperty('passwordHash');
    for (const c of d.controllers) {
      for (const k of ['publicKey', 'controllerKid', 'mqttPasswordHash', 'offlineSecret']) expect(c).not.toHaveProperty(k);
    }
  });

  it('links every door to a building and to a controller of that same building', () => {
    const buildings = new Set(d.buildings.map((b) => b.id));
    const ctlBuilding = new Map(d.controllers.map((c) => [c.id, c.buildingId]));
    for (const door of d.doors) {
      expect(buildings.has(door.buildingId), door.id).toBe(true);
      expect(ctlBuilding.get(door.controllerId), door.id).toBe(door.buildingId);
      expect(door.pulseSeconds).toBeGreaterThanOrEqual(1);
      expect(door.pulseSeconds).toBeLessThanOrEqual(30); // PROTOCOL door.pulse bound
    }
    for (const c of d.controllers) {
      expect(buildings.has(c.buildingId), c.id).toBe(true);
      expect(d.doors.some((x) => x.controllerId === c.id), `${c.id} drives no door`).toBe(true);
    }
    for (const b of d.buildings) {
      const n = d.controllers.filter((c) => c.buildingId === b.id).length;
      expect(n, b.id).toBeGreaterThanOrEqual(1);
      expect(n, b.id).toBeLessThanOrEqual(2);
    }
  });

  it('names doors and controllers as the wire protocol allows', () => {
    const ref = pattern(DoorRef);
    const ctl = pattern(ControllerId);
    for (const c of d.controllers) {
      expect(c.id).toMatch(ctl);
      expect(c.id).toMatch(/^ctl-sofa-\d{2}$/);
    }
    for (const door of d.doors) expect(door.ref).toMatch(ref);
    for (const c of d.controllers) {
      const refs = d.doors.filter((x) => x.controllerId === c.id).map((x) => x.ref);
      expect(new Set(refs).size, c.id).toBe(refs.length);
    }
  });

  it('gives each unit 2–3 tags with unique upper-case hex uids of 4 or 7 bytes', () => {
    const uid = pattern(TagUid);
    for (const t of d.tags) {
      expect(t.uid).toMatch(uid);
      expect([8, 14]).toContain(t.uid.length);
      expect(t.status).toBe('active');
    }
    expect(new Set(d.tags.map((t) => t.uid)).size).toBe(d.tags.length);
    for (const u of d.units) {
      const n = d.tags.filter((t) => t.unitId === u.id).length;
      expect(n, u.callSign).toBeGreaterThanOrEqual(2);
      expect(n, u.callSign).toBeLessThanOrEqual(3);
      expect(u.callSign).toMatch(/^(RTJ|AMB) \d{4}$/);
    }
    expect(d.units.map((u) => u.id)).toContain('unit-rtj-2310');
    expect(d.tags.find((t) => t.id === 'tag-rtj-2310-1')?.uid).toBe('F1231001');
  });

  it('numbers each building route contiguously from 1 with the street side first', () => {
    for (const b of d.buildings) {
      const route = d.doors.filter((x) => x.buildingId === b.id).sort((x, y) => x.routeOrder - y.routeOrder);
      expect(route.map((x) => x.routeOrder), b.id).toEqual(route.map((_, i) => i + 1));
      expect(['entrance', 'gate'], b.id).toContain(route[0]?.kind);
      expect(route.map((x) => x.id)).toEqual(route.map((x) => `${x.id.slice(0, 'door-01-'.length)}${x.routeOrder}`));
    }
  });

  it('has sane emergency policies: positive limits, known agencies, own doors; one building opted out', () => {
    const agencies = new Set(d.agencies.map((a) => a.id));
    for (const b of d.buildings) {
      expect(b.policy.maxMinutes, b.id).toBeGreaterThanOrEqual(30);
      expect(b.policy.maxMinutes, b.id).toBeLessThanOrEqual(60);
      for (const a of b.policy.allowedAgencyIds) expect(agencies.has(a), `${b.id} ${a}`).toBe(true);
      for (const id of b.policy.doorIds) expect(d.doors.find((x) => x.id === id)?.buildingId, `${b.id} ${id}`).toBe(b.id);
      expect(d.doors.some((x) => x.buildingId === b.id && x.emergency), b.id).toBe(true);
    }
    expect(d.buildings.filter((b) => !b.policy.enabled).map((b) => b.id)).toEqual(['bld-09']);
  });

  it('links owners, agencies and responders to what exists', () => {
    const orgs = new Map(d.organisations.map((o) => [o.id, o]));
    for (const b of d.buildings) expect(orgs.get(b.orgId)?.kind, b.id).toBe('owner');
    for (const a of d.agencies) expect(a.orgId === undefined || orgs.get(a.orgId)?.kind === 'agency').toBe(true);
    for (const u of d.users) {
      if (u.orgId !== undefined) expect(orgs.has(u.orgId), u.username).toBe(true);
      if (u.role === 'responder') expect(d.units.some((x) => x.id === u.unitId), u.username).toBe(true);
      if (u.role === 'owner') expect(orgs.get(u.orgId ?? '')?.kind, u.username).toBe('owner');
    }
    // Each owner has buildings of their own.
    for (const o of d.organisations.filter((x) => x.kind === 'owner')) {
      expect(d.buildings.filter((b) => b.orgId === o.id).length, o.name).toBeGreaterThanOrEqual(5);
    }
  });

  it('places every building on Södermalm, in the demo box', () => {
    const inBox = ({ lat, lng }: { lat: number; lng: number }) =>
      lat > DEMO_BBOX.south && lat < DEMO_BBOX.north && lng > DEMO_BBOX.west && lng < DEMO_BBOX.east;
    expect(inBox(DEMO_CENTRE)).toBe(true);
    for (const b of d.buildings) expect(inBox(b.location), b.id).toBe(true);
  });
});

describe('demoControllerDoors', () => {
  it('lists each controller once with its refs in route order', () => {
    const list = demoControllerDoors(d);
    expect(list.map((x) => x.controllerId)).toEqual(d.controllers.map((c) => c.id).sort());
    expect(list.reduce((n, x) => n + x.doors.length, 0)).toBe(d.doors.length);
    expect(list[0]).toEqual({ controllerId: 'ctl-sofa-01', buildingId: 'bld-01', doors: ['entre', 'trapp-a'] });
    expect(list[1]).toEqual({ controllerId: 'ctl-sofa-02', buildingId: 'bld-01', doors: ['hiss-a', 'plan-4', 'lgh-1402'] });
  });
});

describe('basemap', () => {
  it('is a GeoJSON FeatureCollection of well-formed features', () => {
    expect(basemap.type).toBe('FeatureCollection');
    const ids = basemap.features.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    const valid = (p: Position) => p.length === 2 && p[0] > 17.9 && p[0] < 18.2 && p[1] > 59.2 && p[1] < 59.4;
    for (const f of basemap.features) {
      expect(f.type).toBe('Feature');
      if (f.geometry.type === 'LineString') {
        expect(f.properties.kind, f.id).toBe('street');
        expect(f.geometry.coordinates.length).toBeGreaterThanOrEqual(2);
        expect(f.geometry.coordinates.every(valid), f.id).toBe(true);
      } else {
        expect(f.geometry.type).toBe('Polygon');
        expect(f.properties.kind, f.id).not.toBe('street');
        for (const ring of f.geometry.coordinates) {
          expect(ring.length, f.id).toBeGreaterThanOrEqual(4);
          expect(ring.every(valid), f.id).toBe(true);
          expect(ring[0], f.id).toEqual(ring[ring.length - 1]);
        }
        expect(signedArea2(outer(f)), `${f.id} outer ring counter-clockwise (RFC 7946)`).toBeGreaterThan(0);
      }
    }
    // Survives JSON, as it will be served.
    expect(JSON.parse(JSON.stringify(basemap))).toEqual(basemap);
    expect(JSON.stringify(basemap).length).toBeLessThan(200_000);
  });

  it('has the main streets, Medborgarplatsen, and the district boundary around every building', () => {
    const names = new Set(basemap.features.filter((f) => f.properties.kind === 'street').map((f) => (f.properties as { name: string }).name));
    for (const s of ['Götgatan', 'Folkungagatan', 'Skånegatan', 'Östgötagatan', 'Bondegatan', 'Åsögatan', 'Renstiernas gata', 'Ringvägen', 'Södermannagatan', 'Nytorgsgatan', 'Tjärhovsgatan']) {
      expect(names.has(s), s).toBe(true);
    }
    const square = basemap.features.find((f) => f.properties.kind === 'square' && f.properties.name === 'Medborgarplatsen');
    expect(square).toBeDefined();
    const districts = basemap.features.filter((f) => f.properties.kind === 'district');
    expect(districts).toHaveLength(1);
    const boundary = outer(districts[0] as BaseMapFeature);
    for (const b of d.buildings) expect(inRing([b.location.lng, b.location.lat], boundary), b.id).toBe(true);
  });

  it('outlines every demo building around its location, and no square covers one', () => {
    const outlines = basemap.features.filter((f) => f.properties.kind === 'building');
    expect(outlines).toHaveLength(d.buildings.length);
    const squares = basemap.features.filter((f) => f.properties.kind === 'square');
    for (const b of d.buildings) {
      const mine = outlines.filter((f) => f.properties.kind === 'building' && f.properties.buildingId === b.id);
      expect(mine, b.id).toHaveLength(1);
      const p: Position = [b.location.lng, b.location.lat];
      expect(inRing(p, outer(mine[0] as BaseMapFeature)), `${b.id} inside its outline`).toBe(true);
      for (const other of outlines.filter((f) => f !== mine[0])) expect(inRing(p, outer(other)), `${b.id} in ${other.id}`).toBe(false);
      for (const s of squares) expect(inRing(p, outer(s)), `${b.id} in ${s.id}`).toBe(false);
    }
  });

  it('rectangle() makes a closed counter-clockwise ring of the asked size', () => {
    const ring = rectangle([18.08, 59.313], 20, 40);
    expect(ring).toHaveLength(5);
    expect(ring[0]).toEqual(ring[4]);
    expect(signedArea2(ring)).toBeGreaterThan(0);
    const [sw, se, ne] = ring as [Position, Position, Position];
    const mPerDegLng = 111_320 * Math.cos((59.313 * Math.PI) / 180);
    expect((se[0] - sw[0]) * mPerDegLng).toBeCloseTo(20, 0);
    expect((ne[1] - se[1]) * 111_320).toBeCloseTo(40, 0);
    expect(inRing([18.08, 59.313], rectangle([18.08, 59.313], 20, 40, 30))).toBe(true);
  });
});
