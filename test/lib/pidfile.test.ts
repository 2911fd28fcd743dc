import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isP2vError } from '../../lib/errors.js';
import { waitForPidfile } from '../../lib/pidfile.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'p2v-pidfile-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const wait = { program: 'sh', readiness: 'serving', hint: 'look at its messages' };

describe('waitForPidfile', () => {
  it('returns once the program has written its pid file, not while it is empty', async () => {
    const pidfile = join(dir, 'x.pid');
    // An empty pid file first (created, not yet written), the pid 300 ms later.
    const child = execa('sh', ['-c', ': > "$1"; sleep 0.3; echo $$ > "$1"; exec sleep 30', 'sh', pidfile]);
    try {
      const t0 = Date.now();
      await waitForPidfile(pidfile, child, { ...wait, timeoutMs: 10_000 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGKILL');
      await child.catch(() => undefined);
    }
  });

  it('fails at once with the last lines of stderr when the program exits first', async () => {
    const child = execa('sh', ['-c', 'echo one >&2; echo "cannot bind socket" >&2; exit 3']);
    const t0 = Date.now();
    const e = await waitForPidfile(join(dir, 'never.pid'), child, { ...wait, timeoutMs: 10_000 }).catch((x) => x);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(isP2vError(e, 'COMMAND_FAILED')).toBe(true);
    expect([e.message, e.stderrTail, e.hint]).toEqual([
      'sh exited before serving',
      'one\ncannot bind socket',
      'look at its messages',
    ]);
  });

  it('gives up after the timeout while the program still runs', async () => {
    const child = execa('sleep', ['30']);
    try {
      const e = await waitForPidfile(join(dir, 'never.pid'), child, {
        ...wait,
        program: 'sleep',
        timeoutMs: 300,
      }).catch((x) => x);
      expect(isP2vError(e, 'COMMAND_FAILED')).toBe(true);
      expect(e.message).toBe('sleep did not start within 0.3 s');
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGKILL');
      await child.catch(() => undefined);
    }
  });

  it('accepts a pid file that is already there', async () => {
    const pidfile = join(dir, 'ready.pid');
    await writeFile(pidfile, '1\n');
    const child = execa('sleep', ['30']);
    try {
      await waitForPidfile(pidfile, child, { ...wait, timeoutMs: 1_000 });
    } finally {
      child.kill('SIGKILL');
      await child.catch(() => undefined);
    }
  });
});
