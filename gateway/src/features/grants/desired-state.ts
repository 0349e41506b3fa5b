/**
 * What each controller must hold (DESIGN §4, PROTOCOL §5): the complete set of live emergency
 * grants that touch its doors, with the credentials of the granted units. Pure: the grant service
 * loads the documents, this decides, and the sync carries the result.
 */
import type { SyncGrant } from '@smart-passage/protocol';
import type { Door, Grant, Tag } from '../../domain/types.js';
import { listAll } from '../../store/list-all.js';
import type { StorePort } from '../../store/port.js';

export interface DesiredStateInput {
  grants: readonly Grant[];
  doors: ReadonlyMap<string, Door>;
  /** Tags by unit id; only `active` tags open anything (a blocked or lost tag is left out). */
  tagsByUnit: ReadonlyMap<string, readonly Tag[]>;
  now: number;
}

/** Not yet ended by the gateway (expired or revoked); its notAfter may have passed already. */
export function isOpen(g: Pick<Grant, 'status'>): boolean {
  return g.status === 'pending' || g.status === 'active';
}

/** A grant still to be enforced: not ended, and not past its end. */
export function isLive(g: Grant, now: number): boolean {
  return isOpen(g) && g.notAfter > now;
}

/** Every grant not yet ended, read through the status index. */
export async function openGrants(store: StorePort): Promise<Grant[]> {
  return [...(await listAll(store, 'grants', { field: 'status', value: 'pending' })), ...(await listAll(store, 'grants', { field: 'status', value: 'active' }))];
}

/** The controllers a grant's doors live on, sorted. */
export function controllersOf(g: Pick<Grant, 'doorIds'>, doors: ReadonlyMap<string, Door>): string[] {
  const ids = new Set<string>();
  for (const id of g.doorIds) {
    const d = doors.get(id);
    if (d) ids.add(d.controllerId);
  }
  return [...ids].sort();
}

/**
 * The `grants` array of the next `grants.sync` for `controllerId`, in grantId order so the same
 * state always yields the same message. A grant whose units have no active tag and no PIN opens
 * nothing and is left out.
 */
export function desiredGrantsFor(controllerId: string, i: DesiredStateInput): SyncGrant[] {
  const out: SyncGrant[] = [];
  for (const g of [...i.grants].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (!isLive(g, i.now)) continue;
    const refs = g.doorIds.flatMap((id) => {
      const d = i.doors.get(id);
      return d && d.controllerId === controllerId ? [d.ref] : [];
    });
    if (refs.length === 0) continue;
    const uids = new Set<string>();
    for (const unitId of g.unitIds) for (const t of i.tagsByUnit.get(unitId) ?? []) if (t.status === 'active') uids.add(t.uid);
    // A drill's test grant (DESIGN §9) names its tag directly: a uid nobody carries.
    if (g.drill) uids.add(g.drill.tagUid);
    const credentials: SyncGrant['credentials'] = [...uids].sort().map((uid) => ({ kind: 'tag' as const, uid }));
    if (g.pin !== undefined) credentials.push({ kind: 'pin', pin: g.pin });
    if (credentials.length === 0) continue;
    out.push({ grantId: g.id, incident: g.incidentId, doors: [...new Set(refs)], credentials, notBefore: g.notBefore, notAfter: g.notAfter });
  }
  return out;
}
