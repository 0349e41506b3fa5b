// The dynsec control API client (issue 6): command/response correlation on the shared response
// topic, time-outs, and MosquittoAccounts' choices (never touch a client that is not ours; client
// before role). The broker is a fake transport injected through the constructor; the real plugin
// is met in test/integration/controllers/broker-accounts.test.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import {
  controllerAcls,
  controllerRole,
  DYNSEC_RESPONSE_TOPIC,
  DYNSEC_TOPIC,
  DynsecClient,
  DynsecUnavailableError,
  ForeignAccountError,
  MosquittoAccounts,
  type DynsecCommand,
  type DynsecTransport,
} from '../../../src/adapters/mosquitto-dynsec.js';

type Listener = (topic: string, payload: Buffer) => void;

/** An MQTT client whose publishes are kept and whose incoming messages the test delivers. */
class FakeTransport implements DynsecTransport {
  connected = true;
  readonly sent: { commands: (DynsecCommand & { correlationData: string })[] }[] = [];
  readonly subscribed: string[] = [];
  refuseSubscribe = false;
  #listeners: Listener[] = [];
  /** Answer each command batch at once, as the plugin would (set by the plugin fake). */
  answer: ((commands: (DynsecCommand & { correlationData: string })[]) => Record<string, unknown>[]) | undefined;

