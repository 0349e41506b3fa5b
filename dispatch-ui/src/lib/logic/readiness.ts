/**
 * Building readiness as the dispatcher's map shows it (DESIGN §9, §4 flow 7). Pure: the caller
 * hands in the policy, the controllers on the building's emergency route and how to look up each
 * controller's live state.
 *
 * - `no-access`: emergency access is disabled (or there is no emergency door to open).
 * - `offline`: a route door's controller is offline, or its live state is unknown.
 * - `degraded`: every route controller is online, but one is clock-unsafe or behind the desired
 *   version (the controller would refuse or miss a new grant).
 * - `ready`: everything a grant needs is there. The drill part of §9 is not visible to the UI yet.
 */

export type Readiness = 'ready' | 'degraded' | 'offline' | 'no-access';

/** What readiness needs of a controller: its live state, plus the desired version when known. */
export interface ControllerHealth {
  online: boolean;
  clockSafe: boolean;
  appliedVersion: number;
  /** From GET /api/v1/controllers; absent when the UI does not know it. */
  desiredVersion?: number;
}

export type ControllerCondition = 'ok' | 'degraded' | 'offline';

/** One controller: unknown counts as offline (the dispatcher must not assume a door will open). */
export function controllerCondition(c: ControllerHealth | undefined): ControllerCondition {
  if (!c || !c.online) return 'offline';
  if (!c.clockSafe) return 'degraded';
  if (c.desiredVersion !== undefined && c.appliedVersion < c.desiredVersion) return 'degraded';
  return 'ok';
}

/**
 * A building's readiness from its policy and the controllers of its route doors (each id once or
 * more; duplicates are harmless).
 */
export function buildingReadiness(
  policy: { enabled: boolean },
  routeControllerIds: readonly string[],
  controllerOf: (id: string) => ControllerHealth | undefined,
): Readiness {
  if (!policy.enabled || routeControllerIds.length === 0) return 'no-access';
  let degraded = false;
  for (const id of new Set(routeControllerIds)) {
    const cond = controllerCondition(controllerOf(id));
    if (cond === 'offline') return 'offline';
    if (cond === 'degraded') degraded = true;
  }
  return degraded ? 'degraded' : 'ready';
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
