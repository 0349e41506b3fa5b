/**
 * Controller accounts on a Mosquitto 2 broker through its Dynamic Security plugin (issue 6,
 * DESIGN §5.1, §7): the gateway creates, replaces and deletes each controller's broker client as
 * controllers are registered and removed, so production needs no hand-edited password file.
 *
 * Two layers:
 * - `DynsecClient` speaks the plugin's control API over the gateway's MQTT client: a batch of JSON
 *   commands published to `$CONTROL/dynamic-security/v1`, answered on `…/v1/response` as
 *   `{responses:[{command, error?, data?, correlationData?}]}`. Every admin client reads every
 *   answer there, so each command carries a `correlationData` of ours and answers we did not ask
 *   for are ignored.
 * - `MosquittoAccounts` keeps one controller's account: broker client = controller id, with a
 *   role `sp-controller-<id>` of its own. The role is also how the gateway knows an account is
 *   its own: a broker client whose roles lack that name (the gateway's admin account, anyone
 *   else's) is never changed or deleted.
 *
 * Found on Mosquitto 2.0.11 (gateway/test/integration/controllers/broker-accounts.test.ts):
 * - dynsec ACL topics take no `%u`/`%c` substitution (a `sp/v1/c/%u/sync` ACL matches only that
 *   literal topic), hence one role per controller;
 * - deleting a role still attached to a client corrupts the plugin's state (the next command on
 *   that client answered "Internal error", the one after that crashed the broker): a client is
 *   always deleted before its role, in the same batch;
 * - `deleteClient` disconnects every connection using that username at once.
 */
import { randomBytes } from 'node:crypto';
import { controllerTopic, type Logger } from '@smart-passage/protocol';

export const DYNSEC_TOPIC = '$CONTROL/dynamic-security/v1';
export const DYNSEC_RESPONSE_TOPIC = `${DYNSEC_TOPIC}/response`;

/** One command of the dynsec API, e.g. `{command: 'deleteClient', username: 'ctl-7'}`. */
export interface DynsecCommand {
  command: string;
  [field: string]: unknown;
}

/** Its answer: `error` set when the plugin refused it. */
export interface DynsecResponse {
  command: string;
  error?: string;
  data?: unknown;
}

/** What DynsecClient needs of an MQTT client (mqtt.js's MqttClient has it). */
export interface DynsecTransport {
  readonly connected: boolean;
  publish(topic: string, message: string, opts: { qos: 0 | 1 }, callback?: (err?: Error) => void): unknown;
  subscribeAsync(topic: string, opts: { qos: 0 | 1 }): Promise<unknown>;
  unsubscribeAsync(topic: string): Promise<unknown>;
  on(event: 'message', listener: (topic: string, payload: Buffer) => void): unknown;
  off(event: 'message', listener: (topic: string, payload: Buffer) => void): unknown;
}

/** The broker did not answer in time, is not connected, or answered something unreadable. */
export class DynsecUnavailableError extends Error {
  readonly code = 'broker-accounts-unavailable';
  constructor(message: string) {
    super(message);
    this.name = 'DynsecUnavailableError';
  }
}

/** The plugin refused a command we need (its `error` text, e.g. "Client already exists"). */
export class DynsecCommandError extends Error {
  readonly code = 'broker-accounts-refused';
  readonly command: string;
  constructor(command: string, error: string) {
    super(`dynamic security refused ${command}: ${error}`);
    this.name = 'DynsecCommandError';
    this.command = command;
  }
}

/** The account name is taken on the broker by a client that is not one of our controllers. */
export class ForeignAccountError extends Error {
  readonly code = 'broker-account-foreign';
  constructor(username: string) {
    super(`the broker already has a client '${username}' that is not a Smart Passage controller`);
    this.name = 'ForeignAccountError';
  }
}

interface Pending {
  /** correlationData → index in the batch. */
  ids: Map<string, number>;
  answers: (DynsecResponse | undefined)[];
  left: number;
  timer: NodeJS.Timeout;
  resolve: (r: DynsecResponse[]) => void;
  reject: (err: Error) => void;
}

