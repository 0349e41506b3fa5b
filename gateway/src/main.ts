/**
 * `npm start` — the composition root (STYLE.md): read config, build the adapters and features,
 * wire them, run until SIGINT/SIGTERM, stop them in reverse order. Nothing else lives here.
 *
 * Until the gateway issue lands this starts what a developer needs to see the protocol work:
 * the embedded MQTT broker (DESIGN §2; or SP_MQTT_URL's broker) and a demo fleet of reference
 * controllers with a stand-in dispatcher granting tags (DESIGN §5.8).
 *
 * Exit codes: 0 after a signal-initiated stop, 1 when the configuration is invalid or something
 * could not start. Expected failures print advice, never a stack trace.
 */
import { join } from 'node:path';
import { streamLogger } from '@smart-passage/protocol';
import { Fleet, formatSummary, generateFleet, generateTagUids, LiveSummary, writeFleetFile } from '@smart-passage/protocol/simulator';
import { probeBroker } from './adapters/broker-probe.js';
import { EmbeddedBroker } from './adapters/embedded-broker.js';
import { failureMessage, startBanner } from './banner.js';
import { loadConfig } from './config.js';

/** Responders' tags in the demo: few enough that a grant covers a visible share of them. */
const DEMO_TAGS = 6;

async function main(): Promise<number> {
  const loaded = loadConfig(process.env);
  if (!loaded.ok) {
    process.stderr.write(`Smart Passage cannot start: invalid configuration\n${loaded.problems.map((p) => `  - ${p}\n`).join('')}`);
    return 1;
  }
  const { config, notes } = loaded;
  const log = streamLogger('gateway', config.logLevel);
  // One `online` line per controller would bury the banner: controllers log warnings only.
  const controllerLog = streamLogger('controller', config.logLevel === 'debug' ? 'debug' : 'warn');

  let broker: EmbeddedBroker | undefined;
  let fleet: Fleet | undefined;
  let live: LiveSummary | undefined;

  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  // After the first signal the default handler is back, so a second Ctrl-C ends at once.
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  let stopRequested = false;
  void signalled.then(() => (stopRequested = true));

  const startup = (async () => {
    let url: string;
    if (config.mqttUrl !== undefined) {
      url = config.mqttUrl;
      await probeBroker(url);
    } else {
      const b = new EmbeddedBroker({ host: config.mqttHost, port: config.mqttPort, logger: log });
      await b.start();
      broker = b;
      url = b.url;
    }
    let demo: Parameters<typeof startBanner>[0]['demo'];
    if (config.demoControllers > 0) {
      const simDir = join(config.dataDir, 'sim');
      const fleetFile = join(simDir, 'fleet.json');
      const spec = generateFleet({ controllers: config.demoControllers, doors: config.demoDoors, url });
      writeFleetFile(fleetFile, spec);
      const tags = generateTagUids(DEMO_TAGS);
      fleet = new Fleet({
        fleet: spec,
        state: 'file',
        dataDir: simDir,
        tags,
        rate: config.demoRate,
        grantDemo: true,
        logger: log,
        controllerLogger: controllerLog,
      });
      await fleet.start();
      demo = {
        controllers: spec.controllers.length,
        doors: config.demoDoors,
        firstId: spec.controllers[0]?.controllerId ?? '',
        lastId: spec.controllers.at(-1)?.controllerId ?? '',
        rate: config.demoRate,
        tags,
        fleetFile,
        stateDir: join(simDir, 'state'),
      };
    }
    if (stopRequested) return;
    process.stdout.write(startBanner({ url, embedded: broker !== undefined, notes, ...(demo ? { demo } : {}) }));
    if (fleet) {
      const f = fleet;
      live = new LiveSummary({ out: process.stdout, line: () => formatSummary(f.stats()) });
      live.start();
    }
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
    // A signal during startup: stop the fleet's connecting so startup settles at once.
    if (outcome.kind === 'signal') await fleet?.stop();
    await startup.catch(() => undefined);
  }

  // Reverse order of start: controllers say goodbye (retained offline state) while the broker is up.
  live?.stop();
  if (fleet) {
    // The last events reach the broker first, so the final figures say what was delivered.
    if (code === 0) {
      await fleet.quiesce(2_000);
      process.stdout.write(`final: ${formatSummary(fleet.stats())}\n`);
    }
    await fleet.stop();
  }
  await broker?.stop();
  return code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`Smart Passage stopped on an unexpected error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
