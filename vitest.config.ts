import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    // Deadlines bound how long a failure takes, not how long a pass does: generous, so that a
    // busy machine (child processes starting slowly, a second suite beside this one) is not a failure.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: files run two at a time, each against its own queue prefix.
    maxWorkers: 2,
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
});