export interface DynsecClientOptions {
  client: DynsecTransport;
  /** How long a batch may wait for its answers (default 5 s). */
  timeoutMs?: number;
  logger: Logger;
}

/**
 * The dynsec control API over MQTT. `start()` subscribes to the response topic; `run()` sends one
 * batch and resolves with one response per command, in order.
 * @example await dynsec.run([{ command: 'getClient', username: 'ctl-7' }]) → [{ command: 'getClient', data: { client: … } }]
 */
export class DynsecClient {
  readonly #o: DynsecClientOptions;
  /** Ours among every admin's answers: a random prefix per gateway process. */
  readonly #prefix = `sp-${randomBytes(6).toString('hex')}`;
  #next = 0;
  readonly #pending = new Map<string, Pending>();
  readonly #onMessage = (topic: string, payload: Buffer): void => {
    if (topic === DYNSEC_RESPONSE_TOPIC) this.#onResponse(payload);
  };

  constructor(o: DynsecClientOptions) {
    this.#o = o;
  }

  async start(): Promise<void> {
    this.#o.client.on('message', this.#onMessage);
    try {
      await this.#o.client.subscribeAsync(DYNSEC_RESPONSE_TOPIC, { qos: 0 });
    } catch (err) {
      this.#o.client.off('message', this.#onMessage);
      throw new DynsecUnavailableError(
        `the broker refused this gateway's subscription to ${DYNSEC_RESPONSE_TOPIC} (${err instanceof Error ? err.message : String(err)}): its MQTT account needs the $CONTROL/dynamic-security/# rights (deploy/secrets/README.md)`,
      );
    }
  }

  async stop(): Promise<void> {
    this.#o.client.off('message', this.#onMessage);
    const waiting = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of waiting) {
      clearTimeout(p.timer);
      p.reject(new DynsecUnavailableError('the gateway is stopping'));
    }
    if (this.#o.client.connected) await this.#o.client.unsubscribeAsync(DYNSEC_RESPONSE_TOPIC).catch(() => undefined);
  }

  /**
   * Send `commands` as one message (the plugin runs them in order) and wait for every answer.
   * Rejects with DynsecUnavailableError when the client is offline or an answer is late; a
   * command the plugin refused comes back with `error` set, for the caller to judge.
   */
  run(commands: readonly DynsecCommand[]): Promise<DynsecResponse[]> {
    const timeoutMs = this.#o.timeoutMs ?? 5_000;
    // mqtt.js would queue a publish while offline and send it after a reconnect, long after the
    // caller gave up: an account created then would belong to no stored controller.
    if (!this.#o.client.connected) return Promise.reject(new DynsecUnavailableError('not connected to the MQTT broker'));
    if (commands.length === 0) return Promise.resolve([]);
    const batch = `${this.#prefix}-${(this.#next++).toString(36)}`;
    const ids = new Map<string, number>();
    const sent = commands.map((c, i) => {
      const id = `${batch}-${i}`;
      ids.set(id, i);
      return { ...c, correlationData: id };
    });
    return new Promise<DynsecResponse[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(batch);
        reject(new DynsecUnavailableError(`no answer from the broker's dynamic security plugin within ${timeoutMs / 1000} s (is it loaded, and may this gateway's MQTT account use ${DYNSEC_TOPIC}?)`));
      }, timeoutMs);
      this.#pending.set(batch, { ids, answers: commands.map(() => undefined), left: commands.length, timer, resolve, reject });
      this.#o.client.publish(DYNSEC_TOPIC, JSON.stringify({ commands: sent }), { qos: 1 }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.#pending.delete(batch);
        reject(new DynsecUnavailableError(`could not send to the broker: ${err.message}`));
      });
    });
  }

  #onResponse(payload: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      this.#o.logger.warn('unreadable dynamic security response ignored', { bytes: payload.length });
      return;
    }
    const responses = (parsed as { responses?: unknown } | null)?.responses;
    if (!Array.isArray(responses)) return;
    for (const r of responses as unknown[]) {
      if (typeof r !== 'object' || r === null) continue;
      const { correlationData, command, error, data } = r as Record<string, unknown>;
      if (typeof correlationData !== 'string') continue;
      const batch = correlationData.slice(0, correlationData.lastIndexOf('-'));
      const p = this.#pending.get(batch);
      const index = p?.ids.get(correlationData);
      if (p === undefined || index === undefined || p.answers[index] !== undefined) continue;
      p.answers[index] = { command: typeof command === 'string' ? command : '', ...(typeof error === 'string' ? { error } : {}), ...(data !== undefined ? { data } : {}) };
      p.left -= 1;
      if (p.left === 0) {
        clearTimeout(p.timer);
        this.#pending.delete(batch);
        p.resolve(p.answers as DynsecResponse[]);
      }
    }
  }
}

