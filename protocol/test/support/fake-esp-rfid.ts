/** The fake esp-rfid device lives in the package (gateway tests use it too); tests import it here. */
export { FakeEspRfid, type FakeDeviceOptions, type FakeUser } from '../../src/bridges/esp-rfid/fake-device.js';
