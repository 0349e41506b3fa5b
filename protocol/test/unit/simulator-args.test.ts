// `sp-sim` argument parsing: defaults, each mode, and every problem reported in one go.
import { describe, expect, it } from 'vitest';
import { parseSimulatorArgs, type SimulatorArgs } from '../../src/simulator/args.js';

function run(argv: string[]): SimulatorArgs {
  const r = parseSimulatorArgs(argv);
  if (r.kind !== 'run') throw new Error(`expected run, got ${JSON.stringify(r)}`);
  return r.args;
}

function problems(argv: string[]): string[] {
  const r = parseSimulatorArgs(argv);
  if (r.kind !== 'invalid') throw new Error(`expected problems, got ${JSON.stringify(r)}`);
  return r.problems;
}

describe('parseSimulatorArgs', () => {
  it('defaults to a generated fleet of 10 × 3 in memory, 8 tags, 5/s, until Ctrl-C', () => {
    expect(run([])).toEqual({
      source: { kind: 'generate', controllers: 10, doors: 3, prefix: 'sim' },
      url: undefined,
      state: 'memory',
      dataDir: './data/sim',
      tags: { kind: 'count', count: 8 },
      rate: 5,
      durationSeconds: 0,
      concurrency: 50,
      grantDemo: false,
      logLevel: 'warn',
    });
  });

  it('reads every option of a generated run', () => {
    const a = run([
      '--controllers', '1000', '--doors', '4', '--url', 'mqtt://10.0.0.2:1884', '--state', 'file', '--data-dir', '/tmp/x',
      '--tag-count', '12', '--rate', '2.5', '--duration', '30', '--concurrency', '100', '--grant-demo', '--log-level', 'info',
      '--prefix', 'lab',
    ]);
    expect(a).toMatchObject({
      source: { kind: 'generate', controllers: 1000, doors: 4, prefix: 'lab' },
      url: 'mqtt://10.0.0.2:1884',
      state: 'file',
      dataDir: '/tmp/x',
      tags: { kind: 'count', count: 12 },
      rate: 2.5,
      durationSeconds: 30,
      concurrency: 100,
      grantDemo: true,
      logLevel: 'info',
    });
  });

  it('accepts --opt=value and upper-cases and de-duplicates --tags', () => {
    const a = run(['--tags=abcd1234,ABCD1234, 04a1b2c3d4e5f6 ', '--rate=0']);
    expect(a.tags).toEqual({ kind: 'list', uids: ['ABCD1234', '04A1B2C3D4E5F6'] });
    expect(a.rate).toBe(0);
  });

  it('takes bundles from a directory or a fleet file', () => {
    expect(run(['--bundles', './bundles']).source).toEqual({ kind: 'bundles', dir: './bundles' });
    expect(run(['--fleet', 'data/sim/fleet.json', '--grant-demo']).source).toEqual({ kind: 'fleet', file: 'data/sim/fleet.json' });
  });

  it('answers --help without judging the rest', () => {
    expect(parseSimulatorArgs(['--help', '--rate', 'x'])).toEqual({ kind: 'help' });
    expect(parseSimulatorArgs(['-h'])).toEqual({ kind: 'help' });
  });

  it('reports every problem at once', () => {
    const p = problems([
      '--controllers', '0', '--doors', 'many', '--url', 'http://x', '--state', 'disk', '--tags', 'XYZ,12', '--tag-count', '3',
      '--rate', '-1', '--duration', 'soon', '--concurrency', '0', '--log-level', 'loud', '--bogus', 'stray',
    ]);
    expect(p).toEqual([
      'unknown option --bogus',
      "unexpected argument 'stray'",
      '--controllers must be between 1 and 100000, got 0',
      "--doors must be a whole number, got 'many'",
      "--url must be an mqtt:// or mqtts:// URL, got 'http://x'",
      "--state must be memory or file, got 'disk'",
      '--tags and --tag-count cannot be used together',
      '--tags: uids are 4–32 hex digits; not: XYZ, 12',
      '--rate must be between 0 and 100000, got -1',
      "--duration must be a number, got 'soon'",
      '--concurrency must be between 1 and 10000, got 0',
      "--log-level must be one of debug|info|warn|error, got 'loud'",
    ]);
  });

  it('rejects conflicting fleet sources and options that do not apply', () => {
    expect(problems(['--bundles', 'b', '--fleet', 'f.json'])).toContain('--bundles and --fleet cannot be used together');
    expect(problems(['--fleet', 'f.json', '--controllers', '5', '--doors', '2'])).toEqual([
      '--controllers, --doors only apply when generating a fleet, not with --bundles/--fleet',
    ]);
    // Without the gateway's private key there is nothing to sign grants with.
    expect(problems(['--bundles', 'b', '--grant-demo'])).toEqual([
      '--grant-demo needs the gateway private key: use a generated fleet or --fleet, not --bundles',
    ]);
  });

  it('flags a missing value, a repeated option and a value on a flag', () => {
    expect(problems(['--controllers', '--doors', '3'])).toEqual(['--controllers needs a value', "unexpected argument '3'"]);
    expect(problems(['--rate', '1', '--rate', '2'])).toEqual(['--rate given more than once']);
    expect(problems(['--grant-demo=yes'])).toEqual(['--grant-demo takes no value']);
    expect(problems(['--controllers'])).toEqual(['--controllers needs a value']);
  });

  it('keeps controller ids within the protocol alphabet', () => {
    expect(problems(['--prefix', 'Sim/1'])).toEqual(["--prefix must be lower-case letters, digits and '-' (≤ 51), got 'Sim/1'"]);
  });
});
