import { defineConfig } from 'vitest/config';

// Default suite: unit tests and integration tests against the real programs
// (nbdkit, qemu-img, losetup, mount, …). Slow boot/Ganeti tests are *.slow.test.ts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.slow.test.ts', 'node_modules/**', 'dist/**'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
  },
});
