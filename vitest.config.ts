import { defineConfig } from 'vitest/config';

/**
 * The end-to-end core run a second time against a local 3-master Redis Cluster
 * (test/global-setup.ts starts it): send, batch, the webhook lifecycle, every
 * fallback trigger, revoke, callbacks, failures and re-drive, metrics, bull-board
 * pages, coalescing, and agents at run time. startHarness() takes the cluster
 * when RBM_TEST_REDIS=cluster.
 */
const CLUSTER_CORE = [
  'test/api.test.ts',
  'test/lifecycle.test.ts',
  'test/callbacks.test.ts',
  'test/failures.test.ts',
  'test/metrics.test.ts',
  'test/admin.test.ts',
  'test/coalescing.test.ts',
  'test/agents.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    // Deadlines bound how long a failure takes, not how long a pass does: generous, so that a
    // busy machine (child processes starting slowly, a second suite beside this one) is not a failure.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: files run two at a time, each against its own queue prefix.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'single',
          include: ['test/**/*.test.ts'],
          typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
        },
      },
      { extends: true, test: { name: 'cluster', include: CLUSTER_CORE, env: { RBM_TEST_REDIS: 'cluster' } } },
    ],
  },
});
