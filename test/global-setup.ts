// Build dist/ once before any test, so tests run the CLIs exactly as installed
// (bin/*.js → dist/). Type errors are reported by `tsc --noEmit` in scripts/test.sh;
// here we emit even with errors so one folder's work in progress does not stop another's tests.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json', '--noEmitOnError', 'false'], { stdio: 'pipe' });
  } catch {
    /* emitted anyway; scripts/test.sh type-checks separately */
  }
}
