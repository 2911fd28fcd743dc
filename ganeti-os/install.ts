/**
 * Installing the p2v-image definition into a Ganeti OS directory on this
 * node. The copy is staged next to the target and swapped in with renames,
 * so Ganeti never sees a half-written definition (a node daemon may list OSes
 * at any moment), and every file gets the mode Ganeti needs: scripts must be
 * executable or `gnt-os diagnose` rejects the OS.
 */
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { onExit } from '../lib/exit-actions.js';
import { DEFAULT_OS_DIR, OS_FILES, OS_NAME, shippedDefinitionDir, type OsFile } from './definition.js';

export interface InstallOptions {
  /** Directory on Ganeti's OS search path; default /srv/ganeti/os. */
  osDir?: string;
  /** Name of the installed OS; default p2v-image. */
  name?: string;
  /** Definition folder to copy; default the shipped one. */
  source?: string;
}

export interface InstallResult {
  /** The installed definition folder, e.g. /srv/ganeti/os/p2v-image. */
  path: string;
  /** Whether an earlier copy was replaced. */
  replaced: boolean;
  files: readonly OsFile[];
}

/** Ganeti OS names: no '+' (it separates the variant), no '/', not hidden. */
const OS_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export async function installDefinition(opts: InstallOptions = {}): Promise<InstallResult> {
  const osDir = opts.osDir ?? DEFAULT_OS_DIR;
  const name = opts.name ?? OS_NAME;
  const source = opts.source ?? shippedDefinitionDir();
  if (!OS_NAME_RE.test(name)) {
    throw new P2vError('USAGE', `'${name}' is not a usable Ganeti OS name`, {
      hint: "use letters, digits, '.', '_' and '-' only (Ganeti uses '+' for the variant)",
    });
  }
  for (const f of OS_FILES) {
    const st = await stat(join(source, f.name)).catch(() => null);
    if (!st?.isFile()) {
      throw new P2vError('IO', `the shipped OS definition is incomplete: ${join(source, f.name)} is missing`, {
        hint: 'reinstall ganeti-p2v; `p2v-ganeti-os path` shows where it looks',
      });
    }
  }
  await mkdir(osDir, { recursive: true, mode: 0o755 }).catch((e: unknown) => {
    throw ioError(`cannot create ${osDir}`, e);
  });

  const target = join(osDir, name);
  const stage = join(osDir, `.${name}.new-${process.pid}`);
  const old = join(osDir, `.${name}.old-${process.pid}`);
  const unstage = onExit(`remove ${stage}`, () => rm(stage, { recursive: true, force: true }));
  try {
    await rm(stage, { recursive: true, force: true });
    await mkdir(stage, { mode: 0o755 });
    await chmod(stage, 0o755); // mkdir's mode is filtered by the umask
    for (const f of OS_FILES) {
      const dst = join(stage, f.name);
      await copyFile(join(source, f.name), dst);
      await chmod(dst, f.mode);
    }
    const existing = await stat(target).catch(() => null);
    if (existing && !existing.isDirectory()) {
      throw new P2vError('IO', `${target} exists and is not a directory`, { hint: 'move it away, then install again' });
    }
    if (existing) await rename(target, old);
    try {
      await rename(stage, target);
    } catch (e) {
      if (existing) await rename(old, target).catch(() => undefined); // put the previous copy back
      throw e;
    }
    if (existing) await rm(old, { recursive: true, force: true });
    return { path: target, replaced: Boolean(existing), files: OS_FILES };
  } catch (e) {
    if (e instanceof P2vError) throw e;
    throw ioError(`cannot install the OS definition into ${target}`, e);
  } finally {
    await unstage.run();
  }
}

function ioError(what: string, e: unknown): P2vError {
  const reason = e instanceof Error ? e.message : String(e);
  return new P2vError('IO', `${what}: ${reason}`, {
    hint: 'run as root on the Ganeti node, or choose another directory with --os-dir',
    cause: e,
  });
}
