/**
 * Offline base layer for the dispatch map of the demo district: no tile server at run time.
 * A GeoJSON FeatureCollection (RFC 7946: positions are [lng, lat], outer rings counter-clockwise)
 * with the district boundary, street centre lines, Medborgarplatsen and Nytorget as polygons, and
 * an outline per demo building (`buildingId` as in district.ts).
 *
 * Coordinates are APPROXIMATE and hand-made for the demo from general knowledge of the street
 * grid — no map data (OpenStreetMap or other) was copied. Streets are simplified to a few
 * vertices; building outlines are plain rectangles of a plausible size, not real footprints.
 * Kept here as a TS module (not a .geojson file) so `tsc` ships it in dist.
 */

/** [lng, lat], WGS 84. */
export type Position = [lng: number, lat: number];

export type BaseMapProperties =
  | { kind: 'district'; name: string }
  | { kind: 'street'; name: string }
  | { kind: 'square'; name: string }
  | { kind: 'building'; buildingId: string; name: string };

export type BaseMapGeometry = { type: 'LineString'; coordinates: Position[] } | { type: 'Polygon'; coordinates: Position[][] };

export interface BaseMapFeature {
  type: 'Feature';
  id: string;
  properties: BaseMapProperties;
  geometry: BaseMapGeometry;
}

export interface BaseMap {
  type: 'FeatureCollection';
  features: BaseMapFeature[];
}

export const BASEMAP_NOTE = 'Approximate, hand-made outline of part of Södermalm, Stockholm, for the Smart Passage demo. No map data copied.';

const M_PER_DEG_LAT = 111_320;
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * A closed, counter-clockwise rectangle `widthM` (east–west) by `depthM` (north–south) around
 * `centre`, turned `turnDeg` clockwise (the grid east of Götgatan leans a few degrees).
 */
export function rectangle(centre: Position, widthM: number, depthM: number, turnDeg = 0): Position[] {
  const [lng0, lat0] = centre;
  const mPerDegLng = M_PER_DEG_LAT * Math.cos((lat0 * Math.PI) / 180);
  const t = (-turnDeg * Math.PI) / 180;
  const corner = (x: number, y: number): Position => {
    const xr = x * Math.cos(t) - y * Math.sin(t);
    const yr = x * Math.sin(t) + y * Math.cos(t);
    return [round6(lng0 + xr / mPerDegLng), round6(lat0 + yr / M_PER_DEG_LAT)];
  };
  const w = widthM / 2;
  const h = depthM / 2;
  // SW → SE → NE → NW → SW: counter-clockwise with east to the right and north up.
  const ring = [corner(-w, -h), corner(w, -h), corner(w, h), corner(-w, h)];
  return [...ring, ring[0] as Position];
}

const street = (name: string, coordinates: Position[]): BaseMapFeature => ({
  type: 'Feature',
  id: `street-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`,
  properties: { kind: 'street', name },
  geometry: { type: 'LineString', coordinates },
});

const polygon = (id: string, properties: BaseMapProperties, ring: Position[]): BaseMapFeature => ({
  type: 'Feature',
  id,
  properties,
  geometry: { type: 'Polygon', coordinates: [ring] },
});

// Street centre lines, west → east and north → south. Hand-approximated.
const STREETS: BaseMapFeature[] = [
  street('Götgatan', [[18.0712, 59.3192], [18.0719, 59.3168], [18.0726, 59.3145], [18.0734, 59.312], [18.0745, 59.31], [18.0761, 59.3078]]),
  street('Swedenborgsgatan', [[18.0698, 59.3158], [18.0704, 59.3132], [18.0712, 59.3098]]),
  street('Östgötagatan', [[18.0757, 59.3178], [18.0759, 59.3144], [18.0762, 59.3112], [18.0766, 59.3082]]),
  street('Södermannagatan', [[18.0789, 59.3176], [18.0791, 59.3144], [18.0794, 59.3112], [18.0797, 59.3084]]),
  street('Nytorgsgatan', [[18.0824, 59.3174], [18.0826, 59.3144], [18.0829, 59.3112], [18.0832, 59.3086]]),
  street('Renstiernas gata', [[18.0862, 59.3178], [18.0864, 59.3146], [18.0867, 59.3114], [18.087, 59.3089]]),
  street('Tjärhovsgatan', [[18.0724, 59.3156], [18.0758, 59.3156], [18.0824, 59.3158], [18.0878, 59.3161]]),
  street('Folkungagatan', [[18.0726, 59.3142], [18.0759, 59.3142], [18.0826, 59.3143], [18.0864, 59.3145], [18.0915, 59.3148]]),
  street('Skånegatan', [[18.0732, 59.3127], [18.0791, 59.3127], [18.0864, 59.3129], [18.0905, 59.3131]]),
  street('Bondegatan', [[18.0736, 59.3115], [18.0794, 59.3115], [18.0867, 59.3117], [18.0908, 59.3119]]),
  street('Åsögatan', [[18.0743, 59.3102], [18.0795, 59.3102], [18.0868, 59.3104], [18.091, 59.3106]]),
  street('Ringvägen', [[18.0752, 59.3081], [18.0797, 59.3083], [18.0832, 59.3085], [18.0871, 59.3088], [18.0912, 59.3092]]),
];

