/**
 * Debian's Chromium driven through playwright-core (issue 5): `/usr/bin/chromium`, headless, never
 * a downloaded browser. Pages collect console errors and uncaught exceptions so a test can
 * assert there were none; screenshots go to test-artifacts/e2e/ (git-ignored).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { E2eGateway } from './gateway.js';

export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../../../../test-artifacts/e2e/', import.meta.url));

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** Which gateway a page belongs to, so `login(page, username)` finds its URL and passwords. */
const gatewayOf = new WeakMap<Page, E2eGateway>();
/** Console errors and page errors, per page. */
const errorsOf = new WeakMap<Page, string[]>();

export interface PageOptions {
  /** Default 1280×800 (dispatch desktop); e.g. { width: 390, height: 844 } for the responder's phone. */
  viewport?: { width: number; height: number };
}

/**
 * A fresh page (own context: own sessionStorage, so own session) at the gateway's UI. Collects
 * `console` errors and `pageerror`s: read them with `pageErrors(page)`.
 */
export async function openPage(browser: Browser, gw: E2eGateway, o: PageOptions = {}): Promise<Page> {
  const context: BrowserContext = await browser.newContext({ viewport: o.viewport ?? { width: 1280, height: 800 }, baseURL: gw.url });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // The console line of a failed load does not name the URL: record it beside.
  page.on('response', (r) => {
    if (r.status() >= 400) errors.push(`http: ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  gatewayOf.set(page, gw);
  errorsOf.set(page, errors);
  await page.goto(gw.url);
  return page;
}

/** The console errors and uncaught exceptions of a page so far. */
export function pageErrors(page: Page): string[] {
  return [...(errorsOf.get(page) ?? [])];
}

/**
 * Log in through the login form as a demo user (password from the gateway's demo secrets) and
 * wait for the shell: the live-status badge is there. Pass `password` to try a wrong one.
 */
export async function login(page: Page, username: string, password?: string): Promise<void> {
  const gw = gatewayOf.get(page);
  const pw = password ?? gw?.passwords[username];
  if (pw === undefined) throw new Error(`no password for ${username}: open the page with openPage()`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(pw);
  await page.getByRole('button', { name: 'Log in' }).click();
  if (password === undefined) await page.getByTestId('live-status').waitFor({ state: 'visible' });
}

/** A full-page screenshot at test-artifacts/e2e/<name>.png; returns its path. */
export async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
