/**
 * The qemu-img steps for disks that are not streamOptimized VMDKs (and for
 * the qcow2 output). The format is always given with -f: probing an
 * untrusted image lets a raw disk pose as qcow2. An image that refers to any
 * other file (qcow2 backing file, VMDK extent elsewhere, data-file) is
 * refused before qemu-img opens it for reading data, so a stream can never
 * make us read a host file.
 */
import { basename, dirname } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { run, runText } from '../lib/run.js';
import { errnoFromText, fsError } from './fs-errors.js';

export type QemuFormat = 'raw' | 'qcow2' | 'vmdk';

interface QemuImgInfo {
  'virtual-size': number;
  format: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { type: string; data?: { extents?: { filename: string }[]; 'data-file'?: string } };
}

/** Virtual size of a staged image, after checking it stands alone. */
export async function inspectImage(path: string, format: QemuFormat, what: string): Promise<number> {
  const json = await runText('qemu-img', ['info', '--output=json', '-f', format, path], {
    what: `reading ${what}`,
  }).catch((e: unknown) => {
    throw new P2vError('BAD_VMDK', `${what} is not a valid ${format} image`, {
      hint: 'the disk file is corrupt; export it again',
      cause: e,
    });
  });
  const info = JSON.parse(json) as QemuImgInfo;
  if (info['backing-filename'] !== undefined || info['full-backing-filename'] !== undefined) {
    throw new P2vError('BAD_VMDK', `${what} refers to a backing file, which an OVA must not do`, {
      hint: 'export a self-contained image',
    });
  }
  const spec = info['format-specific'];
  if (spec?.data?.['data-file'] !== undefined) {
    throw new P2vError('BAD_VMDK', `${what} refers to an external data file, which an OVA must not do`, {
      hint: 'export a self-contained image',
    });
  }
  for (const ext of spec?.data?.extents ?? []) {
    if (basename(ext.filename) !== basename(path) || !ext.filename.endsWith(basename(path))) {
      throw new P2vError('BAD_VMDK', `${what} refers to another extent file, which an OVA must not do`, {
        hint: 'export a single-file (monolithic or streamOptimized) VMDK',
      });
    }
  }
  const size = info['virtual-size'];
  if (!Number.isSafeInteger(size) || size <= 0)
    throw new P2vError('BAD_VMDK', `${what} has an invalid virtual size`, {});
  return size;
}

/** `qemu-img check` where the format has one; a damaged image is refused. */
export async function checkImage(path: string, format: QemuFormat, what: string): Promise<void> {
  if (format === 'raw') return;
  await run('qemu-img', ['check', '-q', '-f', format, path], { what: `checking ${what}` }).catch((e: unknown) => {
    throw new P2vError('BAD_VMDK', `${what} fails qemu-img check`, {
      hint: 'the disk image is damaged; export it again',
      cause: e,
      stderrTail: e instanceof P2vError ? e.stderrTail : undefined,
    });
  });
}

/** Convert to a sparse raw file (the destination must not exist). */
export async function convertToRaw(src: string, format: QemuFormat, dst: string, what: string): Promise<void> {
  await run('qemu-img', ['convert', '-q', '-f', format, '-O', 'raw', '-S', '64k', src, dst], {
    what: `converting ${what} to raw`,
  }).catch((e: unknown) => {
    // dst is in `<staging>/<id>.partial/`: a full staging filesystem is named by the staging dir.
    const errno = e instanceof P2vError ? errnoFromText(e.stderrTail) : undefined;
    throw errno ? fsError(errno, { path: dst, action: 'write', place: dirname(dirname(dst)) }) : e;
  });
}

/**
 * Staged raw → qcow2 (outputs), written as `name` in the private work
 * directory open as `dirFd`: qemu-img gets that descriptor as its fd 3 and
 * writes through /proc/self/fd/3, so no path it could be redirected by is
 * involved. `shown` names the output in messages.
 */
export async function convertRawToQcow2(src: string, dirFd: number, name: string, shown: string): Promise<void> {
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', src, `/proc/self/fd/3/${name}`], {
    what: `writing ${shown}`,
    // execa passes a descriptor number through to the child (its typings only list 3-9 there).
    stdio: ['ignore', 'pipe', 'pipe', dirFd as 3],
  }).catch((e: unknown) => {
    // A full or read-only place reads like any other filesystem error, not like a qemu-img bug.
    const errno = e instanceof P2vError ? errnoFromText(e.stderrTail) : undefined;
    throw errno ? fsError(errno, { path: shown, action: 'write' }) : e;
  });
}
