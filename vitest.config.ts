import { defineConfig } from 'vitest/config';

// Test tiers (STYLE.md): unit tests are pure and fast; integration tests meet real brokers
// (the machine's Mosquitto on 127.0.0.1:1883 and embedded aedes on ports of their own).
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
    ],
  },
});
