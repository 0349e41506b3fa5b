/**
 * The end-to-end harness in one import. A test file calls `useE2e()` at its top: one gateway
 * process (demo district, own data dir and ports) and one Chromium for the whole file, both ended
 * in afterAll.
 *
 * @example
 * const e2e = useE2e();
 * it('shows the shell', async () => {
 *   const page = await e2e.page();            // at the gateway's UI, errors collected
 *   await login(page, 'dispatch');            // demo password from the data dir
 *   await expect.poll(() => page.getByTestId('live-status').textContent()).toBe('live');
 *   await shot(page, 'dispatch-shell');       // test-artifacts/e2e/dispatch-shell.png
 *   expect(pageErrors(page)).toEqual([]);
 * });
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { launchBrowser, openPage, type PageOptions } from './browser.js';
import { startGateway, type E2eGateway } from './gateway.js';

export { ARTIFACTS, CHROMIUM, launchBrowser, login, openPage, pageErrors, shot, type PageOptions } from './browser.js';
export { api, apiLogin, freePort, startGateway, type E2eGateway } from './gateway.js';

export interface E2e {
  readonly gw: E2eGateway;
  readonly browser: Browser;
  /** A new page (own browser context, so its own session) at the gateway's UI. */
  page: (o?: PageOptions) => Promise<Page>;
}

export function useE2e(o: { env?: Record<string, string> } = {}): E2e {
  let gw: E2eGateway | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    gw = await startGateway(o.env ? { env: o.env } : {});
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await gw?.stop();
  });
  const need = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} is not running: did beforeAll fail?`);
    return v;
  };
  return {
    get gw() {
      return need(gw, 'the gateway');
    },
    get browser() {
      return need(browser, 'the browser');
    },
    page: (po) => openPage(need(browser, 'the browser'), need(gw, 'the gateway'), po),
  };
}
