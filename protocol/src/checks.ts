/**
 * Pure checks a receiver applies around `seq`, `boot`, `exp` and presence (PROTOCOL §4.4, §6).
 * No I/O and no clock of their own: callers pass `now`.
 */
import { CLOCK_SKEW_LIMIT_MS } from './topics.js';

/**
 * Where a controller→gateway `evt` stands against the highest seq seen for its (ctrl, boot).
 * - `new`: exactly the next one;
 * - `gap`: newer, but `missing` events between were never seen (audit `controller.events-missing`);
 * - `duplicate`: seen before (a QoS 1 redelivery or a backlog resend): ack it, act on nothing.
 * @example classifyEventSeq(undefined, 1) → { kind: 'new' }; classifyEventSeq(7, 10) → { kind: 'gap', missing: 2 }
 */
export function classifyEventSeq(
  highest: number | undefined,
  seq: number,
): { kind: 'new' } | { kind: 'gap'; missing: number } | { kind: 'duplicate' } {
  const last = highest ?? 0;
  if (seq <= last) return { kind: 'duplicate' };
  if (seq === last + 1) return { kind: 'new' };
  return { kind: 'gap', missing: seq - last - 1 };
}

/** Gateway→controller: accept only a seq above the highest accepted (PROTOCOL P-7). */
export function isReplay(lastAccepted: number, seq: number): boolean {
  return seq <= lastAccepted;
}

/** `exp` passed? A message with no `exp` never expires by this test (syncs). */
export function isExpired(exp: number | undefined, now: number): boolean {
  return exp !== undefined && now > exp;
}

/**
 * A will (`online:false`) counts only when it belongs to the boot we last saw come online;
 * an older boot's death arriving late must not mark a live controller offline (Sparkplug bdSeq).
 */
export function deathApplies(liveBoot: string | undefined, deathBoot: string): boolean {
  return liveBoot === undefined || liveBoot === deathBoot;
}

/** Clock skew of a controller: its reported clock minus our clock when the message arrived. */
export function clockSkew(reportedClock: number, receivedAt: number): { skewMs: number; safe: boolean } {
  const skewMs = reportedClock - receivedAt;
  return { skewMs, safe: Math.abs(skewMs) <= CLOCK_SKEW_LIMIT_MS };
}

/**
 * Next gw→ctrl seq: above both our own counter and what the controller says it accepted last
 * (its birth carries `lastSeq`), so a gateway that lost its counter cannot be stuck as a replayer.
 */
export function nextSeq(ourLast: number, controllerLast: number | undefined): number {
  return Math.max(ourLast, controllerLast ?? 0) + 1;
}
