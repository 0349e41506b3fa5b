/**
 * @smart-passage/gateway — what other packages and tests may import. The process entry point is
 * `main.ts` (`npm start`), which runs on import and so is not re-exported here.
 */
export { CONFIG_SCHEMA, describeConfig, loadConfig, redactUrl, type Config, type ConfigResult } from './config.js';
export { EmbeddedBroker, PortInUseError, PortNotAllowedError, type EmbeddedBrokerOptions } from './adapters/embedded-broker.js';
export { failureMessage, portInUseMessage, startBanner, type BannerFacts } from './banner.js';
