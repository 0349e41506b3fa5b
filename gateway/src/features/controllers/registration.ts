/**
 * Registering controllers (DESIGN §5.9, PROTOCOL §2.5) and reading them back with their live
 * state (DESIGN §5.3, issue 3 `GET /controllers`).
 *
 * Registration makes the controller's secrets — an MQTT password (kept only as a scrypt hash), a
 * 32-byte offline secret and, unless the controller brought its own public key, an Ed25519 key
 * pair — and hands them over once, in the provisioning bundle. Nothing returns them afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import {
  ControllerId,
  DoorRef,
  generateRawKeyPair,
  newId,
  ProvisioningBundle,
  publicKeyFromRaw,
  RawKey,
  validateBundle,
  type Logger,
} from '@smart-passage/protocol';
import type { Controller, ControllerLive } from '../../domain/types.js';
import type { ControllerAccounts } from '../../adapters/mosquitto-dynsec.js';
import { AppError } from '../../errors.js';
import { route, type Principal, type RouteDef } from '../../http/routes.js';
import { listAll } from '../../store/list-all.js';
import { StoreConflictError, type StorePort } from '../../store/port.js';
import type { PasswordHasher } from '../auth/passwords.js';
import { emptyLive } from './presence.js';

const Id = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,80}$' });

export const RegisterControllerBody = Type.Object(
  {
    id: Type.Optional(ControllerId),
    buildingId: Id,
    vendor: Type.String({ minLength: 1, maxLength: 64 }),
    doors: Type.Array(Type.Object({ ref: DoorRef, name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) }, { additionalProperties: false }), { maxItems: 64 }),
    /** The controller's own Ed25519 public key (raw, base64url): then no private key is handed out. */
    publicKey: Type.Optional(RawKey),
  },
  { additionalProperties: false },
);
export type RegisterControllerInput = Static<typeof RegisterControllerBody>;

