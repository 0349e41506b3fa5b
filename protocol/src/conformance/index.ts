/**
 * The conformance suite (DESIGN §5.8): import from `@smart-passage/protocol/conformance`.
 *
 * `runConformance` plays the gateway for one controller over any MQTT broker and checks the
 * controller against PROTOCOL.md's requirements P-1…P-25, using only what a gateway can see on
 * the wire: the controller's retained state, its replies and its events. Hooks let a test bench
 * crash, restart, disconnect the controller and present tags at its readers; a requirement that
 * needs a hook that was not given is reported `manual`, with what to verify by hand.
 *
 * The run changes the controller: its highest accepted seq and applied grant version move up, and
 * test grants are synced (the last sync of the run removes them all). Run it on a test bench, not
 * on a controller a live gateway is talking to.
 */
import { privateKeyFromSeed } from '../keys.js';
import { silentLogger } from '../log.js';
import type { ConformanceOptions } from './options.js';
import { Findings, type ConformanceReport } from './report.js';
import { Run } from './run.js';
import { GatewaySession, PrefixWatcher } from './session.js';

export { DEFAULT_TEST_TAG, type ConformanceHooks, type ConformanceOptions } from './options.js';
export { REQUIREMENTS, type Requirement, type RequirementId } from './requirements.js';
export { formatReport, summarize, type CheckResult, type CheckStatus, type ConformanceReport } from './report.js';
export { ConformanceSetupError, GatewaySession, type Received, type SessionOptions } from './session.js';

/**
 * Run the suite against one controller. Resolves with a report (never throws for a
 * non-conforming controller); throws ConformanceSetupError when it cannot start at all
 * (broker unreachable, door not on the controller).
 * @example
 * const report = await runConformance({ url: 'mqtt://127.0.0.1:1883', controllerId: 'ctl-7', controllerKid: 'ctl-7-k1',
 *   controllerPublicKey, gatewayKey: { kid: 'gw-1', seed }, door: 'street' });
 * process.stdout.write(formatReport(report));
 */
export async function runConformance(opts: ConformanceOptions): Promise<ConformanceReport> {
  const startedAt = new Date();
  const log = opts.log ?? silentLogger;
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const sessionOptions = {
    url: opts.url,
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    controllerId: opts.controllerId,
    controllerKid: opts.controllerKid,
    controllerPublicKey: opts.controllerPublicKey,
    gatewayKey: { kid: opts.gatewayKey.kid, key: privateKeyFromSeed(opts.gatewayKey.seed) },
    log,
  };
  const session = new GatewaySession(sessionOptions);
  const watcher = new PrefixWatcher(sessionOptions, session.sentHashes);
  const findings = new Findings();
  const notes: string[] = [];
  try {
    await session.start(timeoutMs);
    await watcher.start(timeoutMs);
    await new Run(session, watcher, findings, notes, opts, log, timeoutMs).run();
  } finally {
    await watcher.close();
    await session.close();
  }
  return {
    controllerId: opts.controllerId,
    startedAt: startedAt.toISOString(),
    durationMs: Date.now() - startedAt.getTime(),
    results: findings.results(),
    notes,
  };
}