  publish(topic: string, message: string, _opts: { qos: 0 | 1 }, callback?: (err?: Error) => void): void {
    expect(topic).toBe(DYNSEC_TOPIC);
    const body = JSON.parse(message) as FakeTransport['sent'][number];
    this.sent.push(body);
    callback?.();
    const answer = this.answer;
    if (answer) queueMicrotask(() => this.deliver(DYNSEC_RESPONSE_TOPIC, { responses: answer(body.commands) }));
  }
  subscribeAsync(topic: string): Promise<unknown> {
    if (this.refuseSubscribe) return Promise.reject(new Error('Subscribe error: Unspecified error'));
    this.subscribed.push(topic);
    return Promise.resolve([]);
  }
  unsubscribeAsync(): Promise<unknown> {
    return Promise.resolve();
  }
  on(_event: 'message', l: Listener): void {
    this.#listeners.push(l);
  }
  off(_event: 'message', l: Listener): void {
    this.#listeners = this.#listeners.filter((x) => x !== l);
  }
  deliver(topic: string, body: unknown): void {
    const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    for (const l of this.#listeners) l(topic, payload);
  }
}

/** Just enough of the plugin's state machine for MosquittoAccounts. */
function pluginFake(t: FakeTransport, clients: Map<string, string[]>, roles: Set<string>) {
  t.answer = (commands) =>
    commands.map((c) => {
      const base = { command: c.command, correlationData: c.correlationData };
      const username = c.username as string;
      const rolename = c.rolename as string;
      switch (c.command) {
        case 'getClient':
          return clients.has(username) ? { ...base, data: { client: { username, roles: clients.get(username)!.map((r) => ({ rolename: r })), groups: [] } } } : { ...base, error: 'Client not found' };
        case 'deleteClient':
          return clients.delete(username) ? base : { ...base, error: 'Client not found' };
        case 'deleteRole':
          // The real 2.0.11 plugin corrupts itself here when a client still holds the role.
          if ([...clients.values()].some((r) => r.includes(rolename))) throw new Error(`role ${rolename} deleted while in use`);
          return roles.delete(rolename) ? base : { ...base, error: 'Role not found' };
        case 'createRole':
          if (roles.has(rolename)) return { ...base, error: 'Role already exists' };
          roles.add(rolename);
          return base;
        case 'createClient':
          if (clients.has(username)) return { ...base, error: 'Client already exists' };
          clients.set(username, (c.roles as { rolename: string }[]).map((r) => r.rolename));
          return base;
        case 'listClients':
          return { ...base, data: { totalCount: clients.size, clients: [...clients].map(([u, r]) => ({ username: u, roles: r.map((rolename) => ({ rolename })), groups: [] })) } };
        case 'listRoles':
          return { ...base, data: { totalCount: roles.size, roles: [...roles] } };
        default:
          return { ...base, error: 'Unknown command' };
      }
    });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('DynsecClient', () => {
  it('matches answers by correlationData, in command order, across messages; ignores answers that are not its own', async () => {
    const t = new FakeTransport();
    const d = new DynsecClient({ client: t, logger: silentLogger });
    await d.start();
    expect(t.subscribed).toEqual([DYNSEC_RESPONSE_TOPIC]);
    const pending = d.run([{ command: 'getClient', username: 'a' }, { command: 'listRoles' }]);
    const [first, second] = t.sent[0]!.commands;
    expect(first!.correlationData).not.toBe(second!.correlationData);
    // Another admin's answer, an unreadable one, one on another topic, one without correlationData: ignored.
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'getClient', data: 'not ours', correlationData: 'mosquitto_ctrl-1' }] });
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'getClient', data: 'not ours either', correlationData: `${first!.correlationData}9` }] });
    t.deliver(DYNSEC_RESPONSE_TOPIC, 'not json');
    t.deliver('sp/v1/c/x/evt', { responses: [{ command: 'listRoles', correlationData: second!.correlationData, error: 'wrong topic' }] });
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'listRoles', error: 'no id' }] });
    // The second answer first, in a message of its own.
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'listRoles', data: { roles: [] }, correlationData: second!.correlationData }] });
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'getClient', error: 'Client not found', correlationData: first!.correlationData }] });
    await expect(pending).resolves.toEqual([
      { command: 'getClient', error: 'Client not found' },
      { command: 'listRoles', data: { roles: [] } },
    ]);
  });

  it('keeps concurrent batches apart', async () => {
    const t = new FakeTransport();
    const d = new DynsecClient({ client: t, logger: silentLogger });
    await d.start();
    const a = d.run([{ command: 'getClient', username: 'a' }]);
    const b = d.run([{ command: 'getClient', username: 'b' }]);
    const [ca, cb] = [t.sent[0]!.commands[0]!, t.sent[1]!.commands[0]!];
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'getClient', data: 'B', correlationData: cb.correlationData }, { command: 'getClient', data: 'A', correlationData: ca.correlationData }] });
    await expect(a).resolves.toEqual([{ command: 'getClient', data: 'A' }]);
    await expect(b).resolves.toEqual([{ command: 'getClient', data: 'B' }]);
  });

  it('times out with DynsecUnavailableError when an answer is missing, and a late answer changes nothing', async () => {
    vi.useFakeTimers();
    const t = new FakeTransport();
    const d = new DynsecClient({ client: t, logger: silentLogger, timeoutMs: 3000 });
    await d.start();
    const pending = d.run([{ command: 'getClient', username: 'a' }, { command: 'listRoles' }]);
    const caught = pending.catch((e: unknown) => e);
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'getClient', correlationData: t.sent[0]!.commands[0]!.correlationData }] });
    await vi.advanceTimersByTimeAsync(2999);
    let settled = false;
    void caught.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = await caught;
    expect(err).toBeInstanceOf(DynsecUnavailableError);
    expect((err as DynsecUnavailableError).code).toBe('broker-accounts-unavailable');
    expect((err as Error).message).toMatch(/no answer from the broker's dynamic security plugin within 3 s/);
    t.deliver(DYNSEC_RESPONSE_TOPIC, { responses: [{ command: 'listRoles', correlationData: t.sent[0]!.commands[1]!.correlationData }] });
  });

  it('refuses at once, sending nothing, while the MQTT client is offline (mqtt.js would send it after a reconnect)', async () => {
    const t = new FakeTransport();
    const d = new DynsecClient({ client: t, logger: silentLogger });
    await d.start();
    t.connected = false;
    await expect(d.run([{ command: 'listClients' }])).rejects.toBeInstanceOf(DynsecUnavailableError);
    expect(t.sent).toEqual([]);
  });

  it('rejects what is pending when stopped, and says what to fix when the response topic is refused', async () => {
    const t = new FakeTransport();
    const d = new DynsecClient({ client: t, logger: silentLogger });
    await d.start();
    const pending = d.run([{ command: 'listClients' }]);
    await d.stop();
    await expect(pending).rejects.toBeInstanceOf(DynsecUnavailableError);

    const refused = new FakeTransport();
    refused.refuseSubscribe = true;
    await expect(new DynsecClient({ client: refused, logger: silentLogger }).start()).rejects.toThrow(/needs the \$CONTROL\/dynamic-security\/# rights/);
  });
});

