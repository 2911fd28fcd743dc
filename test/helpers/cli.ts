import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** argv prefix that runs a built CLI exactly as the installed bin/ shim does. */
export function cliArgv(tool: 'p2v-export' | 'p2v-import' | 'p2v-ramboot' | 'p2v-ganeti-os'): string[] {
  return [process.execPath, resolve(ROOT, 'bin', `${tool}.js`)];
}
