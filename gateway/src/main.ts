/**
 * `npm start` — the composition root (STYLE.md): read config, build the adapters and features,
 * wire them, run until SIGINT/SIGTERM, stop them in reverse order. Nothing else lives here.
 *
 * It starts the gateway (gateway.ts): with no SP_REDIS_URL and no SP_MQTT_URL, on the embedded
 * store and broker, with the demo district (DESIGN §2).
 *
 * Exit codes: 0 after a signal-initiated stop, 1 when the configuration is invalid or something
 * could not start. Expected failures print advice, never a stack trace.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamLogger } from '@smart-passage/protocol';
import { probeBroker } from './adapters/broker-probe.js';
import { failureMessage, startBanner } from './banner.js';
import { loadConfig } from './config.js';
import { DEMO_USERNAMES } from './demo/district.js';
import { Gateway } from './gateway.js';
import type { BaseMapGeoJson } from './features/map/routes.js';

/** The dispatch UI's build, found from this file (gateway/dist/main.js), not from the cwd. */
const UI_DIR = fileURLToPath(new URL('../../dispatch-ui/dist/', import.meta.url));

/** SP_BASEMAP_FILE: a GeoJSON FeatureCollection, checked enough for the map to draw it. */
function readBasemap(file: string): BaseMapGeoJson {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`SP_BASEMAP_FILE ${file} cannot be read as JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fc = parsed as { type?: unknown; features?: unknown };
  const ok =
    fc.type === 'FeatureCollection' &&
    Array.isArray(fc.features) &&
    fc.features.every((f: { type?: unknown; properties?: unknown; geometry?: { type?: unknown; coordinates?: unknown } | null }) => f?.type === 'Feature' && typeof f.geometry?.type === 'string' && f.geometry.coordinates !== undefined);
  if (!ok) throw new Error(`SP_BASEMAP_FILE ${file} is not a GeoJSON FeatureCollection of features with geometries`);
  const features = (fc.features as { properties?: unknown }[]).map((f) => ({ ...f, properties: typeof f.properties === 'object' && f.properties !== null ? f.properties : {} }));
  return { ...(parsed as BaseMapGeoJson), features: features as BaseMapGeoJson['features'] };
}

async function main(): Promise<number> {
  const loaded = loadConfig(process.env);
  if (!loaded.ok) {
    process.stderr.write(`Smart Passage cannot start: invalid configuration\n${loaded.problems.map((p) => `  - ${p}\n`).join('')}`);
    return 1;
  }
  const { config, notes } = loaded;
  const log = streamLogger('gateway', config.logLevel);
  const external = config.mqttUrl !== undefined || config.redisUrl !== undefined;
  // DESIGN §2: the demo is on by default only for the single-machine setup.
  const demo = config.demo === undefined ? !external : config.demo === 'on';

  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  // After the first signal the default handler is back, so a second Ctrl-C ends at once.
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  let gateway: Gateway | undefined;
  const startup = (async () => {
    if (config.mqttUrl !== undefined) await probeBroker(config.mqttUrl);
    const basemap = config.basemapFile === undefined ? undefined : readBasemap(config.basemapFile);
    const uiBuilt = existsSync(join(UI_DIR, 'index.html'));
    if (!uiBuilt) {
      log.warn('UI not built: run npm run build (serving the API only)', { dir: UI_DIR });
      notes.push(`UI not built: run npm run build (looked in ${UI_DIR}); the API runs without it`);
    }
    const mqttPassword = config.mqttPasswordFile === undefined ? undefined : readFileSync(config.mqttPasswordFile, 'utf8').trim();
    gateway = new Gateway({
      dataDir: config.dataDir,
      http: { host: config.host, port: config.port },
      mqtt:
        config.mqttUrl !== undefined
          ? { url: config.mqttUrl, ...(config.mqttUsername !== undefined ? { username: config.mqttUsername } : {}), ...(mqttPassword !== undefined ? { password: mqttPassword } : {}), accounts: config.mqttAccounts, events: config.mqttEvents }
          : { embedded: { host: config.mqttHost, port: config.mqttPort } },
      ...(config.redisUrl !== undefined ? { redisUrl: config.redisUrl, redisPrefix: config.redisPrefix } : {}),
      ...(config.instanceId !== undefined ? { instanceId: config.instanceId } : {}),
      demo,
      ...(config.adminUser !== undefined && config.adminPassword !== undefined ? { admin: { username: config.adminUser, password: config.adminPassword } } : {}),
      corsOrigins: config.corsOrigins,
      ...(uiBuilt ? { staticDir: UI_DIR } : {}),
      map: {
        ...(config.tileUrl !== undefined ? { tileUrl: config.tileUrl } : {}),
        ...(config.tileAttribution !== undefined ? { attribution: config.tileAttribution } : {}),
        ...(basemap !== undefined ? { basemap } : {}),
      },
      audit: {
        checkpointEvery: config.auditCheckpointEntries,
        checkpointMs: config.auditCheckpointSeconds * 1000,
        retentionMs: config.auditRetentionDays * 86_400_000,
        ...(config.auditArchiveDir !== undefined ? { archiveDir: config.auditArchiveDir } : {}),
      },
      ...(config.metricsToken !== undefined ? { metricsToken: config.metricsToken } : {}),
      ...(config.trustProxy > 0 ? { trustProxy: config.trustProxy } : {}),
      ...(config.drillMaxAgeDays > 0 ? { drills: { maxAgeMs: config.drillMaxAgeDays * 86_400_000 } } : {}),
      webhooks: { backoffMs: config.webhookBackoffMs, maxAttempts: config.webhookMaxAttempts, allowHttp: config.webhookAllowHttp === 'on' },
      env: process.env,
      logger: log,
    });
    await gateway.start();
    const g = gateway;
    const passwords = g.demo?.passwords ?? {};
    const users = Object.values(DEMO_USERNAMES).flatMap((username) => {
      const password = passwords[username];
      return password === undefined ? [] : [{ username, role: roleOf(username), password }];
    });
    process.stdout.write(
      startBanner({
        httpUrl: g.httpUrl,
        ui: uiBuilt,
        mqttUrl: g.mqttUrl,
        embeddedBroker: g.broker !== undefined,
        embeddedStore: config.redisUrl === undefined,
        dataDir: config.dataDir,
        ...(g.demo ? { demo: { controllers: g.demo.controllers.length, users } } : {}),
        ...(config.adminUser !== undefined ? { admin: config.adminUser } : {}),
        notes,
      }),
    );
  })();

  type Outcome = { kind: 'started' } | { kind: 'signal'; signal: NodeJS.Signals } | { kind: 'failed'; err: unknown };
  const outcome = await Promise.race<Outcome>([
    startup.then(
      () => ({ kind: 'started' }),
      (err: unknown) => ({ kind: 'failed', err }),
    ),
    signalled.then((signal) => ({ kind: 'signal', signal })),
  ]);
  let code = 0;
  if (outcome.kind === 'failed') {
    process.stderr.write(failureMessage(outcome.err, config.mqttUrl));
    code = 1;
  } else {
    const signal = outcome.kind === 'signal' ? outcome.signal : await signalled;
    log.info('stopping', { signal });
    await startup.catch(() => undefined);
  }
  await gateway?.stop().catch((err: unknown) => log.warn('stop incomplete', { err: String(err) }));
  return code;
}

function roleOf(username: string): string {
  const entry = Object.entries(DEMO_USERNAMES).find(([, u]) => u === username)?.[0] ?? '';
  return entry.startsWith('responder') ? 'responder' : entry.startsWith('owner') ? 'owner' : entry;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`Smart Passage stopped on an unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
