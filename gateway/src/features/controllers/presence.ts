/**
 * Controller presence at the gateway (PROTOCOL §6.2): births and wills folded into live state.
 * Pure: the controller bridge feeds it verified `state` messages.
 */
import { clockSkew, deathApplies, type Message } from '@smart-passage/protocol';
import type { ControllerLive } from '../../domain/types.js';

export function emptyLive(id: string): ControllerLive {
  return { id, online: false, appliedVersion: 0, lastSeq: 0, clockSafe: false, doors: [] };
}

export interface PresenceChange {
  live: ControllerLive;
  /** It came online (a birth of a boot that was not live). */
  cameOnline: boolean;
  /** It went offline (a will of the live boot). */
  wentOffline: boolean;
}

/**
 * Fold one verified `state` message into the live state.
 * - A birth always wins: it is the controller speaking now. Clock skew is taken only from a birth
 *   delivered live — a retained one may be hours old (PROTOCOL §6.2).
 * - A will counts only for the boot that is live; a late will of an earlier boot is ignored.
 */
export function applyState(cur: ControllerLive, msg: Message<'state'>, o: { receivedAt: number; retained: boolean }): PresenceChange {
  const body = msg.body;
  if (body.online) {
    const skew = o.retained ? undefined : clockSkew(body.clock, o.receivedAt);
    const live: ControllerLive = {
      id: cur.id,
      online: true,
      boot: msg.boot,
      fw: body.fw,
      appliedVersion: body.appliedVersion,
      lastSeq: body.lastSeq,
      ...(skew ? { clockSkewMs: skew.skewMs } : cur.clockSkewMs !== undefined && cur.boot === msg.boot ? { clockSkewMs: cur.clockSkewMs } : {}),
      clockSafe: body.clockSynced && (skew ? skew.safe : cur.boot === msg.boot ? cur.clockSafe : true),
      lastSeen: o.receivedAt,
      doors: body.doors,
    };
    return { live, cameOnline: !cur.online || cur.boot !== msg.boot, wentOffline: false };
  }
  if (!deathApplies(cur.boot, msg.boot) || !cur.online) return { live: cur, cameOnline: false, wentOffline: false };
  return { live: { ...cur, online: false, lastSeen: o.receivedAt }, cameOnline: false, wentOffline: true };
}