/** The role that marks a broker client as controller `id`'s and gives it its topics. */
export const controllerRole = (id: string): string => `sp-controller-${id}`;

const ACCOUNT_TEXT = 'Smart Passage controller (kept by the gateway)';

/**
 * Exactly a controller's own topics in the protocol's direction (DESIGN §5.1): read (subscribe,
 * receive, unsubscribe) `sync` and `cmd`; write `reply`, `evt` and `state` (its will included).
 * Receive and unsubscribe are allowed by the plugin's defaults; they are listed so the role still
 * works where an operator made those defaults deny.
 */
export function controllerAcls(id: string): { acltype: string; topic: string; allow: true }[] {
  const read = [controllerTopic(id, 'sync'), controllerTopic(id, 'cmd')];
  const write = [controllerTopic(id, 'reply'), controllerTopic(id, 'evt'), controllerTopic(id, 'state')];
  return [
    ...read.flatMap((topic) => ['subscribeLiteral', 'publishClientReceive', 'unsubscribeLiteral'].map((acltype) => ({ acltype, topic, allow: true as const }))),
    ...write.map((topic) => ({ acltype: 'publishClientSend', topic, allow: true as const })),
  ];
}

interface ClientInfo {
  username: string;
  roles: string[];
}

function clientInfo(data: unknown): ClientInfo | undefined {
  const c = (data as { client?: { username?: unknown; roles?: unknown } } | undefined)?.client;
  return typeof c?.username === 'string' ? { username: c.username, roles: rolesOf(c.roles) } : undefined;
}

function rolesOf(roles: unknown): string[] {
  return Array.isArray(roles) ? roles.flatMap((r: { rolename?: unknown }) => (typeof r?.rolename === 'string' ? [r.rolename] : [])) : [];
}

const isOurs = (c: ClientInfo): boolean => c.roles.includes(controllerRole(c.username));

/** What the gateway needs to keep controllers' broker accounts (ControllerRegistry's port). */
export interface ControllerAccounts {
  /** Create the account `id` with `password` and its own role, replacing one of ours of that name. */
  put(id: string, password: string): Promise<void>;
  /** Delete the account and its role (disconnecting it); nothing to delete is fine. */
  remove(id: string): Promise<void>;
}

export interface ReconcileResult {
  /** Our broker clients no stored controller has any more: deleted. */
  deleted: string[];
  /** Registered controllers with no broker client: they cannot connect until re-provisioned. */
  missing: string[];
}

export class MosquittoAccounts implements ControllerAccounts {
  readonly #dynsec: DynsecClient;
  readonly #logger: Logger;

  constructor(o: { dynsec: DynsecClient; logger: Logger }) {
    this.#dynsec = o.dynsec;
    this.#logger = o.logger;
  }

