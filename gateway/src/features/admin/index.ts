/**
 * The administrative REST resources (issue 3 CRUD; DESIGN §6, §7), one module each. The lead
 * mounts `adminRoutes(deps)` next to the auth, incident and grant routes.
 */
import type { RouteDef } from '../../http/routes.js';
import type { PasswordHasher } from '../auth/passwords.js';
import { agencyRoutes } from './agencies.js';
import { buildingRoutes } from './buildings.js';
import type { AdminDeps } from './common.js';
import { doorRoutes } from './doors.js';
import { organisationRoutes } from './organisations.js';
import { tagRoutes } from './tags.js';
import { unitRoutes } from './units.js';
import { userRoutes } from './users.js';

export type { AdminDeps } from './common.js';
export { agencyRoutes, buildingRoutes, doorRoutes, organisationRoutes, tagRoutes, unitRoutes, userRoutes };
export { publicUser, type PublicUser } from './users.js';

export function adminRoutes(deps: AdminDeps & { hasher: PasswordHasher }): RouteDef[] {
  return [
    ...organisationRoutes(deps),
    ...userRoutes(deps),
    ...buildingRoutes(deps),
    ...doorRoutes(deps),
    ...agencyRoutes(deps),
    ...unitRoutes(deps),
    ...tagRoutes(deps),
  ];
}
