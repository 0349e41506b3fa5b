// Fixtures shared by the unit tests of the dispatcher's logic and state.
import type { Door } from '../../src/lib/api/types';

/** A door of building bld-1 on controller ctl-1: an emergency entrance unless `over` says otherwise. */
export const door = (id: string, routeOrder: number, over: Partial<Door> = {}): Door => ({
  id,
  buildingId: 'bld-1',
  name: id,
  kind: 'entrance',
  routeOrder,
  controllerId: 'ctl-1',
  ref: id,
  pulseSeconds: 5,
  emergency: true,
  ...over,
});
