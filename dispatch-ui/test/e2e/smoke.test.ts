// The built UI, served by a real gateway process with the demo district, in Debian's Chromium:
// the login page, a wrong password, the dispatcher's shell going live (issue 5).
import { describe, expect, it } from 'vitest';
import { api, login, pageErrors, shot, useE2e } from './support/index.js';

const e2e = useE2e();

describe('smoke: the UI at the gateway URL', () => {
  it('serves the UI at / with its CSP, and the map config to a logged-in user', async () => {
    const res = await fetch(`${e2e.gw.url}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<div id="app">');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const token = (await api<{ accessToken: string }>(e2e.gw, undefined, 'POST', '/api/v1/auth/login', { username: 'dispatch', password: e2e.gw.passwords['dispatch'] })).accessToken;
    const map = await api<{ basemap: { features: unknown[] }; zoom: number }>(e2e.gw, token, 'GET', '/api/v1/map');
    expect(map.basemap.features.length).toBeGreaterThan(12);
  });

  it('shows the login page, refuses a wrong password, and logs the dispatcher in to a live shell', async () => {
    const page = await e2e.page();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    expect(await page.title()).toBe('Smart Passage');
    await shot(page, 'login');

    await login(page, 'dispatch', 'not-the-password');
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong username or password');
    await shot(page, 'login-wrong-password');

    await login(page, 'dispatch');
    const live = page.getByTestId('live-status');
    await expect.poll(() => live.textContent(), { timeout: 15_000 }).toMatch(/^\s*live\s*$/);
    await shot(page, 'dispatch-shell');
    // The wrong password's 401 is the one expected failure the browser logs.
    expect(pageErrors(page).filter((e) => !/status of 401|^http: 401 POST \/api\/v1\/auth\/login$/.test(e))).toEqual([]);
  });
});
