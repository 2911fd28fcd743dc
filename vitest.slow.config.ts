import { defineConfig } from 'vitest/config';

// Slow suite: debootstrap-built guests booted under qemu TCG, the real Ganeti
// sandbox cluster, ramboot. One file at a time: they share the sandbox.
export default defineConfig({
  test: {
    include: ['test/**/*.slow.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 1_800_000,
    hookTimeout: 900_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
