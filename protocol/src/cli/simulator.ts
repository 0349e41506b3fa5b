#!/usr/bin/env node
/**
 * `sp-sim` (root: `npm run sim`): run a fleet of reference controllers (DESIGN §5.8).
 * Usage in SIMULATOR_USAGE; exit 0 when done, 1 when the fleet could not run, 2 on bad arguments.
 */
import { join, relative } from 'node:path';
import { streamLogger } from '../log.js';
import { DEFAULT_MQTT_URL, parseSimulatorArgs, SIMULATOR_USAGE } from '../simulator/args.js';
import { Fleet } from '../simulator/fleet.js';
import { FleetFileError, generateFleet, generateTagUids, readBundlesDir, readFleetFile, writeFleetFile, type FleetSpec } from '../simulator/fleet-file.js';
import { formatSummary, LiveSummary } from '../simulator/summary.js';

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseSimulatorArgs(argv);
  if (parsed.kind === 'help') {
    process.stdout.write(SIMULATOR_USAGE);
    return 0;
  }
  if (parsed.kind === 'invalid') {
    process.stderr.write(`sp-sim: ${parsed.problems.length === 1 ? 'a problem' : `${parsed.problems.length} problems`} with the arguments:\n`);
    for (const p of parsed.problems) process.stderr.write(`  - ${p}\n`);
    process.stderr.write(`\n${SIMULATOR_USAGE}`);
    return 2;
  }
  const args = parsed.args;
  const log = streamLogger('sp-sim', args.logLevel);

  let spec: FleetSpec;
  let fleetFile: string | undefined;
  try {
    switch (args.source.kind) {
      case 'generate': {
        const fleet = generateFleet({ ...args.source, url: args.url ?? DEFAULT_MQTT_URL });
        fleetFile = join(args.dataDir, 'fleet.json');
        writeFleetFile(fleetFile, fleet);
        spec = fleet;
        break;
      }
      case 'bundles':
        spec = { controllers: readBundlesDir(args.source.dir) };
        break;
      case 'fleet':
        spec = readFleetFile(args.source.file);
        fleetFile = args.source.file;
        break;
    }
  } catch (err) {
    const problems = err instanceof FleetFileError ? err.problems : [err instanceof Error ? err.message : String(err)];
    process.stderr.write(`sp-sim: cannot load the fleet:\n${problems.map((p) => `  - ${p}\n`).join('')}`);
    return 1;
  }

  const tags = args.tags.kind === 'list' ? args.tags.uids : generateTagUids(args.tags.count);
  const url = args.url ?? spec.controllers[0]?.mqtt.url ?? DEFAULT_MQTT_URL;
  const doors = spec.controllers.reduce((n, b) => n + (b.doors?.length ?? 0), 0);
  const out = process.stdout;
  out.write(
    [
      `sp-sim: ${spec.controllers.length} controllers, ${doors} doors → ${url} (state: ${args.state})`,
      ...(fleetFile ? [`fleet file: ${displayPath(fleetFile)} (mode 0600; holds private keys)`] : []),
      `tags: ${tags.length <= 12 ? tags.join(',') : `${tags.slice(0, 12).join(',')},… (${tags.length})`}`,
      `presentations: ${args.rate}/s${args.grantDemo ? ' · grant demo on: some tags granted for 60 s at a time' : ''}`,
      `${args.durationSeconds > 0 ? `running ${args.durationSeconds} s` : 'running'} — Ctrl-C to stop`,
      '',
    ].join('\n'),
  );

  const fleet = new Fleet({
    fleet: spec,
    ...(args.url !== undefined && args.source.kind !== 'generate' ? { url: args.url } : {}),
    state: args.state,
    dataDir: args.dataDir,
    tags,
    rate: args.rate,
    concurrency: args.concurrency,
    grantDemo: args.grantDemo,
    logger: log,
    // A fleet's controllers repeat each other (a thousand `mqtt error` lines a second while the
    // broker is down); their figures are in the summary, their logs only when asked for.
    controllerLogger: args.logLevel === 'debug' || args.logLevel === 'info' ? log : streamLogger('sp-sim controller', 'error'),
  });
  const live = new LiveSummary({ out, line: () => formatSummary(fleet.stats()) });

  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  // After the first signal the default handler is back: a second Ctrl-C ends at once.
  process.once('SIGINT', () => finish());
  process.once('SIGTERM', () => finish());
  let failed: Error | undefined;
  let durationTimer: NodeJS.Timeout | undefined;
  live.start();
  fleet.start().then(
    () => {
      if (args.durationSeconds > 0) durationTimer = setTimeout(finish, args.durationSeconds * 1000);
    },
    (err: unknown) => {
      failed = err instanceof Error ? err : new Error(String(err));
      finish();
    },
  );
  await finished;
  clearTimeout(durationTimer);
  live.stop();
  if (failed !== undefined) {
    process.stderr.write(`sp-sim: the fleet failed to start: ${failed.message}\n`);
  }
  // Let the last events reach the broker, so the final figures say what was delivered.
  const drained = failed === undefined ? await fleet.quiesce(5_000) : false;
  const stats = fleet.stats();
  out.write(`final: ${formatSummary(stats)}\n`);
  out.write(`presentations ${stats.presentations} · ${drained ? 'every event acknowledged' : `${stats.backlog} events not acknowledged`}\n`);
  await fleet.stop();
  return failed === undefined ? 0 : 1;
}

function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel.startsWith('..') ? p : rel;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sp-sim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
