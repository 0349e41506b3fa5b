/**
 * The conformance requirements a controller is measured against (PROTOCOL.md §10, P-1…P-25).
 * Titles are short forms for the report table; the normative wording lives in PROTOCOL.md.
 */

/** A requirement id as PROTOCOL.md numbers it, e.g. `P-7`. */
export type RequirementId = `P-${number}`;

export interface Requirement {
  id: RequirementId;
  /** MUST unless PROTOCOL.md marks it SHOULD. */
  level: 'MUST' | 'SHOULD';
  title: string;
}

/** Every requirement, in PROTOCOL.md order. */
export const REQUIREMENTS: readonly Requirement[] = [
  { id: 'P-1', level: 'MUST', title: 'Serves sync and cmd; publishes only below its own prefix' },
  { id: 'P-2', level: 'MUST', title: 'Retained signed QoS 1 birth, after subscribing, on every connect' },
  { id: 'P-3', level: 'MUST', title: 'Retained signed last will {online:false} of the same boot' },
  { id: 'P-4', level: 'MUST', title: 'Nothing retained on reply, evt, sync or cmd' },
  { id: 'P-5', level: 'MUST', title: 'Every message schema-valid, from its own id, signed under its kid' },
  { id: 'P-6', level: 'MUST', title: 'Drops bad signatures and untrusted kids' },
  { id: 'P-7', level: 'MUST', title: 'Drops seqs already accepted or 64+ below the highest; across restarts' },
  { id: 'P-8', level: 'MUST', title: 'Drops messages addressed to another controller' },
  { id: 'P-9', level: 'MUST', title: 'Drops expired messages and commands without a short exp' },
  { id: 'P-10', level: 'MUST', title: 'Drops malformed, oversized, v≠1 and wrong-topic messages; keeps serving' },
  { id: 'P-11', level: 'SHOULD', title: 'Reports each dropped message as a rejected evt with its code' },
  { id: 'P-12', level: 'MUST', title: 'Applies a newer grants.sync atomically, persists it, replies applied' },
  { id: 'P-13', level: 'MUST', title: 'Answers a sync with version ≤ applied "stale", changes nothing' },
  { id: 'P-14', level: 'MUST', title: 'Answers an unappliable sync "rejected" with a code, changes nothing' },
  { id: 'P-15', level: 'MUST', title: 'Decides locally: held credential, named door, inside the window' },
  { id: 'P-16', level: 'MUST', title: 'Stops honouring a grant at its notAfter by itself' },
  { id: 'P-17', level: 'MUST', title: 'door.pulse unlocks for `seconds`, relocks, reports both' },
  { id: 'P-18', level: 'MUST', title: 'door.hold holds until `until`; door.release relocks at once' },
  { id: 'P-19', level: 'MUST', title: 'ctrl.ping replies done' },
  { id: 'P-20', level: 'MUST', title: 'access.check answers the decision; no unlock, no access event' },
  { id: 'P-21', level: 'MUST', title: 'Event seq contiguous from 1 per boot; new boot id at every start' },
  { id: 'P-22', level: 'MUST', title: 'Keeps unacknowledged events across outages and restarts, in order' },
  { id: 'P-23', level: 'SHOULD', title: 'Sets TCP_NODELAY on its MQTT socket' },
  { id: 'P-24', level: 'MUST', title: 'Without a trusted clock: clockSynced:false, denies clock-unsafe' },
  { id: 'P-25', level: 'SHOULD', title: 'Offline codes: only while offline, once per (door, window), no digits reported' },
];
