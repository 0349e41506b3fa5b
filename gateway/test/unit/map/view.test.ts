// Where the dispatch map opens (GET /api/v1/map): around the buildings, else around the base layer.
import { describe, expect, it } from 'vitest';
import { basemap } from '../../../src/demo/basemap.js';
import { viewOf } from '../../../src/features/map/routes.js';

describe('viewOf', () => {
  it('frames the buildings when there are any', () => {
    const v = viewOf([{ location: { lat: 59.31, lng: 18.07 } }, { location: { lat: 59.316, lng: 18.086 } }], basemap);
    expect(v.center).toEqual({ lat: 59.313, lng: 18.078 });
    expect(v.zoom).toBeGreaterThanOrEqual(14);
    expect(v.zoom).toBeLessThanOrEqual(16);
  });

  it('frames the base layer when there are no buildings, and a single building at street level', () => {
    const v = viewOf([], basemap);
    expect(v.center.lat).toBeCloseTo(59.3135, 3);
    expect(v.center.lng).toBeCloseTo(18.08075, 3);
    expect(viewOf([{ location: { lat: 59.3, lng: 18.1 } }], basemap)).toEqual({ center: { lat: 59.3, lng: 18.1 }, zoom: 17 });
  });

  it('opens on the whole world when it has nothing to frame', () => {
    expect(viewOf([], { type: 'FeatureCollection', features: [] })).toEqual({ center: { lat: 0, lng: 0 }, zoom: 3 });
  });
});
