/**
 * How the UI shows building readiness (DESIGN §9). The gateway computes it (issue 8: one source of
 * truth, with reasons per door and the last drill; GET /api/v1/readiness and the socket's
 * `readiness`): here are only its labels, classes and colours.
 *
 * - `no-access`: emergency access is disabled (or there is no emergency door to open).
 * - `offline`: a route door's controller is offline, or its live state is unknown.
 * - `degraded`: every route controller is online, but one is clock-unsafe or behind the desired
 *   version, or the last drill failed, is missing or too old.
 * - `ready`: everything a grant needs is there, and the last drill passed.
 */
import type { ReadinessState } from '../api/types';

export type Readiness = ReadinessState;

/** "Passed 3 h ago" style line for the last drill, or that none has run. */
export function lastDrillText(d: { status: 'passed' | 'failed'; at: number } | undefined, now = Date.now()): string {
  if (!d) return 'No drill yet';
  const mins = Math.max(0, Math.round((now - d.at) / 60_000));
  const ago = mins < 1 ? 'just now' : mins < 60 ? `${mins} min ago` : mins < 48 * 60 ? `${Math.round(mins / 60)} h ago` : `${Math.round(mins / 1440)} days ago`;
  return `${d.status === 'passed' ? 'Passed' : 'Failed'} ${ago}`;
}

export const READINESS_ORDER: readonly Readiness[] = ['ready', 'degraded', 'offline', 'no-access'];

export const READINESS_LABEL: Record<Readiness, string> = {
  ready: 'Ready',
  degraded: 'Degraded',
  offline: 'Offline',
  'no-access': 'No emergency access',
};

/** app.css state classes, for text and badges. */
export const READINESS_CLASS: Record<Readiness, string> = {
  ready: 'state-ok',
  degraded: 'state-warn',
  offline: 'state-bad',
  'no-access': 'state-off',
};

/**
 * Literal colours for the canvas (a canvas cannot resolve CSS variables); they match app.css's
 * --ok, --warn, --bad and --off.
 */
export const READINESS_COLOUR: Record<Readiness, string> = {
  ready: '#3fb950',
  degraded: '#d29922',
  offline: '#f85149',
  'no-access': '#6e7681',
};
