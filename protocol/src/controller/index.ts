/** The reference controller (DESIGN §5.8): import from `@smart-passage/protocol/controller`. */
export * from './reference-controller.js';
export * from './decide.js';
export * from './state-store.js';
export { connectMqtt, hasNoDelay, type MqttConnectOptions } from '../mqtt/connect.js';
