/**
 * Tests drive the real programs. When one is missing the test fails with the
 * Debian package to install; it never skips (our CI installs them, so a skip
 * would only hide a broken setup).
 */
import { which, PACKAGE_OF } from '../../lib/run.js';

export async function needPrograms(...programs: string[]): Promise<void> {
  const missing: string[] = [];
  for (const p of programs) if (!(await which(p))) missing.push(p);
  if (missing.length) {
    const pkgs = [...new Set(missing.map((p) => PACKAGE_OF[p] ?? p))];
    throw new Error(`missing ${missing.join(', ')}: apt-get install ${pkgs.join(' ')} (or run scripts/setup.sh)`);
  }
}

export function needRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mount): run it as root');
}
