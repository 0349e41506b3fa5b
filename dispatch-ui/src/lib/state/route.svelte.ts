/**
 * Hash routing (`#/dispatch`, `#/owner`, …): the gateway serves one index.html, and a hash never
 * reaches the server, so every view is a bookmarkable URL with no server-side routes.
 */
import type { Role } from '../api/types';

export type View = 'dispatch' | 'owner' | 'responder' | 'admin';

/** The views each role may open, the first being its home. */
export const VIEWS_OF: Record<Role, readonly View[]> = {
  admin: ['dispatch', 'admin', 'owner'],
  dispatcher: ['dispatch'],
  owner: ['owner'],
  responder: ['responder'],
};

export const VIEW_LABEL: Record<View, string> = { dispatch: 'Dispatch', owner: 'Owner portal', responder: 'My access', admin: 'Admin' };

function parse(hash: string): { view: string; rest: string[] } {
  const [view = '', ...rest] = hash.replace(/^#\/?/, '').split('/');
  return { view, rest };
}

export class RouteState {
  #hash = $state(typeof location === 'undefined' ? '' : location.hash);

  constructor() {
    if (typeof window !== 'undefined') window.addEventListener('hashchange', () => (this.#hash = location.hash));
  }

  /** The view to show for `role`: the one in the URL when the role may open it, else its home. */
  viewFor(role: Role): View {
    const { view } = parse(this.#hash);
    const allowed = VIEWS_OF[role];
    return (allowed as readonly string[]).includes(view) ? (view as View) : (allowed[0] as View);
  }

  /** Path segments after the view (`#/admin/buildings` → ['buildings']). */
  get rest(): string[] {
    return parse(this.#hash).rest;
  }

  go(view: View, ...rest: string[]): void {
    location.hash = `#/${[view, ...rest].join('/')}`;
  }
}

export const route = new RouteState();