/** A controller as the API shows it: identity plus live state, never a secret or its hash. */
export const ControllerView = Type.Object(
  {
    id: ControllerId,
    buildingId: Type.String(),
    vendor: Type.String(),
    controllerKid: Type.String(),
    publicKey: Type.String(),
    createdAt: Type.Integer(),
    online: Type.Boolean(),
    boot: Type.Optional(Type.String()),
    fw: Type.Optional(Type.String()),
    clockSkewMs: Type.Optional(Type.Integer()),
    clockSafe: Type.Boolean(),
    appliedVersion: Type.Integer(),
    desiredVersion: Type.Integer(),
    lastSeen: Type.Optional(Type.Integer()),
    doors: Type.Array(Type.Object({ ref: Type.String(), locked: Type.Boolean(), open: Type.Boolean() }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type ControllerView = Static<typeof ControllerView>;

export interface ControllerRegistryOptions {
  store: StorePort;
  hasher: PasswordHasher;
  /** The broker URL controllers are told to use (`mqtt://…` or `mqtts://…`). */
  mqttUrl: () => string;
  /** The gateway keys controllers trust, current first (PROTOCOL §4.3). */
  gatewayKeys: () => readonly { kid: string; publicKey: string }[];
  /** Ids no controller may take (the gateway's own MQTT username). */
  reservedIds?: readonly string[];
  /**
   * The broker's accounts, when the gateway keeps them (SP_MQTT_ACCOUNTS=dynsec): a controller's
   * account is made before it is stored and deleted before it is removed, so neither step leaves
   * a controller without its account or an account without its controller.
   */
  accounts?: ControllerAccounts;
  /** After a removal: forget cached keys and credentials, clear its retained state, cut it off. */
  onRemoved?: (id: string) => Promise<void> | void;
  /** After a registration (real-time `controller` event). */
  onRegistered?: (view: ControllerView) => void;
  logger: Logger;
  now?: () => number;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The 503 of a broker that did not make or delete an account (`details.reason`, for clients to switch on). */
function accountsUnavailable(action: string, err: unknown): AppError {
  const foreign = (err as { code?: unknown } | null)?.code === 'broker-account-foreign';
  if (foreign) return AppError.conflict('the MQTT broker has an account of this name that is not a controller\'s');
  return new AppError('unavailable', `the MQTT broker did not ${action} the controller's account; nothing was changed, try again`, {
    details: { reason: 'broker-accounts-unavailable' },
    retryAfter: 5,
    cause: err,
  });
}

/** The store's document and live state as the API shows them. */
export function controllerView(c: Controller, live: ControllerLive | undefined, desiredVersion: number): ControllerView {
  const l = live ?? emptyLive(c.id);
  return {
    id: c.id,
    buildingId: c.buildingId,
    vendor: c.vendor,
    controllerKid: c.controllerKid,
    publicKey: c.publicKey,
    createdAt: c.createdAt,
    online: l.online,
    ...(l.boot !== undefined ? { boot: l.boot } : {}),
    ...(l.fw !== undefined ? { fw: l.fw } : {}),
    ...(l.clockSkewMs !== undefined ? { clockSkewMs: Math.round(l.clockSkewMs) } : {}),
    clockSafe: l.clockSafe,
    appliedVersion: l.appliedVersion,
    desiredVersion,
    ...(l.lastSeen !== undefined ? { lastSeen: l.lastSeen } : {}),
    doors: l.doors.map((d) => ({ ref: d.ref, locked: d.locked, open: d.open })),
  };
}

export class ControllerRegistry {
  readonly #o: ControllerRegistryOptions;
  readonly #now: () => number;

  constructor(o: ControllerRegistryOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  /** Store a new controller and return its provisioning bundle: the only time it exists. */
  async register(input: RegisterControllerInput): Promise<{ controller: Controller; bundle: ProvisioningBundle }> {
    const { store, hasher } = this.#o;
    const refs = new Set<string>();
    input.doors.forEach((d, i) => {
      if (refs.has(d.ref)) throw AppError.badRequest(`/doors/${i}/ref`, 'door refs must be unique');
      refs.add(d.ref);
    });
    if (input.publicKey !== undefined) {
      try {
        publicKeyFromRaw(input.publicKey);
      } catch {
        throw AppError.badRequest('/publicKey', 'not an Ed25519 public key');
      }
    }
    const building = await store.get('buildings', input.buildingId);
    if (!building) throw AppError.badRequest('/buildingId', 'no such building');
    const id = input.id ?? `ctl-${newId(this.#now()).toLowerCase()}`;
    if (this.#o.reservedIds?.includes(id)) throw AppError.conflict('this controller id is reserved');
    if (await store.get('controllers', id)) throw AppError.conflict('a controller with this id exists');

    const gatewayKeys = this.#o.gatewayKeys().map((k) => ({ kid: k.kid, publicKey: k.publicKey }));
    // A kid is at most 64 characters (PROTOCOL §4.1); it only has to be unique per controller.
    const controllerKid = `${id.slice(0, 61)}-k1`;
    const generated = input.publicKey === undefined ? generateRawKeyPair() : undefined;
    const password = randomBytes(32).toString('base64url');
    const offlineSecret = randomBytes(32).toString('base64url');
    const controller: Controller = {
      id,
      buildingId: building.id,
      vendor: input.vendor,
      publicKey: generated?.publicKey ?? (input.publicKey as string),
      controllerKid,
      mqttPasswordHash: await hasher.hash(password),
      offlineSecret,
      createdAt: this.#now(),
    };
    const bundle: ProvisioningBundle = {
      controllerId: id,
      mqtt: { url: this.#o.mqttUrl(), username: id, password },
      gatewayKeys,
      controllerKid,
      ...(generated ? { controllerKey: { kid: controllerKid, privateKey: generated.privateKey } } : {}),
      offlineSecret,
      doors: input.doors.map((d) => ({ ref: d.ref, ...(d.name !== undefined ? { name: d.name } : {}) })),
    };
    // Checked before anything is stored: a misconfigured URL or key list must not leave a
    // controller behind whose bundle nobody ever saw.
    const checked = validateBundle(bundle);
    if (!checked.ok) {
      this.#o.logger.error('provisioning bundle does not validate; check the MQTT URL and gateway keys', { detail: checked.detail });
      throw AppError.internal();
    }
    const { accounts } = this.#o;
    if (accounts) {
      try {
        await accounts.put(id, password);
      } catch (err) {
        this.#o.logger.warn('controller not registered: its broker account could not be made', { ctrl: id, err: err instanceof Error ? err.message : String(err) });
        throw accountsUnavailable('make', err);
      }
    }
    try {
      await store.insert('controllers', controller); // StoreConflictError → 409 on a race
    } catch (err) {
      // Nothing stored: take the account back, unless another registration of this id won the
      // race (its account is the one now on the broker, and must stay).
      if (accounts && !(err instanceof StoreConflictError)) {
        await accounts.remove(id).catch((e: unknown) => this.#o.logger.warn('broker account of an unstored controller left behind (removed at the next start)', { ctrl: id, err: e instanceof Error ? e.message : String(e) }));
      }
      throw err;
    }
    // A controller of the same id removed earlier may have left live state behind.
    await store.delete('controllerLive', id);
    this.#o.logger.info('controller registered', { ctrl: id, buildingId: building.id, vendor: input.vendor, ownKey: generated === undefined });
    this.#o.onRegistered?.(controllerView(controller, undefined, await store.desiredVersion(id)));
    return { controller, bundle };
  }

  /** Controllers a principal may see, in id order, with live state. */
  async list(p: Principal, o: { buildingId?: string; after?: string; limit: number }): Promise<{ items: ControllerView[]; next?: string }> {
    const { store } = this.#o;
    let candidates: Controller[];
    if (p.role === 'owner') {
      const buildings = p.orgId === undefined ? [] : await listAll(store, 'buildings', { field: 'orgId', value: p.orgId });
      const ids = buildings.map((b) => b.id).filter((b) => o.buildingId === undefined || b === o.buildingId);
      candidates = [];
      for (const b of ids) candidates.push(...(await listAll(store, 'controllers', { field: 'buildingId', value: b })));
      candidates.sort(byId);
    } else if (o.buildingId !== undefined) {
      candidates = (await listAll(store, 'controllers', { field: 'buildingId', value: o.buildingId })).sort(byId);
    } else {
      candidates = await store.list('controllers', { limit: o.limit + 1, ...(o.after !== undefined ? { after: o.after } : {}) });
    }
    const after = o.after;
    const page = (after === undefined ? candidates : candidates.filter((c) => c.id > after)).slice(0, o.limit + 1);
    const more = page.length > o.limit;
    const shown = page.slice(0, o.limit);
    const items = await Promise.all(shown.map((c) => this.#view(c)));
    const last = shown.at(-1);
    return { items, ...(more && last ? { next: last.id } : {}) };
  }

  /** One controller, or 404 when it does not exist or is not the principal's to see. */
  async get(id: string, p: Principal): Promise<ControllerView> {
    const c = await this.#o.store.get('controllers', id);
    if (!c || !(await this.#visible(c, p))) throw AppError.notFound('controller');
    return this.#view(c);
  }

  /** Remove a controller no door uses any more. */
  async remove(id: string): Promise<void> {
    const { store } = this.#o;
    const c = await store.get('controllers', id);
    if (!c) throw AppError.notFound('controller');
    const doors = await store.list('doors', { where: { field: 'controllerId', value: id }, limit: 1 });
    if (doors.length > 0) throw AppError.conflict('doors still use this controller; move or remove them first');
    // The account goes first: a controller removed from the store must not keep a working login.
    if (this.#o.accounts) {
      try {
        await this.#o.accounts.remove(id);
      } catch (err) {
        this.#o.logger.warn('controller not removed: its broker account could not be deleted', { ctrl: id, err: err instanceof Error ? err.message : String(err) });
        throw accountsUnavailable('delete', err);
      }
    }
    await store.delete('controllers', id);
    await store.delete('controllerLive', id);
    this.#o.logger.info('controller removed', { ctrl: id });
    await this.#o.onRemoved?.(id);
  }

  async #visible(c: Controller, p: Principal): Promise<boolean> {
    if (p.role === 'admin' || p.role === 'dispatcher') return true;
    if (p.role !== 'owner' || p.orgId === undefined) return false;
    const b = await this.#o.store.get('buildings', c.buildingId);
    return b?.orgId === p.orgId;
  }

  async #view(c: Controller): Promise<ControllerView> {
    const [live, desired] = await Promise.all([this.#o.store.get('controllerLive', c.id), this.#o.store.desiredVersion(c.id)]);
    return controllerView(c, live, desired);
  }
}

const ADMIN = ['admin'] as const;
const READERS = ['admin', 'dispatcher', 'owner'] as const;

/** The `/controllers` routes. */
export function controllerRoutes(registry: ControllerRegistry): RouteDef[] {
  return [
    route({
      method: 'post',
      path: '/api/v1/controllers',
      summary: 'Register a controller and get its provisioning bundle (once)',
      description:
        'Creates the MQTT credentials, the offline secret and — unless `publicKey` is given — the controller key pair, and returns them in the provisioning bundle (PROTOCOL §2.5). The bundle is never shown again: store it like a private key. Where the gateway keeps the broker\'s accounts (SP_MQTT_ACCOUNTS=dynsec), a broker that does not make the account answers 503 `unavailable` with `details.reason` `broker-accounts-unavailable`, and nothing is stored.',
      tags: ['controllers'],
      auth: ADMIN,
      body: RegisterControllerBody,
      responses: { 201: ProvisioningBundle },
      errors: ['conflict'],
      handler: async ({ body, setHeader }) => {
        const { controller, bundle } = await registry.register(body);
        setHeader('Cache-Control', 'no-store');
        setHeader('Location', `/api/v1/controllers/${controller.id}`);
        return bundle;
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/controllers',
      summary: 'List controllers with their live state',
      description: 'Owners see the controllers of their own organisation’s buildings only. Cursor pagination: pass `next` back as `after`.',
      tags: ['controllers'],
      auth: READERS,
      query: Type.Object(
        {
          buildingId: Type.Optional(Id),
          after: Type.Optional(ControllerId),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
        },
        { additionalProperties: false },
      ),
      responses: { 200: Type.Object({ items: Type.Array(ControllerView), next: Type.Optional(Type.String()) }, { additionalProperties: false }) },
      handler: ({ query, principal }) =>
        registry.list(principal, {
          limit: query.limit ?? 100,
          ...(query.buildingId !== undefined ? { buildingId: query.buildingId } : {}),
          ...(query.after !== undefined ? { after: query.after } : {}),
        }),
    }),
    route({
      method: 'get',
      path: '/api/v1/controllers/{id}',
      summary: 'A controller with its live state',
      tags: ['controllers'],
      auth: READERS,
      params: Type.Object({ id: ControllerId }),
      responses: { 200: ControllerView },
      errors: ['not-found'],
      handler: ({ params, principal }) => registry.get(params.id, principal),
    }),
    route({
      method: 'delete',
      path: '/api/v1/controllers/{id}',
      summary: 'Remove a controller (its MQTT credentials stop working at once)',
      tags: ['controllers'],
      auth: ADMIN,
      params: Type.Object({ id: ControllerId }),
      responses: { 204: null },
      errors: ['not-found', 'conflict'],
      handler: async ({ params }) => {
        await registry.remove(params.id);
      },
    }),
  ];
}
