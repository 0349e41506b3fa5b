/** What the roster's CSV and SCIM routes share. */
import type { AuditActor } from '@smart-passage/protocol';
import { AppError } from '../../errors.js';
import type { Principal } from '../../http/routes.js';
import type { StorePort } from '../../store/port.js';
import type { RosterService } from './roster-service.js';

export interface RosterRouteDeps {
  store: StorePort;
  roster: RosterService;
}

/** Who the audit names for a roster change: the importing user, or an integration's key. */
export function actorOf(p: Principal): AuditActor {
  return (p.role as string) === 'integration' ? { kind: 'integration', id: p.userId } : { kind: 'user', id: p.userId };
}

export async function mustBeAgency(store: StorePort, id: string): Promise<void> {
  if ((await store.get('agencies', id)) === undefined) throw AppError.notFound('agency');
}

