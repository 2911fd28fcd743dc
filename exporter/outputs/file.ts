/**
 * -o FILE: a single-file OVA (each disk one member, sizes patched in place).
 * It is written as FILE.partial, created exclusively before any work
 * (O_CREAT|O_EXCL: never through a symlink, never over another file), and
 * becomes FILE only once complete, so a failed export leaves nothing that
 * looks like an OVA. An existing FILE is refused unless --force.
 */
import { link, lstat, rename, unlink } from 'node:fs/promises';
import { onExit, type ExitHandle } from '../../lib/exit-actions.js';
import { P2vError } from '../../lib/errors.js';
import { createExclusive, errnoOf, fileError } from './exclusive-file.js';
import type { ExportOutput } from './types.js';

export interface FileOutputOptions {
  path: string;
  /** Replace PATH (and a stale PATH.partial) if it exists. */
  force?: boolean;
}

export function fileOutput(out: FileOutputOptions): ExportOutput {
  const { path } = out;
  const partial = `${path}.partial`;
  let cleanup: ExitHandle | undefined;
  return {
    kind: 'file',
    where: path,
    async setup() {
      const existing = await lstat(path).catch(() => undefined);
      if (existing?.isDirectory())
        throw new P2vError('USAGE', `-o ${path} is a directory`, {
          hint: 'name the OVA file to write, e.g. -o machine.ova',
        });
      if (existing && !out.force)
        throw new P2vError('USAGE', `${path} already exists: not overwritten`, {
          hint: 'choose another name, or add --force to replace it',
        });
      const fh = await createExclusive(partial, {
        force: out.force,
        exists: () =>
          new P2vError('USAGE', `${partial} already exists (left by an interrupted export?)`, {
            hint: 'remove it, or add --force to replace it',
          }),
        option: '-o',
      });
      await fh.close();
      cleanup = onExit(`remove ${partial}`, () => unlink(partial).catch(() => undefined));
    },
    send(write) {
      if (!cleanup) throw new Error('file output used before setup');
      return write({ mode: 'file', path: partial });
    },
    /** Without --force link(2), which also refuses a PATH that appeared while the export ran; with it rename(2). */
    async finalize() {
      if (out.force) {
        await rename(partial, path);
      } else {
        try {
          await link(partial, path);
        } catch (e) {
          if (errnoOf(e) !== 'EEXIST') throw fileError(path, e, '-o');
          cleanup?.cancel();
          throw new P2vError('IO', `${path} appeared while the export ran: not overwritten`, {
            hint: `the complete OVA is ${partial}; rename it yourself, or export again with --force`,
          });
        }
        await unlink(partial);
      }
      cleanup?.cancel();
    },
    async abort() {
      await cleanup?.run();
    },
  };
}
