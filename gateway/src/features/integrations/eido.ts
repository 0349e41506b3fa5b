/**
 * NENA EIDO (NENA-STA-021 Emergency Incident Data Object, JSON form) → our incident (issue 8).
 * Pure. EIDO is a large document of components that point at each other by `$ref`; we take the
 * little a door-opening gateway needs and ignore the rest (gateway/docs/CAD.md lists both):
 *
 * - incidentComponent[0].incidentTrackingIdentifier → the CAD id (idempotency key) and `ref`
 * - incidentTypeCommonRegistryText / …Code / incidentTypeLocalRegistryText (first) → `kind`
 * - the locationComponent that incidentComponent.locationReference.$ref names (else the first):
 *   a geodetic point → `location`, a civic address → `address`. `locationByValue` may be the
 *   PIDF-LO XML string the standard carries (gml:pos, ca:RD/STS/HNO/PC/A3), or an object with
 *   latitude/longitude, a GeoJSON Point or a `civicAddress` object.
 * - personComponent / callComponent: names, phone numbers and callback numbers → `note`
 * - notesComponent texts → appended to `note`
 * - incidentComponent.incidentCreationTimeStamp (else the message's lastUpdateTimeStamp) → `reportedAt`
 */
import type { LatLng } from '../../domain/types.js';

export interface CadIncidentInput {
  /** The CAD's own incident id: the idempotency key, kept as the incident's `ref`. */
  externalId: string;
  kind: string;
  location: LatLng;
  address?: string;
  note?: string;
  /** ms epoch when the CAD says the incident was created. */
  reportedAt?: number;
}

/** Why an EIDO document could not be mapped: a JSON pointer and a message (answered as 400). */
export class EidoError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'EidoError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
const text = (v: unknown, max = 200): string | undefined => {
  const first: unknown = Array.isArray(v) ? (v as unknown[]).find((x) => typeof x === 'string' && x.trim() !== '') : v;
  return typeof first === 'string' && first.trim() !== '' ? first.trim().slice(0, max) : undefined;
};
const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};

/** True when the body looks like an EIDO document rather than our own incident body. */
export const isEido = (body: unknown): boolean => isObj(body) && 'incidentComponent' in body;

function point(lat: number | undefined, lng: number | undefined): LatLng | undefined {
  if (lat === undefined || lng === undefined) return undefined;
  if (lat < -90 || lat > 90 || lng < -180 || lng > 180) return undefined;
  return { lat, lng };
}

