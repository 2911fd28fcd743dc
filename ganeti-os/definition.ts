/**
 * The p2v-image Ganeti OS definition as shipped with ganeti-p2v: where its
 * folder is and which files make it up, with the mode each must have on a
 * node. The scripts themselves are POSIX shell in ./p2v-image/ (Ganeti nodes
 * have no Node.js); this module only knows how to find and describe them.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The OS name Ganeti knows the definition by (`-o p2v-image+default`). */
export const OS_NAME = 'p2v-image';

/** The only variant; Ganeti names the OS `p2v-image+default`. */
export const OS_VARIANT = 'default';

/** First entry of Ganeti's OS search path (`gnt-cluster info`: "OS search path"). */
export const DEFAULT_OS_DIR = '/srv/ganeti/os';

export interface OsFile {
  /** File name inside the definition folder. */
  name: string;
  /** Mode on the node: scripts are executable, the rest is read-only data. */
  mode: number;
}

/** Every file of the definition (ganeti-os-interface(7), API 20) plus our shared helpers. */
export const OS_FILES: readonly OsFile[] = [
  { name: 'ganeti_api_version', mode: 0o644 },
  { name: 'variants.list', mode: 0o644 },
  { name: 'parameters.list', mode: 0o644 },
  { name: 'common.sh', mode: 0o644 },
  { name: 'create', mode: 0o755 },
  { name: 'import', mode: 0o755 },
  { name: 'export', mode: 0o755 },
  { name: 'rename', mode: 0o755 },
  { name: 'verify', mode: 0o755 },
];

/**
 * The shipped definition folder. Compiled, this module is
 * dist/ganeti-os/definition.js and the folder is ../../ganeti-os/p2v-image;
 * run from source (tests) it is ./p2v-image next to this file.
 */
export function shippedDefinitionDir(): string {
  for (const rel of ['../../ganeti-os/p2v-image', './p2v-image']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}/ganeti_api_version`)) return dir;
  }
  // Not found: report the place a normal install would have it.
  return fileURLToPath(new URL('../../ganeti-os/p2v-image', import.meta.url));
}
