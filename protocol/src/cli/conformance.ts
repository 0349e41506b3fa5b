#!/usr/bin/env node
/**
 * `sp-conformance` (`npm run conformance -- --help`): check a controller against PROTOCOL.md
 * P-1…P-25 over MQTT. The logic lives in `../conformance/cli.ts`.
 */
import { runCli } from '../conformance/cli.js';

process.exitCode = await runCli(process.argv.slice(2), { out: process.stdout, err: process.stderr });
