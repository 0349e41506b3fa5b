// Issue 8: the webhook signature's documented test vector and verification, and the EIDO mapping.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EidoError, fromEido, isEido } from '../../../src/features/integrations/eido.js';
import { apiKeyOf, newApiKey } from '../../../src/features/integrations/api-keys.js';
import { SIGNING_TEST_VECTOR, checkWebhookUrl, signatureHeader, verifySignature } from '../../../src/features/webhooks/signing.js';

describe('webhook signatures', () => {
  it('the documented test vector is HMAC-SHA256(secret, t + "." + body), and the doc shows the same', () => {
    const v = SIGNING_TEST_VECTOR;
    expect(createHmac('sha256', v.secret).update(`${v.t}.${v.body}`).digest('hex')).toBe(v.v1);
    expect(signatureHeader(v.secret, v.body, v.t * 1000)).toBe(`t=${v.t},v1=${v.v1}`);
    const doc = readFileSync(new URL('../../../docs/WEBHOOKS.md', import.meta.url), 'utf8');
    expect(doc).toContain(v.v1);
    expect(doc).toContain(v.body);
  });

  it('verifies: a changed body, another secret or a stale time fail', () => {
    const h = signatureHeader('whsec_a', '{"x":1}', 1_700_000_000_000);
    expect(verifySignature('whsec_a', '{"x":1}', h, 1_700_000_010_000)).toBe(true);
    expect(verifySignature('whsec_a', '{"x":2}', h, 1_700_000_010_000)).toBe(false);
    expect(verifySignature('whsec_b', '{"x":1}', h, 1_700_000_010_000)).toBe(false);
    expect(verifySignature('whsec_a', '{"x":1}', h, 1_700_001_000_000)).toBe(false);
    expect(verifySignature('whsec_a', '{"x":1}', 'garbage', 1_700_000_010_000)).toBe(false);
  });

  it('accepts https URLs, http only when allowed, never credentials', () => {
    expect(checkWebhookUrl('https://hooks.example.org/x?token=1', false)).toBe('https://hooks.example.org/x?token=1');
    expect(() => checkWebhookUrl('http://hooks.example.org/', false)).toThrow(/https/);
    expect(checkWebhookUrl('http://127.0.0.1:8080/', true)).toBe('http://127.0.0.1:8080/');
    expect(() => checkWebhookUrl('ftp://x.example/', true)).toThrow();
    expect(() => checkWebhookUrl('https://u:p@x.example/', false)).toThrow(/credentials/);
    expect(() => checkWebhookUrl('not a url', false)).toThrow();
  });
});

describe('API keys', () => {
  it('look like sp_int_<43 base64url> and are read from Bearer or X-API-Key', () => {
    const k = newApiKey();
    expect(k).toMatch(/^sp_int_[A-Za-z0-9_-]{43}$/);
    expect(apiKeyOf({ headers: { authorization: `Bearer ${k}` } })).toBe(k);
    expect(apiKeyOf({ headers: { 'x-api-key': k } })).toBe(k);
    expect(apiKeyOf({ headers: { authorization: 'Bearer eyJhbGciOi.x.y' } })).toBeUndefined();
  });
});

