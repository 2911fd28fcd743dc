/**
 * ext2/3/4 in the fit: measured with `resize2fs -P`, shrunk and grown in
 * place with resize2fs. Both need a freshly checked filesystem, so each starts
 * with `e2fsck -fy`; it writes only the overlay the device lies on.
 *
 *   measureExt(device): Promise<FsMeasure>
 *   resizeExt(device, newSize): Promise<void>
 */
import { P2vError } from '../../lib/errors.js';
import { run } from '../../lib/run.js';
import { fitMargin, needFsProgram, roundUpMiB, deviceBytes } from './fs-common.js';
import type { FsMeasure } from './filesystems.js';

interface ExtGeometry {
  blockSize: number;
  blockCount: number;
  freeBlocks: number;
}

async function geometry(device: string): Promise<ExtGeometry> {
  const r = await run('dumpe2fs', ['-h', device], { what: `reading the ext superblock of ${device}` });
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(String(r.stdout));
    if (!m)
      throw new P2vError('FIXUP', `dumpe2fs shows no "${name}" for ${device}`, {
        hint: 'check the filesystem with e2fsck -fn on the source',
      });
    return Number(m[1]);
  };
  return { blockSize: field('Block size'), blockCount: field('Block count'), freeBlocks: field('Free blocks') };
}

/** e2fsck -fy: 0 = clean, 1/2 = repaired (in the overlay); anything else stops the fit. */
async function check(device: string): Promise<void> {
  const r = await run('e2fsck', ['-f', '-y', device], { allowFailure: true, what: `checking ${device}` });
  if (r.exitCode === 0 || r.exitCode === 1 || r.exitCode === 2) return;
  throw new P2vError('FIXUP', `e2fsck could not repair the ext filesystem on ${device} (exit status ${r.exitCode})`, {
    command: `e2fsck -f -y ${device}`,
    stderrTail: String(r.stdout ?? '')
      .trimEnd()
      .split('\n')
      .slice(-6)
      .join('\n'),
    hint: 'repair the filesystem on the source machine (e2fsck -f), or export without --target-size',
  });
}

export async function measureExt(device: string): Promise<FsMeasure> {
  await needFsProgram('e2fsck', 'resize2fs', 'dumpe2fs');
  await check(device);
  const g = await geometry(device);
  const r = await run('resize2fs', ['-P', device], { what: `estimating the minimum size of ${device}` });
  const m = /minimum size of the filesystem:\s*(\d+)/.exec(String(r.stdout));
  if (!m)
    throw new P2vError('FIXUP', `resize2fs -P gave no estimate for ${device}`, {
      command: `resize2fs -P ${device}`,
      hint: 'export without --target-size',
    });
  const usedBytes = (g.blockCount - g.freeBlocks) * g.blockSize;
  const minSize = roundUpMiB(Number(m[1]) * g.blockSize + fitMargin(usedBytes));
  // It can always keep the size it has.
  return { usedBytes, minSize: Math.min(minSize, await deviceBytes(device)) };
}

export async function resizeExt(device: string, newSize: number): Promise<void> {
  await needFsProgram('e2fsck', 'resize2fs', 'dumpe2fs');
  await check(device);
  const g = await geometry(device);
  // resize2fs takes a bare number as a count of the filesystem's own blocks.
  const blocks = Math.floor(newSize / g.blockSize);
  if (blocks === g.blockCount) return;
  const r = await run('resize2fs', [device, String(blocks)], { allowFailure: true, what: `resizing ${device}` });
  if (r.exitCode === 0) return;
  const err = String(r.stderr ?? '');
  const min = /smaller than minimum \((\d+)\)/.exec(err);
  if (min)
    throw new P2vError(
      'FIXUP',
      `resize2fs refuses to shrink ${device} to ${Math.round(newSize / 2 ** 20)} MiB: its minimum is ${Math.ceil((Number(min[1]) * g.blockSize) / 2 ** 20)} MiB`,
      { command: `resize2fs ${device} ${blocks}`, hint: 'choose a larger --target-size' },
    );
  throw new P2vError('COMMAND_FAILED', `resizing ${device}: resize2fs failed (exit status ${r.exitCode})`, {
    command: `resize2fs ${device} ${blocks}`,
    stderrTail: err.trimEnd().split('\n').slice(-8).join('\n'),
    hint: 'export without --target-size, or report this with the output above',
  });
}
