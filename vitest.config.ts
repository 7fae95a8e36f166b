import { defineConfig } from 'vitest/config';

/**
 * Three projects: unit tests (no servers), and the integration + end-to-end suite twice, on the oldest and the
 * newest supported PostgreSQL (each started once per project by its global setup, from the npm-shipped binaries).
 */
const ONCE_ON_NEWEST = ['test/local/sigkill.test.ts', 'test/local/fleet.test.ts'];
const integration = ['test/lambdas/**/*.int.test.ts', 'test/cli/**/*.int.test.ts', 'test/local/**/*.test.ts'];

export default defineConfig({
  test: {
    // Lambda-style JSON logs and EMF metrics stay quiet in tests; tests that assert on them capture them.
    env: {
      POWERTOOLS_LOG_LEVEL: 'ERROR',
      POWERTOOLS_METRICS_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...integration, 'test/lib/**', 'test/bench/**'],
        },
      },
      { extends: true, test: { name: 'cdk', include: ['test/lib/**/*.test.ts'] } },
      { extends: true, test: { name: 'bench', include: ['test/bench/**/*.test.ts'] } },
      ...([14, 18] as const).map((version) => ({
        extends: true as const,
        test: {
          name: `pg${version}`,
          include: integration,
          // The two longest runs prove nothing version-specific twice: in `npm test` the SIGKILL crash loop and the
          // 1000-table fleet run once, on the newest version; `PROOF_PG=14 npm run proof` runs the crash proofs on 14.
          exclude: version === 14 && !process.env.PROOF_PG ? ONCE_ON_NEWEST : [],
          globalSetup: [`test/support/postgres-pg${version}.global.ts`],
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      })),
    ],
  },
});
