/**
 * The 'ui' test project's environment: Node's globals (no DOM), but modules are transformed as for
 * the browser (Vite's client environment), so vite-plugin-svelte compiles `*.svelte.ts` with
 * `generate: 'client'`. Under the plain 'node' environment it compiles them for the server, where
 * `$effect` never runs and nothing is reactive. No jsdom or happy-dom needed for state and logic.
 */
import type { Environment } from 'vitest/environments';

export default {
  name: 'svelte-client',
  viteEnvironment: 'client',
  setup() {
    return { teardown() {} };
  },
} satisfies Environment;
