/**
 * Puts the demo district (district.ts) into a store, idempotently: what already exists (by id) is
 * left as it is, so a restart — or a second gateway instance racing the first — changes nothing.
 * Secrets come from the caller: the passwords to hash and each controller's keys (DESIGN §5.9).
 */
import type { Building, Controller, Door, Organisation, Agency, Unit, Tag, User } from '../domain/types.js';
import { StoreConflictError, type CollectionName, type Collections, type StorePort } from '../store/port.js';
import { demoDistrict, type ControllerSecrets, type DemoDistrict } from './district.js';

export interface SeedDemoOptions {
  /** Password per username. A demo user without one is not created (and reported). */
  passwords: Readonly<Record<string, string>>;
  /** Makes the stored hash (the gateway's scrypt). Called only for users that get inserted. */
  hash: (password: string) => Promise<string>;
  /**
   * Keys and MQTT credential hash for a controller. Called only for controllers that get
   * inserted, so the caller keeps (or can re-derive) what it hands out.
   */
  controllerKeys: (controllerId: string) => ControllerSecrets | Promise<ControllerSecrets>;
  /** `createdAt` of everything inserted. */
  now: number;
  /** Seed this district instead of `demoDistrict({ now })`. */
  district?: DemoDistrict;
}

export interface SeedReport {
  /** Documents written by this call. */
  inserted: number;
  /** Documents left alone because their id was already there. */
  existing: number;
  /** `collection/id: field` for documents refused because a unique value (username, tag uid) is held by another. */
  conflicts: string[];
  /** Demo usernames skipped for want of a password. */
  usersWithoutPassword: string[];
}

/**
 * Insert the demo district, skipping documents whose id exists. Order follows references:
 * organisations and agencies before the units, buildings and users that point at them.
 *
 * @example
 * await seedDemo(store, { passwords: { admin: 'x', dispatch: 'y' }, hash: scryptHash, controllerKeys: keysFor, now: Date.now() });
 */
export async function seedDemo(store: StorePort, opts: SeedDemoOptions): Promise<SeedReport> {
  const d = opts.district ?? demoDistrict({ now: opts.now });
  const report: SeedReport = { inserted: 0, existing: 0, conflicts: [], usersWithoutPassword: [] };

  async function ensure<K extends CollectionName>(c: K, id: string, make: () => Collections[K] | Promise<Collections[K]>): Promise<void> {
    // Checked first so that secrets (scrypt, key pairs) are made only for what is new.
    if ((await store.get(c, id)) !== undefined) {
      report.existing += 1;
      return;
    }
    try {
      await store.insert(c, await make());
      report.inserted += 1;
    } catch (err) {
      if (!(err instanceof StoreConflictError)) throw err;
      // Another instance inserted the same id meanwhile: that is the idempotent outcome.
      if ((await store.get(c, id)) !== undefined) report.existing += 1;
      else report.conflicts.push(`${c}/${id}: ${err.field}`);
    }
  }

  for (const o of d.organisations) await ensure('organisations', o.id, (): Organisation => ({ ...o }));
  for (const a of d.agencies) await ensure('agencies', a.id, (): Agency => ({ ...a }));
  for (const u of d.units) await ensure('units', u.id, (): Unit => ({ ...u }));
  for (const t of d.tags) await ensure('tags', t.id, (): Tag => ({ ...t }));
  for (const b of d.buildings) await ensure('buildings', b.id, (): Building => structuredClone(b));
  for (const c of d.controllers) {
    await ensure('controllers', c.id, async (): Promise<Controller> => ({ ...c, ...(await opts.controllerKeys(c.id)) }));
  }
  for (const door of d.doors) await ensure('doors', door.id, (): Door => structuredClone(door));
  for (const u of d.users) {
    const password = opts.passwords[u.username];
    if (password === undefined) {
      report.usersWithoutPassword.push(u.username);
      continue;
    }
    await ensure('users', u.id, async (): Promise<User> => ({ ...u, passwordHash: await opts.hash(password) }));
  }
  return report;
}

/** One controller's doors, for running a reference controller for it in-process (DESIGN §5.8). */
export interface DemoControllerDoors {
  controllerId: string;
  buildingId: string;
  /** The controller's door refs, in route order. */
  doors: string[];
}

/** Each controller of the district with its door refs, ordered by controller id. */
export function demoControllerDoors(district: DemoDistrict): DemoControllerDoors[] {
  const byCtl = new Map<string, DemoControllerDoors>();
  for (const c of [...district.controllers].sort((a, b) => byteOrder(a.id, b.id))) {
    byCtl.set(c.id, { controllerId: c.id, buildingId: c.buildingId, doors: [] });
  }
  const doors = [...district.doors].sort((a, b) => byteOrder(a.buildingId, b.buildingId) || a.routeOrder - b.routeOrder);
  for (const door of doors) {
    const entry = byCtl.get(door.controllerId);
    if (entry === undefined) throw new Error(`demo district: ${door.id} names unknown controller ${door.controllerId}`);
    entry.doors.push(door.ref);
  }
  return [...byCtl.values()];
}

/** Ids sort as the store lists them: by code unit, not by locale. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