const SQUARES: BaseMapFeature[] = [
  polygon('square-medborgarplatsen', { kind: 'square', name: 'Medborgarplatsen' },
    [[18.0729, 59.3144], [18.0754, 59.3144], [18.0754, 59.3154], [18.0727, 59.3154], [18.0729, 59.3144]]),
  polygon('square-nytorget', { kind: 'square', name: 'Nytorget' },
    [[18.0797, 59.3117], [18.0824, 59.3117], [18.0824, 59.3125], [18.0797, 59.3125], [18.0797, 59.3117]]),
];

/** Building outlines: centre [lng, lat], width east–west and depth north–south in metres, turn. */
const FOOTPRINTS: readonly { buildingId: string; name: string; centre: Position; w: number; d: number; turn?: number }[] = [
  { buildingId: 'bld-01', name: 'Götgatan 78', centre: [18.0717, 59.3135], w: 22, d: 42, turn: 9 },
  { buildingId: 'bld-02', name: 'Folkungagatan 56', centre: [18.0776, 59.31375], w: 40, d: 20 },
  { buildingId: 'bld-03', name: 'Östgötagatan 44', centre: [18.07535, 59.3121], w: 20, d: 40, turn: 3 },
  { buildingId: 'bld-04', name: 'Skånegatan 83', centre: [18.0810, 59.31305], w: 40, d: 22 },
  { buildingId: 'bld-05', name: 'Nytorgsgatan 25', centre: [18.0835, 59.3136], w: 20, d: 40, turn: 3 },
  { buildingId: 'bld-06', name: 'Bondegatan 46', centre: [18.0848, 59.31115], w: 40, d: 20 },
  { buildingId: 'bld-07', name: 'Renstiernas gata 29', centre: [18.0858, 59.3135], w: 20, d: 40, turn: 3 },
  { buildingId: 'bld-08', name: 'Åsögatan 122', centre: [18.0778, 59.31065], w: 40, d: 20 },
  { buildingId: 'bld-09', name: 'Södermannagatan 21', centre: [18.07982, 59.315], w: 20, d: 38, turn: 3 },
  { buildingId: 'bld-10', name: 'Tjärhovsgatan 30', centre: [18.0775, 59.31525], w: 38, d: 20 },
  { buildingId: 'bld-11', name: 'Götgatan 93', centre: [18.075, 59.3109], w: 22, d: 40, turn: 12 },
  { buildingId: 'bld-12', name: 'Ringvägen 100', centre: [18.0812, 59.30895], w: 50, d: 22, turn: -3 },
];

const BUILDINGS: BaseMapFeature[] = FOOTPRINTS.map((f) =>
  polygon(`building-${f.buildingId}`, { kind: 'building', buildingId: f.buildingId, name: f.name }, rectangle(f.centre, f.w, f.d, f.turn)),
);

const DISTRICT: BaseMapFeature = polygon('district-sodermalm-demo', { kind: 'district', name: 'Södermalm (demo district)' },
  [[18.069, 59.3075], [18.0925, 59.3075], [18.0925, 59.3195], [18.069, 59.3195], [18.069, 59.3075]]);

/** The demo district's base layer: boundary first, then squares, streets, buildings (draw order). */
export const basemap: BaseMap = {
  type: 'FeatureCollection',
  features: [DISTRICT, ...SQUARES, ...STREETS, ...BUILDINGS],
};
