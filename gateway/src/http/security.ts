/**
 * Security headers and CORS, set here by hand (no helmet): few enough to read in one screen.
 * DESIGN §7. The API is called with a bearer token, never a cookie, so CORS is about which
 * browser origins may read responses, not about CSRF; it still allows listed origins only.
 */
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../errors.js';

/** Content-Security-Policy for the built UI: a SPA with a Leaflet map. */
export function uiCsp(tileHosts: readonly string[]): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    // Leaflet and Svelte set element styles; inline style is a small risk next to a broken map.
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: blob:${tileHosts.map((h) => ` ${h}`).join('')}`,
    "font-src 'self'",
    // 'self' covers same-origin ws:/wss: for socket.io (CSP Level 3).
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** API responses are data, never a document: nothing may load from them, nothing may frame them. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** A tile host as CSP wants it: an origin (`https://tile.openstreetmap.org`) or `https://*.x.org`. */
const CSP_SOURCE = /^https:\/\/(?:\*\.)?[a-z0-9.-]+(?::\d{1,5})?$/i;

export function checkTileHosts(hosts: readonly string[]): void {
  for (const h of hosts) if (!CSP_SOURCE.test(h)) throw new Error(`map tile host "${h}" must be an https origin such as https://tile.openstreetmap.org`);
}

export function securityHeaders(tileHosts: readonly string[]) {
  const ui = uiCsp(tileHosts);
  return (req: Request, res: Response, next: NextFunction): void => {
    const api = req.path === '/api' || req.path.startsWith('/api/');
    res.setHeader('Content-Security-Policy', api ? API_CSP : ui);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    // Only over https (directly, or behind a proxy the app is told to trust): on plain http
    // the header is ignored by browsers anyway and would pin a dev host name.
    if (req.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    if (api) res.setHeader('Cache-Control', 'no-store');
    next();
  };
}

/** An origin exactly as a browser sends it: scheme, host, optional port; no path, no slash. */
const ORIGIN = /^https?:\/\/[a-z0-9.-]+(?::\d{1,5})?$/i;

export function checkCorsOrigins(origins: readonly string[]): void {
  for (const o of origins) {
    if (o === '*' || !ORIGIN.test(o)) throw new Error(`CORS origin "${o}" must be an exact origin such as https://dispatch.example.org (no wildcard, no path)`);
  }
}

const ALLOW_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, X-Request-Id';
const EXPOSE_HEADERS = 'X-Request-Id, Retry-After, Location';

export function cors(origins: readonly string[]) {
  const allowed = new Set(origins.map((o) => o.toLowerCase()));
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.headers.origin;
    if (origin === undefined) {
      next();
      return;
    }
    res.append('Vary', 'Origin');
    const ok = allowed.has(origin.toLowerCase());
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
    if (!preflight) {
      // A disallowed origin gets no CORS headers, so its page cannot read the answer.
      next();
      return;
    }
    if (!ok) {
      next(AppError.forbidden('origin not allowed'));
      return;
    }
    res.setHeader('Access-Control-Allow-Methods', ALLOW_METHODS);
    res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
    res.setHeader('Access-Control-Max-Age', '600');
    res.status(204).end();
  };
}
