/**
 * What a controller's messages become in the audit trail (DESIGN §8, issue 4). Pure: the
 * controller bridge resolves our ids (door, tag, grant's incident, the controller's building) and
 * these functions shape the entries, so the mapping is tested on its own.
 *
 * Every entry made here has the controller as its actor, its id and building, and — for events —
 * the controller's own event time and (boot, seq) in `data`, deduplicated by (ctrl, boot, seq): a
 * redelivered event (PROTOCOL §7.8) records nothing new. The wire never carries a PIN on an event
 * (a PIN credential is reported as `{kind: 'pin'}`), and nothing here copies one.
 */
import type { AuditType, BodyOf, Message } from '@smart-passage/protocol';
import type { ControllerLive } from '../../domain/types.js';
import type { PresenceChange } from '../controllers/presence.js';
import type { AuditInput } from './audit-log.js';

/** Our ids for what an event names by the controller's own refs. */
export interface EventContext {
  /** The controller's building (undefined for an unknown controller: the system chain). */
  buildingId?: string | undefined;
  /** Our door id of the event's door ref, when the door is registered. */
  doorId?: string | undefined;
  /** Our tag id of an access event's tag uid, when known. */
  tagId?: string | undefined;
  /** The unit that tag belongs to. */
  unitId?: string | undefined;
  /** The incident of the event's grant, when the grant is known. */
  incidentId?: string | undefined;
}

/** PROTOCOL §7.8: one event is one (ctrl, boot, seq); the store keeps the first entry under this key. */
export const eventDedupe = (ctrl: string, boot: string, seq: number): string => `evt:${ctrl}:${boot}:${seq}`;
export const missingDedupe = (ctrl: string, boot: string, seq: number): string => `missing:${ctrl}:${boot}:${seq}`;

const controllerActor = (ctrl: string) => ({ kind: 'controller' as const, id: ctrl });

/** A verified controller event (`evt`) as its audit entry. */
export function controllerEventInput(ctrl: string, msg: Pick<Message<'evt'>, 'boot' | 'seq' | 'body'>, ctx: EventContext): AuditInput {
  const body = msg.body;
  const base = {
    actor: controllerActor(ctrl),
    controllerId: ctrl,
    buildingId: ctx.buildingId,
    dedupe: eventDedupe(ctrl, msg.boot, msg.seq),
  };
  const stamp = { at: body.at, boot: msg.boot, seq: msg.seq };
  switch (body.kind) {
    case 'access': {
      // A tag we know is named by its id; an unknown uid is kept as seen (it is what the owner
      // needs to find a cloned or foreign tag). A PIN is reported without its digits.
      const uid = body.credential.kind === 'tag' && ctx.tagId === undefined ? { uid: body.credential.uid } : {};
      return {
        ...base,
        type: body.result === 'granted' ? 'access.granted' : 'access.denied',
        reason: body.reason,
        doorId: ctx.doorId,
        grantId: body.grantId,
        incidentId: ctx.incidentId,
        tagId: ctx.tagId,
        unitId: ctx.unitId,
        // An offline code (PROTOCOL §2.6) is reported by its window, never its digits.
        data: { door: body.door, credential: body.credential.kind, ...uid, ...(body.credential.kind === 'offline-code' && body.credential.window !== undefined ? { window: body.credential.window } : {}), ...stamp },
      };
    }
    case 'door': {
      const type: AuditType = body.state === 'forced' ? 'door.forced' : body.state === 'held' ? 'door.held-open' : 'door.state';
      return {
        ...base,
        type,
        doorId: ctx.doorId,
        data: { door: body.door, state: body.state, ...(body.cause !== undefined ? { cause: body.cause } : {}), ...stamp },
      };
    }
    case 'tamper':
      return { ...base, type: 'tamper', data: stamp };
    case 'rejected':
      return {
        ...base,
        type: 'controller.rejected',
        reason: body.code,
        data: { ...(body.ref !== undefined ? { ref: body.ref } : {}), ...(body.suppressed !== undefined ? { suppressed: body.suppressed } : {}), ...stamp },
      };
  }
}

