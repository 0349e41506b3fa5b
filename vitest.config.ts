import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

// Test tiers (STYLE.md): unit tests are pure and fast; integration tests meet real brokers
// (the machine's Mosquitto on 127.0.0.1:1883 and embedded aedes on ports of their own); the UI's
// unit tests compile Svelte (runes in *.svelte.ts state classes) as the browser build does; the
// end-to-end tests drive the built UI, served by a real gateway process, in Debian's Chromium.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['protocol/test/unit/**/*.test.ts', 'gateway/test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['protocol/test/integration/**/*.test.ts', 'gateway/test/integration/**/*.test.ts', 'gateway/test/store/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        // Compiled for the browser (client transform, 'browser' export conditions), so runes in
        // state classes react as in the UI: `$effect` runs, `flushSync()` settles. Runes inside a
        // test itself need the file named `*.svelte.test.ts`. Node globals, no DOM.
        plugins: [svelte({ configFile: './dispatch-ui/svelte.config.js' })],
        resolve: { conditions: ['browser'] },
        test: {
          name: 'ui',
          include: ['dispatch-ui/test/unit/**/*.test.ts'],
          environment: './dispatch-ui/test/support/svelte-client-env.ts',
        },
      },
      {
        // One gateway process and one Chromium per file, files one after another: they are heavy,
        // and a browser starved of CPU makes timing-dependent steps flaky.
        test: {
          name: 'e2e',
          include: ['dispatch-ui/test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 90_000,
          fileParallelism: false,
          sequence: { concurrent: false },
        },
      },
    ],
  },
});