describe('MosquittoAccounts', () => {
  async function world(clients: Record<string, string[]>, roles: string[]) {
    const t = new FakeTransport();
    const state = { clients: new Map(Object.entries(clients)), roles: new Set(roles) };
    pluginFake(t, state.clients, state.roles);
    const dynsec = new DynsecClient({ client: t, logger: silentLogger });
    await dynsec.start();
    return { t, state, accounts: new MosquittoAccounts({ dynsec, logger: silentLogger }) };
  }

  it("gives a controller exactly its own topics in the protocol's direction", () => {
    expect(controllerAcls('ctl-7')).toEqual([
      { acltype: 'subscribeLiteral', topic: 'sp/v1/c/ctl-7/sync', allow: true },
      { acltype: 'publishClientReceive', topic: 'sp/v1/c/ctl-7/sync', allow: true },
      { acltype: 'unsubscribeLiteral', topic: 'sp/v1/c/ctl-7/sync', allow: true },
      { acltype: 'subscribeLiteral', topic: 'sp/v1/c/ctl-7/cmd', allow: true },
      { acltype: 'publishClientReceive', topic: 'sp/v1/c/ctl-7/cmd', allow: true },
      { acltype: 'unsubscribeLiteral', topic: 'sp/v1/c/ctl-7/cmd', allow: true },
      { acltype: 'publishClientSend', topic: 'sp/v1/c/ctl-7/reply', allow: true },
      { acltype: 'publishClientSend', topic: 'sp/v1/c/ctl-7/evt', allow: true },
      { acltype: 'publishClientSend', topic: 'sp/v1/c/ctl-7/state', allow: true },
    ]);
  });

  it('creates a new account with its role; replaces one of ours, client before role', async () => {
    const { t, state, accounts } = await world({}, []);
    await accounts.put('ctl-1', 'pw-1');
    expect(state.clients.get('ctl-1')).toEqual([controllerRole('ctl-1')]);
    await accounts.put('ctl-1', 'pw-2');
    expect(t.sent.at(-1)!.commands.map((c) => c.command)).toEqual(['deleteClient', 'deleteRole', 'createRole', 'createClient']);
    expect(t.sent.at(-1)!.commands.at(-1)).toMatchObject({ username: 'ctl-1', password: 'pw-2', roles: [{ rolename: controllerRole('ctl-1') }] });
  });

  it('never replaces or deletes a client that is not ours', async () => {
    const { t, state, accounts } = await world({ gateway: ['admin'] }, ['admin']);
    await expect(accounts.put('gateway', 'pw')).rejects.toBeInstanceOf(ForeignAccountError);
    await accounts.remove('gateway');
    expect(state.clients.get('gateway')).toEqual(['admin']);
    expect(t.sent.flatMap((b) => b.commands.map((c) => c.command))).toEqual(['getClient', 'getClient']);
  });

  it('reconciles: deletes our accounts and orphaned roles without a controller, names registered controllers without an account', async () => {
    const { state, accounts } = await world(
      { gateway: ['admin'], 'ctl-live': [controllerRole('ctl-live')], 'ctl-gone': [controllerRole('ctl-gone')], 'ctl-late': [controllerRole('ctl-late')], other: ['x'] },
      ['admin', 'x', controllerRole('ctl-live'), controllerRole('ctl-gone'), controllerRole('ctl-late'), controllerRole('ctl-orphan')],
    );
    // ctl-late was stored after the store was listed (a registration on another instance).
    const r = await accounts.reconcile(
      () => Promise.resolve(new Set(['ctl-live', 'ctl-lost'])),
      (id) => Promise.resolve(id === 'ctl-late'),
    );
    expect(r).toEqual({ deleted: ['ctl-gone'], missing: ['ctl-lost'] });
    expect([...state.clients.keys()].sort()).toEqual(['ctl-late', 'ctl-live', 'gateway', 'other']);
    expect([...state.roles].sort()).toEqual(['admin', controllerRole('ctl-late'), controllerRole('ctl-live'), 'x']);
  });
});
