/**
 * Who is logged in (immich-style: a small class with private $state and getters). The token
 * handling itself is in api/client.ts; this mirrors its session for the components.
 */
import { api, type Api } from '../api/client';
import type { Role, SessionUser } from '../api/types';

export class SessionState {
  #user = $state<SessionUser | undefined>(undefined);
  readonly #api: Api;

  constructor(client: Api = api) {
    this.#api = client;
    this.#user = client.session?.user;
    client.onSession((s) => (this.#user = s?.user));
  }

  get user(): SessionUser | undefined {
    return this.#user;
  }

  get role(): Role | undefined {
    return this.#user?.role;
  }

  async login(username: string, password: string): Promise<void> {
    await this.#api.login(username, password);
  }

  async logout(): Promise<void> {
    await this.#api.logout();
  }
}

export const session = new SessionState();
