/** The esp-rfid bridge (BRIDGES.md): import from `@smart-passage/protocol/bridges/esp-rfid`. */
export * from './bridge.js';
export * from './bridged-device.js';
export * from './esp-rfid-json.js';
export * from './fake-device.js';
