/**
 * What the gateway's process-level tests do over and over: wait for a condition, and call the
 * REST API as JSON with an optional bearer token.
 */

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll until `probe` gives something other than undefined (a probe that reads a boolean returns
 * `ok || undefined`). A probe that throws is tried again; its last error is in the timeout message.
 */
export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, ms: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: string | undefined;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      // A probe may fail while a service is down; report the last failure if time runs out.
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last === undefined ? '' : ` (last error: ${last})`}`);
    await sleep(everyMs);
  }
}

/** One JSON request: POST when there is a body, GET otherwise, unless `method` says. */
export async function api<T = Record<string, unknown>>(
  base: string,
  path: string,
  o: { token?: string; body?: unknown; method?: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE' } = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method: o.method ?? (o.body === undefined ? 'GET' : 'POST'),
    headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
