// The dispatch map in Debian's Chromium (issue 5; issue 7 scenario 5 made its circles one feature
// group with one tooltip and one click handler): each building is a circle on the canvas; hovering
// one names the building and its readiness (and follows a change of it while open), and a click on
// it opens the building's card. The circles' places on the screen are worked out as Leaflet
// projects them (Web Mercator, 256-pixel tiles) from the view the map opens on.
import { describe, expect, it } from 'vitest';
import { api, apiLogin, login, pageErrors, shot, useE2e } from './support/index.js';

const e2e = useE2e();

interface LatLng {
  lat: number;
  lng: number;
}

/** A point's pixel place in the world at `zoom`, as Leaflet's default CRS (EPSG:3857) puts it. */
function project(p: LatLng, zoom: number): { x: number; y: number } {
  const scale = 256 * 2 ** zoom;
  const sin = Math.sin((p.lat * Math.PI) / 180);
  return { x: ((p.lng + 180) / 360) * scale, y: (0.5 - Math.log((1 + sin) / (1 - sin)) / (4 * Math.PI)) * scale };
}

describe('the dispatch map', () => {
  it('hovering a building names it and its readiness, live; clicking it opens its card', async () => {
    const token = await apiLogin(e2e.gw, 'admin');
    const view = await api<{ center: LatLng; zoom: number }>(e2e.gw, token, 'GET', '/api/v1/map');
    const buildings = (await api<{ items: { id: string; name: string; location: LatLng }[] }>(e2e.gw, token, 'GET', '/api/v1/buildings?limit=20000')).items;

    const page = await e2e.page();
    await login(page, 'dispatch');
    const map = page.locator('.dispatch .leaflet-container');
    // Loaded: the legend counts every building, and the map has opened on the gateway's view.
    const legend = page.locator('[data-testid="map-legend"] .muted');
    await expect.poll(async () => (await legend.allTextContents()).reduce((s, t) => s + (Number(t) || 0), 0), { timeout: 15_000 }).toBe(buildings.length);
    await page.getByText('Loading…').waitFor({ state: 'detached' });
    const box = await map.boundingBox();
    if (!box) throw new Error('the map has no box');
    // Where a building's circle is on the screen.
    const c = project(view.center, view.zoom);
    const on = (p: LatLng) => {
      const q = project(p, view.zoom);
      return { x: box.x + box.width / 2 + (q.x - c.x), y: box.y + box.height / 2 + (q.y - c.y) };
    };
    const inside = (q: { x: number; y: number }) => q.x > box.x + 60 && q.x < box.x + box.width - 60 && q.y > box.y + 60 && q.y < box.y + box.height - 60;
    // One well inside the map that no other lies within 30 px of, so the pointer is over its circle only.
    const b = buildings.find((p) => inside(on(p.location)) && buildings.every((o) => o === p || Math.hypot(on(p.location).x - on(o.location).x, on(p.location).y - on(o.location).y) > 30));
    if (!b) throw new Error('no demo building stands alone inside the map at its opening view');
    const { x, y } = on(b.location);

    await page.mouse.move(x, y);
    const tooltip = page.locator('.leaflet-tooltip');
    await expect.poll(() => tooltip.textContent({ timeout: 1_000 }), { timeout: 5_000 }).toMatch(new RegExp(`^${b.name} — (Ready|Degraded|Offline|No emergency access)$`));
    await shot(page, 'dispatch-map-tooltip');

    // Its readiness changes while the tooltip is open: the tooltip follows. A first drill that passes
    // (the demo's controllers run in the gateway's process) turns "degraded, never drilled" ready.
    const label = { ready: 'Ready', degraded: 'Degraded', offline: 'Offline', 'no-access': 'No emergency access' } as const;
    const before = await api<{ state: keyof typeof label }>(e2e.gw, token, 'GET', `/api/v1/buildings/${b.id}/readiness`);
    expect(await tooltip.textContent()).toBe(`${b.name} — ${label[before.state]}`);
    expect((await api<{ status: string }>(e2e.gw, token, 'POST', `/api/v1/buildings/${b.id}/drills`)).status).toBe('passed');
    const after = await api<{ state: keyof typeof label }>(e2e.gw, token, 'GET', `/api/v1/buildings/${b.id}/readiness`);
    expect([before.state, after.state]).toEqual(['degraded', 'ready']);
    await expect.poll(() => tooltip.textContent({ timeout: 1_000 }), { timeout: 10_000 }).toBe(`${b.name} — Ready`);

    await page.mouse.click(x, y);
    await expect.poll(() => page.locator('#bc-title').textContent(), { timeout: 5_000 }).toBe(b.name);
    await page.mouse.move(box.x + 5, box.y + box.height - 5);
    await tooltip.waitFor({ state: 'detached' });
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);
});
