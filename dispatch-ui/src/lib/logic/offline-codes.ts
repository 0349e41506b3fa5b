/**
 * Offline emergency codes as a dispatcher reads them out (DESIGN §5.7, PROTOCOL §2.6, issue 8).
 * Pure: the state class fetches, this decides what to show and when to fetch again.
 *
 * @example
 *   offlineCodeNotice({ code: '32078332', validUntil: 1764331200000 }, 'Street door', { timeZone: 'UTC' })
 *   // "controller offline — give the crew code 3207 8332 for door Street door, valid until 12:00"
 */
import type { ControllerLive, Door, Grant, OfflineCode } from '../api/types';

/** "32078332" → "3207 8332": two groups of four, as read over the radio. */
export function groupCode(code: string): string {
  return /^[0-9]{8}$/.test(code) ? `${code.slice(0, 4)} ${code.slice(4)}` : code;
}

/** `HH:MM`, 24-hour. */
export function clockTime(at: number, o: { timeZone?: string } = {}): string {
  return new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', hourCycle: 'h23', ...(o.timeZone !== undefined ? { timeZone: o.timeZone } : {}) }).format(at);
}

/** The line shown beside a route door whose controller is offline. */
export function offlineCodeNotice(c: Pick<OfflineCode, 'code' | 'validUntil'>, doorName: string, o: { timeZone?: string } = {}): string {
  return `controller offline — give the crew code ${groupCode(c.code)} for door ${doorName}, valid until ${clockTime(c.validUntil, o)}`;
}

/**
 * What the codes depend on: the offline controllers among the route doors of the incident's live
 * grants, as a stable key ('' when none). A controller the gateway has never seen counts as offline.
 */
export function offlineRouteKey(grants: readonly Grant[], doorOf: (buildingId: string, doorId: string) => Door | undefined, controllers: ReadonlyMap<string, ControllerLive>, now: number): string {
  const offline = new Set<string>();
  for (const g of grants) {
    if (!((g.status === 'pending' || g.status === 'active') && g.notAfter > now)) continue;
    for (const id of g.doorIds) {
      const d = doorOf(g.buildingId, id);
      if (d && controllers.get(d.controllerId)?.online !== true) offline.add(d.controllerId);
    }
  }
  return [...offline].sort().join(',');
}

/** Whether to fetch again: another incident or set of offline controllers, or the window rolled over. */
export function needsOfflineCodes(last: { key: string; nextWindowAt: number } | undefined, key: string, now: number): boolean {
  if (key === '') return false;
  return last === undefined || last.key !== key || now >= last.nextWindowAt;
}
