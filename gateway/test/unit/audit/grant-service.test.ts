// Issue 4: every grant change is audited before it happens — created (never with the PIN),
// extended, revoked (one entry per grant on incident close), expired by the system — and a change
// whose entry cannot be stored does not happen.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { GrantService } from '../../../src/features/grants/grant-service.js';
import type { StorePort } from '../../../src/store/port.js';
import { CollectingSink, memoryStore } from './fakes.js';

const T0 = 1_764_330_000_000;

async function world(o: { tags?: boolean } = {}) {
  const store = await memoryStore();
  await seed(store, o.tags ?? true);
  const audit = new CollectingSink();
  const synced: string[] = [];
  let now = T0;
  const grants = new GrantService({ store, syncer: { sync: (c) => Promise.resolve(void synced.push(c)) }, logger: silentLogger, audit, now: () => now });
  return { store, audit, grants, synced, setNow: (t: number) => (now = t) };
}

async function seed(store: StorePort, withTag: boolean) {
  await store.insert('organisations', { id: 'org-1', name: 'Owner', kind: 'owner', createdAt: T0 });
  await store.insert('buildings', {
    id: 'bld-1', orgId: 'org-1', name: 'B', address: 'A', location: { lat: 59.3, lng: 18.0 },
    policy: { enabled: true, maxMinutes: 60, allowedAgencyIds: [], doorIds: [] }, createdAt: T0, updatedAt: T0,
  });
  await store.insert('agencies', { id: 'ag-1', name: 'Fire', kind: 'fire' });
  await store.insert('units', { id: 'unit-1', agencyId: 'ag-1', callSign: 'RTJ 2310' });
  if (withTag) await store.insert('tags', { id: 'tag-1', uid: '04C0FFEE01', label: 'RTJ #1', unitId: 'unit-1', status: 'active' });
  for (const [id, ctrl, ref] of [['door-1', 'ctl-a', 'street'], ['door-2', 'ctl-b', 'lift']] as const) {
    await store.insert('doors', { id, buildingId: 'bld-1', name: ref, kind: 'entrance', routeOrder: 1, controllerId: ctrl, ref, pulseSeconds: 5, emergency: true });
  }
  for (const id of ['inc-1', 'inc-2']) {
    await store.insert('incidents', { id, kind: 'fire', location: { lat: 59.3, lng: 18.0 }, status: 'open', buildingIds: [], openedBy: 'usr-1', openedAt: T0 });
  }
}

const create = (grants: GrantService, o: { pin?: boolean; incidentId?: string } = {}) =>
  grants.create({ incidentId: o.incidentId ?? 'inc-1', buildingId: 'bld-1', doorIds: ['door-1', 'door-2'], unitIds: ['unit-1'], durationMs: 30 * 60_000, pin: o.pin ?? false }, { userId: 'usr-disp' });