/** PROTOCOL §7.8: `count` events of `boot` before `seq` never arrived. */
export function eventsMissingInput(ctrl: string, boot: string, seq: number, count: number, buildingId: string | undefined): AuditInput {
  return {
    type: 'controller.events-missing',
    actor: controllerActor(ctrl),
    controllerId: ctrl,
    buildingId,
    data: { boot, seq, count },
    dedupe: missingDedupe(ctrl, boot, seq),
  };
}

/** A message the gateway dropped (PROTOCOL §9): schema, audience, signature, exp, unknown sender. */
export function securityRejectedInput(ctrl: string, code: string, detail: string, buildingId: string | undefined, suppressed?: number): AuditInput {
  return {
    type: 'security.rejected',
    actor: controllerActor(ctrl),
    controllerId: ctrl,
    buildingId,
    reason: code,
    data: { detail: detail.slice(0, 200), ...(suppressed !== undefined && suppressed > 0 ? { suppressed } : {}) },
  };
}

/** A command the gateway sent and the controller carried out. */
export type DoorCommand = 'door.pulse' | 'door.hold' | 'door.release';
const DONE: Record<DoorCommand, AuditType> = { 'door.pulse': 'door.pulse.done', 'door.hold': 'door.hold.done', 'door.release': 'door.release.done' };

export function commandDoneInput(ctrl: string, command: { id: string; type: DoorCommand; door: string }, ctx: Pick<EventContext, 'buildingId' | 'doorId'>): AuditInput {
  return {
    type: DONE[command.type],
    actor: controllerActor(ctrl),
    controllerId: ctrl,
    buildingId: ctx.buildingId,
    doorId: ctx.doorId,
    data: { door: command.door, command: command.id },
    dedupe: `reply:${ctrl}:${command.id}`,
  };
}

/** Delivery of a grant to a controller confirmed (its applied version covers the grant). */
export function grantDeliveredInput(ctrl: string, grant: { id: string; incidentId: string; buildingId: string }, version: number): AuditInput {
  return {
    type: 'grant.delivered',
    actor: controllerActor(ctrl),
    controllerId: ctrl,
    buildingId: grant.buildingId,
    grantId: grant.id,
    incidentId: grant.incidentId,
    data: { version },
    dedupe: `delivered:${grant.id}:${ctrl}:${version}`,
  };
}

/**
 * Presence changes worth an entry (PROTOCOL §6.2): coming online, going offline, and a clock that
 * turned unsafe — only on a change, never for a retained birth repeated to a gateway that already
 * knew it. Keyed by the state message's id, so a redelivered birth or will records nothing new.
 */
export function presenceInputs(
  ctrl: string,
  before: ControllerLive,
  change: PresenceChange,
  msg: Pick<Message<'state'>, 'id' | 'boot'> & { body: BodyOf<'state'> },
  buildingId: string | undefined,
): AuditInput[] {
  const base = { actor: controllerActor(ctrl), controllerId: ctrl, buildingId };
  const out: AuditInput[] = [];
  const live = change.live;
  if (change.cameOnline && msg.body.online) {
    out.push({ ...base, type: 'controller.online', data: { boot: msg.boot, fw: msg.body.fw, appliedVersion: msg.body.appliedVersion }, dedupe: `online:${ctrl}:${msg.id}` });
  }
  if (change.wentOffline) out.push({ ...base, type: 'controller.offline', data: { boot: msg.boot }, dedupe: `offline:${ctrl}:${msg.id}` });
  const wasUnsafe = before.online && !before.clockSafe && before.boot === live.boot;
  if (msg.body.online && live.online && !live.clockSafe && !wasUnsafe) {
    out.push({
      ...base,
      type: 'controller.clock-unsafe',
      data: { boot: msg.boot, clockSynced: msg.body.clockSynced, ...(live.clockSkewMs !== undefined ? { skewMs: live.clockSkewMs } : {}) },
      dedupe: `clock-unsafe:${ctrl}:${msg.id}`,
    });
  }
  return out;
}