  async put(id: string, password: string): Promise<void> {
    const existing = await this.#getClient(id);
    if (existing && !isOurs(existing)) throw new ForeignAccountError(id);
    const role = controllerRole(id);
    // Delete first, client before role (see the top of this file); a leftover account of ours
    // (a removal the broker missed, a registration whose store write failed) is disconnected.
    const answers = await this.#dynsec.run([
      ...(existing ? [{ command: 'deleteClient', username: id }] : []),
      { command: 'deleteRole', rolename: role },
      { command: 'createRole', rolename: role, textname: ACCOUNT_TEXT, acls: controllerAcls(id) },
      { command: 'createClient', username: id, password, textname: ACCOUNT_TEXT, roles: [{ rolename: role }] },
    ]);
    for (const a of answers) {
      if (a.error === undefined || (a.command === 'deleteRole' && a.error === 'Role not found')) continue;
      throw new DynsecCommandError(a.command, a.error);
    }
    this.#logger.info('broker account created', { ctrl: id, replaced: existing !== undefined });
  }

  async remove(id: string): Promise<void> {
    const existing = await this.#getClient(id);
    if (existing && !isOurs(existing)) {
      this.#logger.warn('broker client of a removed controller is not ours; left alone', { ctrl: id });
      return;
    }
    const answers = await this.#dynsec.run([...(existing ? [{ command: 'deleteClient', username: id }] : []), { command: 'deleteRole', rolename: controllerRole(id) }]);
    for (const a of answers) {
      if (a.error === undefined || (a.command === 'deleteRole' && a.error === 'Role not found')) continue;
      throw new DynsecCommandError(a.command, a.error);
    }
    if (existing) this.#logger.info('broker account deleted', { ctrl: id });
  }

  /**
   * Bring the broker in line with the store at start: delete our clients (and roles) whose
   * controller is gone; report registered controllers without a client. `isRegistered` is asked
   * per candidate after the broker was listed, so a registration running meanwhile on another
   * instance (account made, controller about to be stored) is less likely to be caught.
   */
  async reconcile(registered: () => Promise<ReadonlySet<string>>, isRegistered: (id: string) => Promise<boolean>): Promise<ReconcileResult> {
    const [clients, roles] = await this.#dynsec.run([
      { command: 'listClients', verbose: true, count: -1, offset: 0 },
      { command: 'listRoles', verbose: false, count: -1, offset: 0 },
    ]);
    if (clients?.error !== undefined) throw new DynsecCommandError('listClients', clients.error);
    if (roles?.error !== undefined) throw new DynsecCommandError('listRoles', roles.error);
    const list = (clients?.data as { clients?: unknown } | undefined)?.clients;
    const all: ClientInfo[] = Array.isArray(list)
      ? list.flatMap((c: { username?: unknown; roles?: unknown }) => (typeof c?.username === 'string' ? [{ username: c.username, roles: rolesOf(c.roles) }] : []))
      : [];
    const ours = all.filter(isOurs);
    const want = await registered();
    const deleted: string[] = [];
    for (const c of ours) {
      if (want.has(c.username) || (await isRegistered(c.username))) continue;
      await this.remove(c.username);
      deleted.push(c.username);
    }
    // Roles of ours that no client holds (a deletion cut short): safe to delete, being unattached.
    const held = new Set(all.flatMap((c) => c.roles));
    const roleNames = (roles?.data as { roles?: unknown } | undefined)?.roles;
    for (const r of Array.isArray(roleNames) ? roleNames : []) {
      if (typeof r !== 'string' || !r.startsWith(controllerRole('')) || held.has(r)) continue;
      const id = r.slice(controllerRole('').length);
      if (want.has(id)) continue;
      const [a] = await this.#dynsec.run([{ command: 'deleteRole', rolename: r }]);
      if (a?.error !== undefined && a.error !== 'Role not found') throw new DynsecCommandError('deleteRole', a.error);
    }
    const present = new Set(ours.map((c) => c.username));
    const missing = [...want].filter((id) => !present.has(id)).sort();
    return { deleted, missing };
  }

  async #getClient(id: string): Promise<ClientInfo | undefined> {
    const [a] = await this.#dynsec.run([{ command: 'getClient', username: id }]);
    if (a?.error === 'Client not found') return undefined;
    if (a?.error !== undefined) throw new DynsecCommandError('getClient', a.error);
    const info = clientInfo(a?.data);
    if (!info) throw new DynsecUnavailableError('unreadable getClient answer from the broker');
    return info;
  }
}
