// BrokerAuth's rules on their own, against the embedded store: the gateway's account, wills whose
// client is gone, a store outage, and a password change while a check is cached.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { BrokerAuth, type Refusal } from '../../../src/features/controllers/broker-auth.js';
import { EmbeddedStore } from '../../../src/store/embedded-store.js';
import { StoreUnavailableError } from '../../../src/store/port.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SERVICE = { username: 'sp-gateway', password: 'service-password-for-tests' };
const pw = (s: string) => Buffer.from(s, 'utf8');

async function setup() {
  const store = new EmbeddedStore({ path: ':memory:' });
  await store.start();
  cleanups.push(() => store.stop());
  const hasher = new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 });
  const refusals: Refusal[] = [];
  const auth = new BrokerAuth({ store, hasher, service: SERVICE, logger: silentLogger, onRefused: (r) => refusals.push(r) });
  const addController = async (id: string, password: string) =>
    store.put('controllers', { id, buildingId: 'bld-1', vendor: 'x', publicKey: 'k', controllerKid: `${id}-k1`, mqttPasswordHash: await hasher.hash(password), offlineSecret: 's', createdAt: 0 });
  return { store, hasher, auth, refusals, addController };
}

describe('BrokerAuth', () => {
  it('lets the gateway account anywhere under sp/v1/ and nowhere else', async () => {
    const { auth } = await setup();
    const gw = { id: 'gw-1' };
    expect(await auth.authenticate(gw, SERVICE.username, pw(SERVICE.password))).toBe('ok');
    expect(auth.identityOf(gw)).toEqual({ kind: 'gateway' });
    for (const topic of ['sp/v1/c/ctl-a/sync', 'sp/v1/c/ctl-a/cmd', 'sp/v1/gw/gw-1/state', 'sp/v1/c/ctl-a/state']) {
      expect(auth.authorizePublish(gw, { topic, qos: 1, retain: true }), topic).toBe(true);
    }
    for (const topic of ['$SYS/x', 'sp/v2/c/a/sync', 'other', 'sp/v1']) expect(auth.authorizePublish(gw, { topic, qos: 1, retain: false }), topic).toBe(false);
    for (const topic of ['sp/v1/#', 'sp/v1/c/+/reply', 'sp/v1/c/+/evt', 'sp/v1/c/+/state', 'sp/v1/gw/+/state']) expect(auth.authorizeSubscribe(gw, { topic }), topic).toBe(true);
    for (const topic of ['#', '+/v1/#', 'sp/#', '$SYS/#']) expect(auth.authorizeSubscribe(gw, { topic }), topic).toBe(false);
    expect(await auth.authenticate({ id: 'gw-2' }, SERVICE.username, pw(`${SERVICE.password}x`))).toBe('bad-credentials');
  });

  it('refuses a will whose connection is gone, and anything from a connection it never let in', async () => {
    const { auth, addController, refusals } = await setup();
    await addController('ctl-a', 'pa');
    const a = { id: 'ctl-a' };
    expect(await auth.authenticate(a, 'ctl-a', pw('pa'), { topic: 'sp/v1/c/ctl-a/state', qos: 1, retain: true })).toBe('ok');
    expect(auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-a/state', qos: 1, retain: true })).toBe(true);
    expect(auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-a/reply', qos: 1, retain: false })).toBe(true);
    expect(auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-a/reply', qos: 1, retain: true })).toBe(false);
    expect(auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-a/state/x', qos: 1, retain: false })).toBe(false);
    expect(auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-ab/state', qos: 1, retain: false })).toBe(false);
    expect(auth.authorizeSubscribe(a, { topic: 'sp/v1/c/ctl-a/#' })).toBe(false);
    expect(auth.authorizePublish(null, { topic: 'sp/v1/c/ctl-a/state', qos: 1, retain: true })).toBe(false);
    expect(auth.authorizePublish({ id: 'ctl-a' }, { topic: 'sp/v1/c/ctl-a/state', qos: 1, retain: true })).toBe(false);
    expect(auth.authorizeSubscribe({ id: 'ctl-a' }, { topic: 'sp/v1/c/ctl-a/sync' })).toBe(false);
    expect(refusals.map((r) => r.reason)).toEqual(['retained', 'topic', 'topic', 'topic', 'unauthenticated', 'unauthenticated', 'unauthenticated']);
  });

  it('answers unavailable (CONNACK 3) while the store is down, and re-checks at once after a password change', async () => {
    const { auth, addController } = await setup();
    await addController('ctl-a', 'first');
    expect(await auth.authenticate({ id: 'ctl-a' }, 'ctl-a', pw('first'))).toBe('ok');
    await addController('ctl-a', 'second'); // re-provisioned: the cached success no longer holds
    expect(await auth.authenticate({ id: 'ctl-a' }, 'ctl-a', pw('first'))).toBe('bad-credentials');
    expect(await auth.authenticate({ id: 'ctl-a' }, 'ctl-a', pw('second'))).toBe('ok');

    const down = new BrokerAuth({
      store: { get: () => Promise.reject(new StoreUnavailableError(new Error('connection refused'))) },
      hasher: new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 }),
      service: SERVICE,
      logger: silentLogger,
    });
    expect(await down.authenticate({ id: 'ctl-a' }, 'ctl-a', pw('second'))).toBe('unavailable');
    // The gateway's own account does not need the store.
    expect(await down.authenticate({ id: 'gw' }, SERVICE.username, pw(SERVICE.password))).toBe('ok');
  });
});
