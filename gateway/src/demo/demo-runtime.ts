/**
 * The demo district's controllers, run in-process by the reference controller (issue 3: "about
 * 15 controllers run in-process"). Their provisioning bundles — private keys included — are
 * made once and kept in `<dataDir>/demo/` (mode 0600), so a restart runs the same controllers
 * against the same stored public keys.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateRawKeyPair, type Logger, type ProvisioningBundle } from '@smart-passage/protocol';
import { FileStateStore, ReferenceController } from '@smart-passage/protocol/controller';
import type { PasswordHasher } from '../features/auth/passwords.js';
import type { StorePort } from '../store/port.js';
import { DEMO_USERNAMES, demoDistrict } from './district.js';
import { demoControllerDoors, seedDemo, type SeedReport } from './seed.js';

interface DemoSecrets {
  passwords: Record<string, string>;
  bundles: Record<string, ProvisioningBundle>;
}

function readSecrets(file: string): DemoSecrets | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as DemoSecrets;
}

function writeSecrets(file: string, s: DemoSecrets): void {
  writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
}

const password = () => randomBytes(9).toString('base64url');

export interface DemoOptions {
  store: StorePort;
  dataDir: string;
  hasher: PasswordHasher;
  mqttUrl: string;
  /** The gateway's public signing keys the controllers trust. */
  gatewayKeys: { kid: string; publicKey: string }[];
  logger: Logger;
  /** Passwords to use instead of generated ones (tests; SP_ADMIN_PASSWORD for the admin). */
  passwords?: Record<string, string>;
}

export class DemoRuntime {
  readonly #o: DemoOptions;
  readonly controllers: ReferenceController[] = [];
  #secrets: DemoSecrets = { passwords: {}, bundles: {} };
  report: SeedReport | undefined;

  constructor(o: DemoOptions) {
    this.#o = o;
  }

  /** The demo users' passwords (printed in the start banner, never logged). */
  get passwords(): Readonly<Record<string, string>> {
    return this.#secrets.passwords;
  }

  async start(): Promise<void> {
    const dir = join(this.#o.dataDir, 'demo');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'secrets.json');
    const secrets = readSecrets(file) ?? { passwords: {}, bundles: {} };
    for (const u of Object.values(DEMO_USERNAMES)) secrets.passwords[u] ??= password();
    Object.assign(secrets.passwords, this.#o.passwords ?? {});
    const district = demoDistrict({ now: Date.now() });
    const mqttPasswords = new Map<string, string>();
    this.report = await seedDemo(this.#o.store, {
      passwords: secrets.passwords,
      hash: (pw) => this.#o.hasher.hash(pw),
      now: Date.now(),
      controllerKeys: async (id) => {
        const keys = generateRawKeyPair();
        const mqttPassword = password();
        mqttPasswords.set(id, mqttPassword);
        const kid = `${id}-k1`;
        const doors = demoControllerDoors(district).find((c) => c.controllerId === id)?.doors ?? [];
        secrets.bundles[id] = {
          controllerId: id,
          mqtt: { url: this.#o.mqttUrl, username: id, password: mqttPassword },
          gatewayKeys: this.#o.gatewayKeys,
          controllerKid: kid,
          controllerKey: { kid, privateKey: keys.privateKey },
          offlineSecret: randomBytes(32).toString('base64url'),
          doors: doors.map((ref) => ({ ref })),
        };
        return { publicKey: keys.publicKey, controllerKid: kid, mqttPasswordHash: await this.#o.hasher.hash(mqttPassword), offlineSecret: secrets.bundles[id].offlineSecret! };
      },
    });
    this.#secrets = secrets;
    writeSecrets(file, secrets);
    for (const bundle of Object.values(secrets.bundles)) {
      // The broker URL may differ from the last run (another port): the rest of the bundle holds.
      const c = new ReferenceController({
        bundle: { ...bundle, mqtt: { ...bundle.mqtt, url: this.#o.mqttUrl }, gatewayKeys: this.#o.gatewayKeys },
        store: new FileStateStore(join(dir, 'state', `${bundle.controllerId}.json`)),
        vendor: 'smart-passage-demo',
      });
      this.controllers.push(c);
    }
    await Promise.all(this.controllers.map((c) => c.start({ waitForConnection: false })));
    this.#o.logger.info('demo district running', { controllers: this.controllers.length, seeded: this.report.inserted });
  }

  async stop(): Promise<void> {
    await Promise.all(this.controllers.map((c) => c.stop()));
  }
}
