/**
 * What the dispatch map draws before any live data (issue 5): an offline GeoJSON base layer, the
 * optional tile layer (SP_TILE_URL, SP_TILE_ATTRIBUTION) and where to open. The map must work
 * with no internet, so the base layer is always there: the operator's SP_BASEMAP_FILE, else the
 * demo district's bundled one (demo/basemap.ts), which is all we ship.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { LatLng } from '../../domain/types.js';
import { route, type RouteDef } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';

const Feature = Type.Object(
  {
    type: Type.Literal('Feature'),
    id: Type.Optional(Type.Union([Type.String(), Type.Number()])),
    properties: Type.Record(Type.String(), Type.Unknown()),
    geometry: Type.Object({ type: Type.String(), coordinates: Type.Unknown() }, { additionalProperties: true }),
  },
  { additionalProperties: true },
);

export const BaseMapSchema = Type.Object({ type: Type.Literal('FeatureCollection'), features: Type.Array(Feature) }, { additionalProperties: true });
export type BaseMapGeoJson = Static<typeof BaseMapSchema>;

export const MapConfigView = Type.Object({
  tileUrl: Type.Optional(Type.String()),
  attribution: Type.Optional(Type.String()),
  basemap: BaseMapSchema,
  center: Type.Object({ lat: Type.Number(), lng: Type.Number() }),
  zoom: Type.Integer({ minimum: 0, maximum: 19 }),
});
export type MapConfigView = Static<typeof MapConfigView>;

export interface MapRoutesDeps {
  store: StorePort;
  basemap: BaseMapGeoJson;
  tileUrl?: string;
  attribution?: string;
}

interface Box {
  south: number;
  north: number;
  west: number;
  east: number;
}

function grow(box: Box | undefined, lng: number, lat: number): Box {
  if (!box) return { south: lat, north: lat, west: lng, east: lng };
  return { south: Math.min(box.south, lat), north: Math.max(box.north, lat), west: Math.min(box.west, lng), east: Math.max(box.east, lng) };
}

/** The bounding box of every [lng, lat] position in a GeoJSON geometry's coordinates (RFC 7946). */
function boxOfCoordinates(c: unknown, box: Box | undefined): Box | undefined {
  if (!Array.isArray(c)) return box;
  if (c.length >= 2 && typeof c[0] === 'number' && typeof c[1] === 'number') return grow(box, c[0], c[1]);
  let out = box;
  for (const x of c) out = boxOfCoordinates(x, out);
  return out;
}

/** A zoom that fits the box in roughly a 1000-pixel-wide map (256-pixel tiles), clamped to 3…17. */
function zoomFor(box: Box): number {
  const span = Math.max(box.east - box.west, (box.north - box.south) * 2, 1e-4);
  return Math.max(3, Math.min(17, Math.floor(Math.log2((360 * 1000) / (256 * span)))));
}

/** Where the map opens: around the buildings when there are any, else around the base layer. */
export function viewOf(buildings: readonly { location: LatLng }[], basemap: BaseMapGeoJson): { center: LatLng; zoom: number } {
  let box: Box | undefined;
  for (const b of buildings) box = grow(box, b.location.lng, b.location.lat);
  if (!box) for (const f of basemap.features) box = boxOfCoordinates(f.geometry.coordinates, box);
  if (!box) return { center: { lat: 0, lng: 0 }, zoom: 3 };
  const round = (x: number) => Math.round(x * 1e6) / 1e6;
  return { center: { lat: round((box.south + box.north) / 2), lng: round((box.west + box.east) / 2) }, zoom: zoomFor(box) };
}

export function mapRoutes(d: MapRoutesDeps): RouteDef[] {
  return [
    route({
      method: 'get',
      path: '/api/v1/map',
      summary: 'The map: offline GeoJSON base layer, optional tile layer, where to open',
      description: '`tileUrl` and `attribution` only when the gateway is configured with SP_TILE_URL. `center`/`zoom` frame the buildings, else the base layer.',
      tags: ['map'],
      auth: ['admin', 'dispatcher', 'responder', 'owner'],
      responses: { 200: MapConfigView },
      handler: async ({ setHeader }) => {
        // Up to 10 000 buildings (issue 5): the locations only, a page at a time.
        const buildings: { location: LatLng }[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await d.store.list('buildings', { limit: 1000, ...(after !== undefined ? { after } : {}) });
          buildings.push(...page);
          if (page.length < 1000) break;
          after = page[page.length - 1]?.id;
        }
        // Per user (the API is behind a token) and short: a building added shows up soon.
        setHeader('Cache-Control', 'private, max-age=300');
        return {
          ...(d.tileUrl !== undefined ? { tileUrl: d.tileUrl } : {}),
          ...(d.tileUrl !== undefined && d.attribution !== undefined ? { attribution: d.attribution } : {}),
          basemap: d.basemap,
          ...viewOf(buildings, d.basemap),
        };
      },
    }),
  ];
}
