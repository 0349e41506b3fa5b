// What a broker refusal hands to the audit hook (issue 4, security.rejected): the client id, the
// controller and its building when there is one, the rate-limit marks — never a password.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '@smart-passage/protocol';
import type { Controller } from '../../../src/domain/types.js';
import { PasswordHasher } from '../../../src/features/auth/passwords.js';
import { BrokerAuth, type Refusal } from '../../../src/features/controllers/broker-auth.js';
import type { StorePort } from '../../../src/store/port.js';

const SERVICE = { username: 'sp-gateway', password: 'service-password-for-tests' };
const pw = (s: string) => Buffer.from(s, 'utf8');

async function setup() {
  const hasher = new PasswordHasher({ N: 2 ** 10, r: 8, p: 1 });
  const ctl: Controller = { id: 'ctl-a', buildingId: 'bld-1', vendor: 'v', publicKey: 'k', controllerKid: 'ctl-a-k1', mqttPasswordHash: await hasher.hash('secret-a'), offlineSecret: 's', createdAt: 0 };
  const store = { get: (_c: string, id: string) => Promise.resolve(id === ctl.id ? ctl : undefined) } as unknown as Pick<StorePort, 'get'>;
  const refusals: Refusal[] = [];
  let now = 0;
  const auth = new BrokerAuth({ store, hasher, service: SERVICE, logger: silentLogger, onRefused: (r) => refusals.push(r), now: () => now, logEveryMs: 1000 });
  return { auth, refusals, tick: (ms: number) => (now += ms) };
}

describe('BrokerAuth refusals for the audit trail', () => {
  it('name the controller and its building, and carry no password', async () => {
    const w = await setup();
    expect(await w.auth.authenticate({ id: 'ctl-a' }, 'ctl-a', pw('guessed-pass'))).toBe('bad-credentials');
    expect(await w.auth.authenticate({ id: 'rogue' }, 'nobody', pw('guessed-pass'))).toBe('bad-credentials');
    const a = { id: 'ctl-a' };
    expect(await w.auth.authenticate(a, 'ctl-a', pw('secret-a'))).toBe('ok');
    expect(w.auth.authorizeSubscribe(a, { topic: 'sp/v1/c/ctl-b/sync' })).toBe(false);
    expect(w.refusals).toEqual([
      { action: 'connect', reason: 'bad-credentials', clientId: 'ctl-a', username: 'ctl-a', controllerId: 'ctl-a', buildingId: 'bld-1', repeated: false },
      { action: 'connect', reason: 'bad-credentials', clientId: 'rogue', username: 'nobody', repeated: false },
      { action: 'subscribe', reason: 'topic', clientId: 'ctl-a', username: 'ctl-a', controllerId: 'ctl-a', buildingId: 'bld-1', topic: 'sp/v1/c/ctl-b/sync', repeated: false },
    ]);
    const text = JSON.stringify(w.refusals);
    for (const s of ['guessed-pass', 'secret-a']) expect(text).not.toContain(s);
  });

  it('marks repeats within the log window, and counts them on the next one reported', async () => {
    const w = await setup();
    const a = { id: 'ctl-a' };
    await w.auth.authenticate(a, 'ctl-a', pw('secret-a'));
    for (let i = 0; i < 3; i++) w.auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-b/evt', qos: 1, retain: false });
    w.tick(1500);
    w.auth.authorizePublish(a, { topic: 'sp/v1/c/ctl-b/evt', qos: 1, retain: false });
    expect(w.refusals.map((r) => [r.repeated, r.suppressed])).toEqual([[false, undefined], [true, undefined], [true, undefined], [false, 2]]);
  });
});