describe('GrantService auditing', () => {
  it('records grant.created with the ids, the route, the end and the credential kinds, actor the user', async () => {
    const w = await world();
    const { grant } = await create(w.grants);
    expect(w.audit.inputs).toEqual([
      {
        type: 'grant.created',
        actor: { kind: 'user', id: 'usr-disp' },
        buildingId: 'bld-1',
        incidentId: 'inc-1',
        grantId: grant.id,
        data: { unitIds: ['unit-1'], doorIds: ['door-1', 'door-2'], notBefore: T0, notAfter: T0 + 30 * 60_000, credentials: ['tag'] },
        dedupe: `created:${grant.id}`,
      },
    ]);
  });

  it('never puts the PIN of a PIN grant into what it records', async () => {
    const w = await world({ tags: false });
    const { grant, pin } = await create(w.grants, { pin: true });
    expect(pin).toMatch(/^\d{6}$/);
    expect(w.audit.inputs[0]).toMatchObject({ type: 'grant.created', grantId: grant.id, data: { credentials: ['pin'] } });
    const recorded = JSON.stringify(w.audit.calls);
    expect(recorded).not.toContain(pin!);
    expect(recorded).not.toMatch(/"pin"\s*:/);
    // …nor later, when the grant ends (the stored grant held it until then).
    await w.grants.revoke(grant.id, 'done', { kind: 'user', id: 'usr-disp' });
    expect(JSON.stringify(w.audit.calls)).not.toContain(pin!);
  });

  it('records grant.extended with the new end, grant.revoked with the reason, by the actor given', async () => {
    const w = await world();
    const { grant } = await create(w.grants);
    const user = { kind: 'user', id: 'usr-2' } as const;
    await w.grants.extend(grant.id, 10 * 60_000, user);
    await w.grants.revoke(grant.id, 'crew out', user);
    expect(w.audit.inputs.slice(1)).toEqual([
      { type: 'grant.extended', actor: user, buildingId: 'bld-1', incidentId: 'inc-1', grantId: grant.id, data: { notAfter: T0 + 40 * 60_000, previousNotAfter: T0 + 30 * 60_000 } },
      { type: 'grant.revoked', actor: user, buildingId: 'bld-1', incidentId: 'inc-1', grantId: grant.id, reason: 'crew out', dedupe: `revoked:${grant.id}` },
    ]);
    // Without an actor: the system.
    const second = (await create(w.grants)).grant;
    await w.grants.revoke(second.id);
    expect(w.audit.inputs.at(-1)).toMatchObject({ type: 'grant.revoked', actor: { kind: 'system' }, grantId: second.id, reason: 'revoked' });
  });

  it('records one grant.revoked per live grant when an incident closes', async () => {
    const w = await world();
    const a = (await create(w.grants)).grant;
    const b = (await create(w.grants)).grant;
    const other = (await create(w.grants, { incidentId: 'inc-2' })).grant;
    const user = { kind: 'user', id: 'usr-disp' } as const;
    const ended = await w.grants.revokeIncident('inc-1', user);
    expect(ended.map((g) => g.id).sort()).toEqual([a.id, b.id].sort());
    const revoked = w.audit.inputs.filter((i) => i.type === 'grant.revoked');
    expect(revoked.map((i) => [i.grantId, i.reason, i.actor])).toEqual(
      [a.id, b.id].sort().map((id) => [id, 'incident closed', user]),
    );
    expect(revoked.some((i) => i.grantId === other.id)).toBe(false);
  });

  it('records grant.expired by the system, once, when the scheduler expires it', async () => {
    const w = await world();
    const { grant } = await create(w.grants);
    w.setNow(grant.notAfter + 1);
    expect((await w.grants.expireDue('test')).map((g) => g.id)).toEqual([grant.id]);
    expect(await w.grants.expireDue('test')).toEqual([]);
    expect(w.audit.inputs.filter((i) => i.type === 'grant.expired')).toEqual([
      { type: 'grant.expired', actor: { kind: 'system' }, buildingId: 'bld-1', incidentId: 'inc-1', grantId: grant.id, reason: 'time', dedupe: `expired:${grant.id}` },
    ]);
  });

  it('changes nothing when the entry cannot be stored, and fails with the store error', async () => {
    const w = await world();
    w.audit.failures = 1;
    await expect(create(w.grants)).rejects.toBe(w.audit.error);
    expect(await w.store.list('grants')).toEqual([]);
    expect(w.synced).toEqual([]);
    expect(await w.store.desiredVersion('ctl-a')).toBe(0);

    const { grant } = await create(w.grants);
    w.audit.failures = 1;
    await expect(w.grants.revoke(grant.id)).rejects.toBe(w.audit.error);
    expect((await w.store.get('grants', grant.id))?.status).toBe('pending');
    w.audit.failures = 1;
    await expect(w.grants.extend(grant.id, 60_000)).rejects.toBe(w.audit.error);
    expect((await w.store.get('grants', grant.id))?.notAfter).toBe(grant.notAfter);

    // An expiry whose entry fails stays due and runs on the next pass.
    w.setNow(grant.notAfter + 1);
    w.audit.failures = 1;
    expect(await w.grants.expireDue('test')).toEqual([]);
    expect((await w.store.get('grants', grant.id))?.status).toBe('pending');
    expect((await w.grants.expireDue('test')).map((g) => g.id)).toEqual([grant.id]);
  });
});