describe('EIDO mapping', () => {
  const base = { incidentComponent: [{ incidentTrackingIdentifier: 'T-1', incidentTypeCommonRegistryCode: 'FIRE', locationReference: { $ref: 'L' } }] };

  it('takes the referenced location: a GeoJSON point, an object with latitude/longitude, a civicAddress object', () => {
    expect(isEido(base)).toBe(true);
    expect(isEido({ cadId: 'x' })).toBe(false);
    const geo = fromEido({ ...base, locationComponent: [{ componentIdentifier: 'other', locationByValue: { latitude: 1, longitude: 2 } }, { componentIdentifier: 'L', locationByValue: { type: 'Point', coordinates: [18.07, 59.31] } }] });
    expect(geo).toEqual({ externalId: 'T-1', kind: 'FIRE', location: { lat: 59.31, lng: 18.07 } });
    const obj = fromEido({ ...base, locationComponent: [{ $id: 'L', locationByValue: { latitude: '59.3', longitude: '18.1', civicAddress: { RD: 'Ringvägen', HNO: '5', A3: 'Stockholm' } } }] });
    expect(obj.location).toEqual({ lat: 59.3, lng: 18.1 });
    expect(obj.address).toBe('Ringvägen 5, Stockholm');
  });

  it('reads a PIDF-LO string: gml:pos is "lat lon"; caller and notes become the note; the creation time is kept', () => {
    const r = fromEido({
      incidentComponent: { incidentTrackingIdentifier: 'T-2', incidentTypeCommonRegistryText: 'Medical', incidentCreationTimeStamp: '2026-01-02T03:04:05Z' },
      locationComponent: [{ locationByValue: '<gml:Point><gml:pos>59.31 18.07</gml:pos></gml:Point><ca:RD>Götgatan</ca:RD><ca:HNO>1</ca:HNO>' }],
      callComponent: [{ callbackNumber: '+4670000000' }],
      notesComponent: [{ notesActionComments: 'smoke on floor 3' }],
    });
    expect(r).toMatchObject({ externalId: 'T-2', kind: 'Medical', location: { lat: 59.31, lng: 18.07 }, address: 'Götgatan 1', reportedAt: Date.parse('2026-01-02T03:04:05Z') });
    expect(r.note).toBe('callbackNumber: +4670000000; smoke on floor 3');
  });

  it('refuses what it cannot use, naming the part', () => {
    const path = (doc: unknown) => {
      try {
        fromEido(doc);
        return 'mapped';
      } catch (err) {
        return err instanceof EidoError ? err.path : 'other';
      }
    };
    expect(path({ incidentComponent: [] })).toBe('/incidentComponent/0');
    expect(path({ incidentComponent: [{}] })).toBe('/incidentComponent/0/incidentTrackingIdentifier');
    expect(path(base)).toBe('/locationComponent');
    expect(path({ ...base, locationComponent: [{ locationByValue: { latitude: 91, longitude: 0 } }] })).toBe('/locationComponent/locationByValue');
    // The kind defaults when the CAD sends none.
    expect(fromEido({ incidentComponent: [{ incidentTrackingIdentifier: 'x' }], locationComponent: [{ latitude: 1, longitude: 1 }] }).kind).toBe('unknown');
  });

  it('any JSON at all either maps to a valid incident or is refused with an EidoError, never anything else', () => {
    const component = fc.dictionary(fc.constantFrom('incidentTrackingIdentifier', 'incidentTypeCommonRegistryText', 'locationReference', 'locationByValue', 'latitude', 'longitude', 'coordinates', 'civicAddress', '$id', 'personName', 'callbackNumber', 'pos'), fc.jsonValue({ maxDepth: 3 }));
    const doc = fc.record({ incidentComponent: fc.oneof(fc.array(component, { maxLength: 2 }), component, fc.jsonValue()), locationComponent: fc.oneof(fc.array(component, { maxLength: 3 }), fc.jsonValue()), personComponent: fc.jsonValue(), notesComponent: fc.jsonValue() }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.oneof(doc, fc.jsonValue()), (d) => {
        try {
          const r = fromEido(d);
          expect(r.externalId.length).toBeGreaterThan(0);
          expect(r.externalId.length).toBeLessThanOrEqual(64);
          expect(r.kind.length).toBeLessThanOrEqual(64);
          expect(Math.abs(r.location.lat)).toBeLessThanOrEqual(90);
          expect(Math.abs(r.location.lng)).toBeLessThanOrEqual(180);
          expect((r.address ?? '').length).toBeLessThanOrEqual(200);
          expect((r.note ?? '').length).toBeLessThanOrEqual(1000);
        } catch (err) {
          expect(err).toBeInstanceOf(EidoError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
