/**
 * The fleet simulator (DESIGN §5.8) as a library: import from `@smart-passage/protocol/simulator`.
 * @example
 * const fleet = new Fleet({ fleet: generateFleet({ controllers: 20, doors: 3, url }), tags, rate: 10, grantDemo: true });
 * await fleet.start(); … await fleet.quiesce(); await fleet.stop();
 */
export * from './fleet.js';
export * from './fleet-file.js';
export * from './demo-dispatcher.js';
export * from './summary.js';
export { parseSimulatorArgs, SIMULATOR_USAGE, DEFAULT_MQTT_URL, isMqttUrl, type SimulatorArgs, type FleetSource, type ParsedSimulatorArgs } from './args.js';
