import { defineConfig } from 'vitest/config';

// Unit and integration tests of app/ (Node) and renderer/ (jsdom, chosen per file with
// `// @vitest-environment jsdom`). They run the real engine on the small models in ../shared/data.
export default defineConfig({
  test: {
    include: ['app/**/*.test.ts', 'renderer/**/*.test.{ts,tsx}'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
