// Build dist/ once before any test, so tests run the CLIs exactly as installed
// (bin/*.js → dist/bundle/, linked from dist/ by scripts/bundle.mjs). Type errors are reported by `tsc --noEmit` in scripts/test.sh;
// here we emit even with errors so one folder's work in progress does not stop another's tests.
// Several vitest runs may start at once: the emit goes to a fresh directory that
// replaces dist/ by rename under a lock, so no run ever reads a half-written file.
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/**
 * On this machine / has private mount propagation. The Ganeti sandbox's
 * daemons run under `ip netns exec`, which copies the mount table into a new
 * namespace: a test's temporary mount that exists at that moment is then held
 * there for the daemons' lifetime, and its loop device can never be detached
 * (test/e2e/support.ts detachLoop: "still backs … 15 s after losetup -d").
 * With / shared, as on any systemd host, `ip netns exec` makes its copy a
 * slave and our unmounts reach it.
 */
function shareRootMounts(): void {
  const prop = execFileSync('findmnt', ['-n', '-o', 'PROPAGATION', '/'], { encoding: 'utf8' }).trim();
  if (prop === 'private') execFileSync('mount', ['--make-rshared', '/']);
}

export default function setup(): void {
  if (process.getuid?.() === 0) shareRootMounts();
  const next = resolve(ROOT, `dist.next-${process.pid}`);
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmitOnError', 'false', '--outDir', next], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch {
    /* emitted anyway; scripts/test.sh type-checks separately */
  }
  // Not caught: a bin/ that silently ran dist/ unlinked would test something else than what is installed.
  execFileSync(process.execPath, ['scripts/bundle.mjs', next], { cwd: ROOT, stdio: 'pipe' });
  const swap = `set -e; old=dist.old-${process.pid}; [ -d dist ] && mv dist "$old"; mv "${next}" dist; rm -rf "$old"`;
  execFileSync('flock', ['dist.lock', 'sh', '-c', swap], { cwd: ROOT, stdio: 'pipe' });
  if (existsSync(next)) rmSync(next, { recursive: true, force: true });
}
