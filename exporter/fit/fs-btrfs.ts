/**
 * btrfs in the fit: measured with `btrfs inspect-internal min-dev-size` and
 * resized with `btrfs filesystem resize DEVID:BYTES`; both work on a mounted
 * filesystem only. A btrfs spread over several devices is refused: one
 * partition is then not the whole filesystem.
 *
 *   measureBtrfs(device, workDir): Promise<FsMeasure>
 *   resizeBtrfs(device, newSize, workDir): Promise<void>
 */
import { P2vError } from '../../lib/errors.js';
import { run, runText } from '../../lib/run.js';
import {
  deviceBytes,
  fitMargin,
  MiB,
  needFsProgram,
  roundDownTo,
  roundUpMiB,
  statfsUsed,
  withMount,
} from './fs-common.js';
import type { FsMeasure } from './filesystems.js';

/**
 * The kernel's resize ioctl refuses a device size under 256 MiB (EINVAL),
 * whatever the filesystem holds (measured: 225 MiB refused for 300 KB used).
 */
export const BTRFS_MIN_RESIZE = 256 * MiB;

/** btrfs's sector size on every Linux we move: sizes are whole multiples of it. */
const BTRFS_SECTOR = 4096;

/**
 * The devid of our one device. It is 1 after mkfs, but a `btrfs replace` or a
 * device add/remove on the source leaves another number.
 */
async function devid(mnt: string, device: string): Promise<string> {
  const out = await runText('btrfs', ['filesystem', 'show', '--raw', mnt], {
    what: `reading the btrfs devices of ${device}`,
  });
  const total = /Total devices (\d+)/.exec(out);
  const ids = [...out.matchAll(/^\s*devid\s+(\d+)\s/gm)].map((m) => m[1]!);
  if (!total || Number(total[1]) !== 1 || ids.length !== 1)
    throw new P2vError(
      'FIXUP',
      `the btrfs on ${device} spans ${total?.[1] ?? 'several'} devices: it cannot be fitted`,
      {
        hint: 'export without --target-size (a multi-device btrfs is copied as it is)',
      },
    );
  return ids[0]!;
}

export async function measureBtrfs(device: string, workDir: string): Promise<FsMeasure> {
  await needFsProgram('btrfs');
  // Read-only: min-dev-size reads the chunk tree through an ioctl that needs no write access.
  return withMount(device, 'btrfs', workDir, { readOnly: true }, async (mnt) => {
    const id = await devid(mnt, device);
    const out = await runText('btrfs', ['inspect-internal', 'min-dev-size', '--id', id, mnt], {
      what: `measuring the btrfs on ${device}`,
    });
    const m = /^(\d+) bytes/.exec(out);
    if (!m)
      throw new P2vError('FIXUP', `btrfs inspect-internal min-dev-size said nothing usable for ${device}`, {
        hint: 'export without --target-size',
      });
    const usedBytes = await statfsUsed(mnt);
    const minSize = Math.max(BTRFS_MIN_RESIZE, roundUpMiB(Number(m[1]) + fitMargin(usedBytes)));
    return { usedBytes, minSize: Math.min(minSize, await deviceBytes(device)) };
  });
}

export async function resizeBtrfs(device: string, newSize: number, workDir: string): Promise<void> {
  await needFsProgram('btrfs');
  await withMount(device, 'btrfs', workDir, {}, async (mnt) => {
    const id = await devid(mnt, device);
    const bytes = roundDownTo(newSize, BTRFS_SECTOR);
    const r = await run('btrfs', ['filesystem', 'resize', `${id}:${bytes}`, mnt], {
      allowFailure: true,
      what: `resizing the btrfs on ${device}`,
    });
    if (r.exitCode === 0) return;
    const err = String(r.stderr ?? '').trimEnd();
    // The kernel answers EINVAL under 256 MiB and ENOSPC when the chunks past the new end find no room.
    const tooSmall = /Invalid argument|No space left/.test(err);
    throw new P2vError(
      tooSmall ? 'FIXUP' : 'COMMAND_FAILED',
      `btrfs could not resize ${device} to ${Math.round(bytes / 2 ** 20)} MiB${tooSmall ? ': its data does not fit' : ''}`,
      {
        command: `btrfs filesystem resize ${id}:${bytes} ${mnt}`,
        stderrTail: err.split('\n').slice(-6).join('\n'),
        hint: tooSmall
          ? 'choose a larger --target-size'
          : 'export without --target-size, or report this with the output above',
      },
    );
  });
}
