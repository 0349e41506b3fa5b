/**
 * Small pure helpers the owner, responder and admin views share: time left, dates for the audit
 * query, and an API error as one readable line (DESIGN §6 `{error:{code,message,details?}}`).
 */

/** `mm:ss` (or `h:mm:ss` from an hour) until `end`; `00:00` once past. */
export function timeLeft(end: number, now: number): string {
  const s = Math.max(0, Math.floor((end - now) / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** `YYYY-MM-DD` (an `<input type="date">`) as the ISO instant of that local day's start or end. */
export function dayBound(day: string, end: boolean): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
  if (!m) return undefined;
  const d = end ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59, 999) : new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isFinite(d.getTime()) ? d.toISOString() : undefined;
}

/** A local date as `YYYY-MM-DD`. */
export function dayOf(t: number): string {
  const d = new Date(t);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** `YYYY-MM-DD HH:MM:SS`, local. */
export function dateTime(t: number): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${dayOf(t)} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  status?: unknown;
  details?: unknown;
}

/**
 * An error as one line for the user: the API's message, then each validation issue
 * (`details: [{in, path, message}]`) as `path: message`.
 */
export function errorText(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const e = err as ErrorLike;
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : 'something went wrong';
  if (e.code === 'validation-failed' && Array.isArray(e.details)) {
    const issues = (e.details as unknown[])
      .map((d) => {
        if (typeof d !== 'object' || d === null) return undefined;
        const i = d as { path?: unknown; message?: unknown };
        const path = typeof i.path === 'string' && i.path !== '' ? i.path.replace(/^\//, '') : '';
        return typeof i.message === 'string' ? (path ? `${path}: ${i.message}` : i.message) : undefined;
      })
      .filter((x): x is string => x !== undefined);
    if (issues.length > 0) return issues.join('; ');
  }
  if (e.code === 'unavailable' || e.status === 503) return `${message} (the gateway is busy or its store is down; try again)`;
  if (e instanceof TypeError) return 'The gateway cannot be reached.';
  return message;
}

/** Validation issues by field path (`/maxMinutes` → `maxMinutes`), for showing next to inputs. */
export function fieldErrors(err: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof err !== 'object' || err === null) return out;
  const e = err as ErrorLike;
  if (e.code !== 'validation-failed' || !Array.isArray(e.details)) return out;
  for (const d of e.details as unknown[]) {
    if (typeof d !== 'object' || d === null) continue;
    const i = d as { path?: unknown; message?: unknown };
    if (typeof i.path === 'string' && typeof i.message === 'string') out[i.path.replace(/^\//, '').split('/')[0] ?? ''] ??= i.message;
  }
  return out;
}
