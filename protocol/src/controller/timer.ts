/** setTimeout's longest delay (~24.8 days); a longer one fires at once, so delays are clamped to it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timer that does not keep the process alive, its delay clamped to 0 … MAX_TIMER_MS: what the
 * reference controller and the bridged device use for expiries, heartbeats and retries.
 */
export function unrefTimer(ms: number, fn: () => void): NodeJS.Timeout {
  const t = setTimeout(fn, Math.min(Math.max(ms, 0), MAX_TIMER_MS));
  t.unref();
  return t;
}