/** The first `<prefix:tag>value</prefix:tag>` in an XML string (PIDF-LO), any namespace prefix. */
function xmlValue(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<(?:[A-Za-z][\\w.-]*:)?${tag}(?:\\s[^>]*)?>([^<]{1,300})</(?:[A-Za-z][\\w.-]*:)?${tag}>`).exec(xml);
  return m?.[1]?.trim() || undefined;
}

/** NENA/RFC 5139 civic address elements → one line, "RD STS HNO, PC A3". */
function civicLine(get: (k: string) => string | undefined): string | undefined {
  const street = [get('PRD'), get('RD'), get('STS'), get('POD')].filter(Boolean).join(' ');
  const house = [get('HNO'), get('HNS')].filter(Boolean).join('');
  const first = [street, house].filter(Boolean).join(' ');
  const second = [get('PC'), get('A3')].filter(Boolean).join(' ');
  const line = [first, second].filter(Boolean).join(', ');
  return line === '' ? undefined : line.slice(0, 200);
}

function fromPidfLo(xml: string): { location?: LatLng; address?: string } {
  const pos = xmlValue(xml, 'pos');
  const [a, b] = (pos ?? '').split(/\s+/).map(Number);
  // GML pos in EPSG:4326 is "latitude longitude" (RFC 5491 §3).
  const location = point(Number.isFinite(a) ? a : undefined, Number.isFinite(b) ? b : undefined);
  const address = civicLine((k) => xmlValue(xml, k));
  return { ...(location ? { location } : {}), ...(address !== undefined ? { address } : {}) };
}

function fromObject(v: Obj): { location?: LatLng; address?: string } {
  let location = point(num(v['latitude'] ?? v['lat']), num(v['longitude'] ?? v['lon'] ?? v['lng']));
  const geo = isObj(v['point']) ? v['point'] : isObj(v['geometry']) ? v['geometry'] : v;
  if (!location && Array.isArray(geo['coordinates'])) location = point(num(geo['coordinates'][1]), num(geo['coordinates'][0])); // GeoJSON: [lng, lat]
  if (!location && typeof geo['pos'] === 'string') location = fromPidfLo(`<pos>${geo['pos']}</pos>`).location;
  const civic = isObj(v['civicAddress']) ? v['civicAddress'] : undefined;
  const address = civic ? civicLine((k) => text(civic[k], 100)) : text(v['address']);
  return { ...(location ? { location } : {}), ...(address !== undefined ? { address } : {}) };
}

function componentId(c: Obj): string | undefined {
  return text(c['$id']) ?? text(c['componentIdentifier']);
}

function refOf(v: unknown): string | undefined {
  const first = list(v)[0];
  return isObj(first) ? text(first['$ref']) : text(first);
}

function timeOf(v: unknown): number | undefined {
  const s = text(v, 64);
  const t = s === undefined ? NaN : Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}

/** The caller: names, phones and callback numbers from person and call components. */
function callerNote(doc: Obj): string | undefined {
  const parts: string[] = [];
  for (const c of [...list(doc['callComponent']), ...list(doc['personComponent'])]) {
    if (!isObj(c)) continue;
    for (const [k, v] of Object.entries(c)) {
      if (!/name|phone|callback|telephone/i.test(k)) continue;
      const s = isObj(v) ? Object.values(v).map((x) => text(x, 80)).filter(Boolean).join(' ') : text(v, 80);
      if (s) parts.push(`${k}: ${s}`);
    }
  }
  for (const n of list(doc['notesComponent'])) {
    const s = isObj(n) ? (text(n['notesActionComments']) ?? text(n['notesText']) ?? text(n['text'])) : text(n);
    if (s) parts.push(s);
  }
  const note = [...new Set(parts)].join('; ');
  return note === '' ? undefined : note.slice(0, 1000);
}

/** Map an EIDO document; throws EidoError naming the first part it cannot use. */
export function fromEido(doc: unknown): CadIncidentInput {
  if (!isObj(doc)) throw new EidoError('', 'an EIDO document is a JSON object');
  const inc = list(doc['incidentComponent'])[0];
  if (!isObj(inc)) throw new EidoError('/incidentComponent/0', 'an incidentComponent is required');
  const externalId = text(inc['incidentTrackingIdentifier'], 64);
  if (externalId === undefined) throw new EidoError('/incidentComponent/0/incidentTrackingIdentifier', 'the incident tracking identifier is required');
  const kind = text(inc['incidentTypeCommonRegistryText'], 64) ?? text(inc['incidentTypeCommonRegistryCode'], 64) ?? text(inc['incidentTypeLocalRegistryText'], 64) ?? 'unknown';

  const locations = list(doc['locationComponent']).filter(isObj);
  const wanted = refOf(inc['locationReference']);
  const loc = (wanted !== undefined ? locations.find((l) => componentId(l) === wanted) : undefined) ?? locations[0];
  if (!loc) throw new EidoError('/locationComponent', 'a locationComponent with a position is required');
  const byValue = loc['locationByValue'] ?? loc;
  const found = typeof byValue === 'string' ? fromPidfLo(byValue) : isObj(byValue) ? fromObject(byValue) : {};
  if (!found.location) {
    // A civic address alone would need geocoding, which the gateway does not do.
    throw new EidoError('/locationComponent/locationByValue', 'the location has no geodetic position (latitude/longitude)');
  }
  const note = callerNote(doc);
  const reportedAt = timeOf(inc['incidentCreationTimeStamp']) ?? timeOf(inc['lastUpdateTimeStamp']) ?? timeOf(doc['lastUpdateTimeStamp']);
  return {
    externalId,
    kind,
    location: found.location,
    ...(found.address !== undefined ? { address: found.address } : {}),
    ...(note !== undefined ? { note } : {}),
    ...(reportedAt !== undefined ? { reportedAt } : {}),
  };
}
