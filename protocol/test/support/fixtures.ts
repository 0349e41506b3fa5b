/** Keys and provisioning bundles for tests: each test makes its own, with unique controller ids. */
import { randomBytes } from 'node:crypto';
import { generateRawKeyPair, privateKeyFromSeed, type ProvisioningBundle, type SigningKey } from '../../src/index.js';

export interface Fixture {
  gateway: SigningKey & { publicKey: string; seed: string };
  bundle: ProvisioningBundle;
  controllerPublicKey: string;
}

/** A unique controller id for this test run, e.g. `t-3f9a1c-lobby`. */
export function uniqueId(label: string): string {
  return `t-${randomBytes(4).toString('hex')}-${label}`.toLowerCase();
}

export function makeFixture(url: string, opts: { id?: string; doors?: string[] } = {}): Fixture {
  const gw = generateRawKeyPair();
  const ctl = generateRawKeyPair();
  const id = opts.id ?? uniqueId('ctl');
  return {
    gateway: { kid: 'gw-test-1', key: privateKeyFromSeed(gw.privateKey), publicKey: gw.publicKey, seed: gw.privateKey },
    controllerPublicKey: ctl.publicKey,
    bundle: {
      controllerId: id,
      mqtt: { url, username: id, password: randomBytes(12).toString('base64url') },
      gatewayKeys: [{ kid: 'gw-test-1', publicKey: gw.publicKey }],
      controllerKid: `${id}-k1`,
      controllerKey: { kid: `${id}-k1`, privateKey: ctl.privateKey },
      doors: (opts.doors ?? ['street', 'stair-a', 'floor-3']).map((ref) => ({ ref })),
    },
  };
}
