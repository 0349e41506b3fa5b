/**
 * The controller's local access decision (PROTOCOL §5.3): no network, only the synced grant set,
 * the door, the credential and the clock. Pure.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AccessDecision, SyncGrant } from '../schemas.js';

/** A grant as the controller keeps it: PINs only as salted hashes, never in clear. */
export interface HeldGrant {
  grantId: string;
  incident: string;
  doors: string[];
  tags: string[];
  pinHashes: string[];
  notBefore: number;
  notAfter: number;
}

/** What was presented at a reader. */
export type Presented = { kind: 'tag'; uid: string } | { kind: 'pin'; pin: string };

export function pinHash(grantId: string, pin: string): string {
  return createHash('sha256').update(`sp-pin\n${grantId}\n${pin}`).digest('base64url');
}

export function holdGrant(g: SyncGrant): HeldGrant {
  return {
    grantId: g.grantId,
    incident: g.incident,
    doors: [...g.doors],
    tags: g.credentials.flatMap((c) => (c.kind === 'tag' ? [c.uid] : [])),
    pinHashes: g.credentials.flatMap((c) => (c.kind === 'pin' ? [pinHash(g.grantId, c.pin)] : [])),
    notBefore: g.notBefore,
    notAfter: g.notAfter,
  };
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function matches(g: HeldGrant, c: Presented): boolean {
  if (c.kind === 'tag') return g.tags.includes(c.uid);
  const h = pinHash(g.grantId, c.pin);
  return g.pinHashes.some((p) => sameHash(p, h));
}

export interface DecideInput {
  grants: readonly HeldGrant[];
  /** Grants dropped at their notAfter, kept briefly so a late tag reads `expired`, not `unknown`. */
  expired: readonly HeldGrant[];
  door: string;
  credential: Presented;
  now: number;
  clockSynced: boolean;
}

/**
 * Decide one presentation. Order of reasons: clock-unsafe, then the best match
 * (granted > not-yet-valid > expired > wrong-door), then expired tombstones, then unknown.
 */
export function decideAccess(i: DecideInput): AccessDecision {
  // Without a trusted clock the controller cannot tell a live grant from a dead one (PROTOCOL §5.3).
  if (!i.clockSynced) return { result: 'denied', reason: 'clock-unsafe' };
  const mine = i.grants.filter((g) => matches(g, i.credential));
  const atDoor = mine.filter((g) => g.doors.includes(i.door));
  const live = atDoor.find((g) => i.now >= g.notBefore && i.now < g.notAfter);
  if (live) return { result: 'granted', reason: 'grant', grantId: live.grantId };
  const early = atDoor.find((g) => i.now < g.notBefore);
  if (early) return { result: 'denied', reason: 'not-yet-valid', grantId: early.grantId };
  const late = atDoor.find((g) => i.now >= g.notAfter) ?? i.expired.find((g) => g.doors.includes(i.door) && matches(g, i.credential));
  if (late) return { result: 'denied', reason: 'expired', grantId: late.grantId };
  const elsewhere = mine[0];
  if (elsewhere) return { result: 'denied', reason: 'wrong-door', grantId: elsewhere.grantId };
  return { result: 'denied', reason: 'unknown' };
}
