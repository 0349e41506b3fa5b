// Issue 8 in the built UI: an owner sets the organisation's webhook URL in the owner view, sees the
// signing secret once (gone after "I have copied it" and after a reload), and the URL and the
// delivery log are there after a reload; the gateway holds exactly that URL.
import { describe, expect, it } from 'vitest';
import { api, apiLogin, login, pageErrors, shot, useE2e } from './support/index.js';

const e2e = useE2e();

describe('owner: the webhook panel', () => {
  it('sets the URL, shows the secret once, keeps the URL; the API agrees', async () => {
    const page = await e2e.page();
    await login(page, 'owner');
    await page.goto(`${e2e.gw.url}/#/owner`);
    const panel = page.getByTestId('webhook-panel');
    await panel.waitFor();
    await page.getByTestId('webhook-url').fill('https://hooks.example.org/smart-passage');
    await panel.getByRole('button', { name: 'Create webhook' }).click();
    const secret = page.getByTestId('webhook-secret');
    await expect.poll(() => secret.textContent(), { timeout: 10_000 }).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    await shot(page, 'owner-webhook-secret');
    await panel.getByRole('button', { name: 'I have copied it' }).click();
    await expect.poll(() => secret.count()).toBe(0);

    await page.reload();
    await page.getByTestId('webhook-panel').waitFor();
    await expect.poll(() => page.getByTestId('webhook-url').inputValue(), { timeout: 10_000 }).toBe('https://hooks.example.org/smart-passage');
    expect(await page.getByTestId('webhook-secret').count()).toBe(0);
    await panel.getByRole('button', { name: 'Save URL' }).waitFor();

    const token = await apiLogin(e2e.gw, 'owner');
    // The demo's owner user belongs to org-soderporten.
    const hook = await api<{ url: string; configured: boolean }>(e2e.gw, token, 'GET', '/api/v1/organisations/org-soderporten/webhook');
    expect(hook).toMatchObject({ configured: true, url: 'https://hooks.example.org/smart-passage' });
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);
});
