/**
 * Pure checks a receiver applies around `seq`, `boot`, `exp` and presence (PROTOCOL §4.4, §6).
 * No I/O and no clock of their own: callers pass `now`.
 */
import { CLOCK_SKEW_LIMIT_MS } from './topics.js';

/**
 * What the gateway remembers of one (ctrl, boot)'s event seqs: the highest seen and the ones
 * below it not yet seen (bounded), so an event that arrives late (after a later one, e.g.
 * through another gateway instance of a shared subscription) is still taken, exactly once.
 */
export interface EventSeqState {
  highest: number;
  missing: readonly number[];
}
/** At most this many missing seqs are remembered per (ctrl, boot); older gaps are given up. */
export const MAX_TRACKED_MISSING = 1024;

/**
 * Where a controller→gateway `evt` stands (PROTOCOL §7.8):
 * - `new`: the next one, or a newer one (`missing` > 0 counts the seqs it skipped: audit
 *   `controller.events-missing` if they never arrive);
 * - `late`: one of the skipped seqs arriving after all: take it;
 * - `duplicate`: seen before (a QoS 1 redelivery or a backlog resend): ack it, act on nothing.
 * @example classifyEventSeq(undefined, 1) → { kind: 'new', missing: 0, state: { highest: 1, missing: [] } }
 */
export function classifyEventSeq(
  s: EventSeqState | undefined,
  seq: number,
): { kind: 'new' | 'late' | 'duplicate'; missing: number; state: EventSeqState } {
  const cur = s ?? { highest: 0, missing: [] };
  if (seq > cur.highest) {
    const skipped = Array.from({ length: Math.min(seq - cur.highest - 1, MAX_TRACKED_MISSING) }, (_, i) => seq - 1 - i).reverse();
    const missing = [...cur.missing, ...skipped].slice(-MAX_TRACKED_MISSING);
    return { kind: 'new', missing: seq - cur.highest - 1, state: { highest: seq, missing } };
  }
  if (cur.missing.includes(seq)) return { kind: 'late', missing: 0, state: { highest: cur.highest, missing: cur.missing.filter((m) => m !== seq) } };
  return { kind: 'duplicate', missing: 0, state: cur };
}

/**
 * Gateway→controller anti-replay state (PROTOCOL §4.4, P-7): the highest accepted seq and the
 * seqs accepted within the window below it. MQTT keeps order only per topic and per publisher,
 * so a command and a sync, or two gateway instances, may overtake each other: a seq below the
 * highest is still fresh if it is inside the window and was never seen.
 */
export interface ReplayWindow {
  highest: number;
  /** Accepted seqs in (highest − REPLAY_WINDOW, highest], ascending. */
  recent: readonly number[];
}
export const REPLAY_WINDOW = 64;

/** True when `seq` was accepted before or is too old to tell. */
export function isReplay(w: ReplayWindow, seq: number): boolean {
  if (seq > w.highest) return false;
  if (seq <= w.highest - REPLAY_WINDOW) return true;
  return w.recent.includes(seq);
}

/** The window after accepting `seq` (call only when `isReplay` said no). */
export function acceptSeq(w: ReplayWindow, seq: number): ReplayWindow {
  const highest = Math.max(w.highest, seq);
  const recent = [...w.recent, seq].filter((s) => s > highest - REPLAY_WINDOW).sort((a, b) => a - b);
  return { highest, recent };
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
