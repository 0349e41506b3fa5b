/**
 * MQTT topics (PROTOCOL §3). A controller may publish and subscribe only below
 * `sp/v1/c/<its own id>/`; the broker enforces it.
 */
export const TOPIC_ROOT = 'sp/v1';

export const CONTROLLER_TOPICS = ['sync', 'cmd', 'reply', 'evt', 'state'] as const;
export type ControllerTopic = (typeof CONTROLLER_TOPICS)[number];

/** @example controllerTopic('ctl-7', 'sync') === 'sp/v1/c/ctl-7/sync' */
export function controllerTopic(ctrl: string, leaf: ControllerTopic): string {
  return `${TOPIC_ROOT}/c/${ctrl}/${leaf}`;
}

export function gatewayStateTopic(instance: string): string {
  return `${TOPIC_ROOT}/gw/${instance}/state`;
}

/** Wildcard subscriptions the gateway uses for everything controllers send. */
export const GATEWAY_SUBSCRIPTIONS = ['reply', 'evt', 'state'].map((leaf) => `${TOPIC_ROOT}/c/+/${leaf}`);

/**
 * A shared subscription [MQTT-4.8.2] (MQTT 5; Mosquitto ≥ 1.6 also for 3.1.1 clients): the broker
 * hands each message to one member of `group` only. The group name may not hold `/`, `+` or `#`.
 * @example sharedSubscription('sp-gateway', 'sp/v1/c/+/evt') === '$share/sp-gateway/sp/v1/c/+/evt'
 */
export function sharedSubscription(group: string, filter: string): string {
  if (!/^[^/+#]+$/.test(group)) throw new Error(`invalid shared subscription group '${group}'`);
  return `$share/${group}/${filter}`;
}

/** The share group gateway instances consume controller events in (DESIGN §11). */
export const GATEWAY_SHARE_GROUP = 'sp-gateway';

/**
 * The share group of one deployment: GATEWAY_SHARE_GROUP plus the deployment's name (its Redis key
 * prefix, SP_REDIS_PREFIX), kept to letters, digits, `_` and `-`, so two deployments on one broker
 * never take each other's events.
 * @example gatewayShareGroup('sp:') === 'sp-gateway-sp'
 * @example gatewayShareGroup('city/north:') === 'sp-gateway-city-north'
 */
export function gatewayShareGroup(deployment?: string): string {
  const name = (deployment ?? '').replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
  return name === '' ? GATEWAY_SHARE_GROUP : `${GATEWAY_SHARE_GROUP}-${name}`;
}

/**
 * The gateway's subscriptions when several instances share one deployment (DESIGN §11): events
 * once per deployment, through the share group (each instance deduplicates them anyway, so a
 * redelivery to another member is harmless); state and reply on every instance, since each keeps
 * its own sync retries and command bookkeeping. `group` tells deployments on one broker apart.
 * @example scaledGatewaySubscriptions()[1] === '$share/sp-gateway/sp/v1/c/+/evt'
 */
export function scaledGatewaySubscriptions(group: string = GATEWAY_SHARE_GROUP): string[] {
  return ['reply', 'evt', 'state'].map((leaf) => (leaf === 'evt' ? sharedSubscription(group, `${TOPIC_ROOT}/c/+/${leaf}`) : `${TOPIC_ROOT}/c/+/${leaf}`));
}

/** Split a controller topic into its id and leaf, or undefined when it is not one. */
export function parseControllerTopic(topic: string): { ctrl: string; leaf: ControllerTopic } | undefined {
  const m = /^sp\/v1\/c\/([a-z0-9][a-z0-9-]{0,62})\/(sync|cmd|reply|evt|state)$/.exec(topic);
  if (!m) return undefined;
  return { ctrl: m[1] as string, leaf: m[2] as ControllerTopic };
}

/** Which message types may travel on which topic leaf. */
export const TYPES_BY_TOPIC: Readonly<Record<ControllerTopic, readonly string[]>> = {
  sync: ['grants.sync'],
  cmd: ['door.pulse', 'door.hold', 'door.release', 'ctrl.ping', 'access.check'],
  reply: ['reply'],
  evt: ['evt'],
  state: ['state'],
};

/** Size limits in bytes of a whole MQTT payload, by topic leaf (PROTOCOL §8). */
export const MAX_PAYLOAD_BYTES: Readonly<Record<ControllerTopic, number>> = {
  sync: 256 * 1024,
  cmd: 4 * 1024,
  reply: 4 * 1024,
  evt: 4 * 1024,
  state: 8 * 1024,
};

/** Commands must expire soon after they are issued: `exp` ≤ `iat` + this (PROTOCOL §7). */
export const MAX_COMMAND_TTL_MS = 10_000;
/** A `door.hold` may keep a door unlocked for at most this long from receipt (PROTOCOL §7). */
export const MAX_HOLD_MS = 4 * 3_600_000;
/** Above this clock skew (ms) a controller is clock-unsafe (PROTOCOL §6). */
export const CLOCK_SKEW_LIMIT_MS = 5_000;
