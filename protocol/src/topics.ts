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
