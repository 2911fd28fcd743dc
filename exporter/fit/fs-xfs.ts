/**
 * XFS in the fit. XFS grows in place (xfs_growfs on a mounted filesystem)
 * but cannot shrink: a smaller one is made anew on fresh space with the same
 * UUID, label and on-disk features, and every file is copied into it.
 *
 *   readXfsInfo(device): Promise<XfsInfo>
 *   measureXfs(device, workDir): Promise<FsMeasure>
 *   growXfs(device, newSize, workDir): Promise<void>
 *   recreateXfs(oldDevice, newDevice, workDir): Promise<void>
 *
 * The features are carried by fs-xfs-features.ts; the copy is xfsdump |
 * xfsrestore (fs-xfs-copy.ts says why).
 */
import { P2vError } from '../../lib/errors.js';
import { run, runText } from '../../lib/run.js';
import { copyXfsTree } from './fs-xfs-copy.js';
import { featureLines, mkfsXfsArgs, parseXfsInfo, XFS_SMALL_LOG, type XfsInfo } from './fs-xfs-features.js';
import { deviceBytes, fitMargin, MiB, needFsProgram, roundUpMiB, statfsFree, withMount } from './fs-common.js';
import type { FsMeasure } from './filesystems.js';

/** mkfs.xfs (xfsprogs ≥ 5.19) refuses anything smaller: "Filesystem must be larger than 300MB". */
export const XFS_MIN_SIZE = 300 * MiB;

/** xfs_info (which reads an unmounted device too) plus the UUID and label from xfs_db. */
export async function readXfsInfo(device: string): Promise<XfsInfo> {
  await needFsProgram('xfs_info', 'xfs_db');
  const r = await run('xfs_info', [device], { allowFailure: true, what: `reading the XFS geometry of ${device}` });
  if (r.exitCode !== 0)
    throw new P2vError('FIXUP', `this xfsprogs cannot read the XFS on ${device}`, {
      command: `xfs_info ${device}`,
      stderrTail: String(r.stderr ?? '')
        .trimEnd()
        .split('\n')
        .slice(-4)
        .join('\n'),
      hint: 'the filesystem may use features newer than this xfsprogs: run p2v-export from a newer live system, or without --target-size',
    });
  const ids = await runText('xfs_db', ['-r', '-c', 'uuid', '-c', 'label', device], {
    what: `reading the XFS label of ${device}`,
  });
  const uuid = /^UUID = (\S+)/m.exec(ids)?.[1];
  const label = /^label = "(.*)"$/m.exec(ids)?.[1] ?? '';
  if (!uuid)
    throw new P2vError('FIXUP', `no UUID found on the XFS on ${device}`, { hint: 'export without --target-size' });
  return { uuid, label, ...parseXfsInfo(String(r.stdout)) };
}

/**
 * Bytes in use, data and metadata, from the allocation groups' free-space
 * btrees: dblocks − internal log − free blocks (`xfs_db -r -c 'freesp -s'`).
 * Not statfs: df counts the per-AG reservations of the rmap/refcount/finobt
 * btrees as used (2 GB on an empty 100 GiB XFS with rmapbt), which the new,
 * smaller filesystem reserves in proportion to its own size. A read-only mount
 * first replays a dirty log (into the overlay) and writes the recovered
 * metadata back, so the btrees read are current.
 */
async function xfsUsedBytes(device: string, workDir: string): Promise<number> {
  await withMount(device, 'xfs', workDir, { readOnly: true, options: ['nouuid'] }, async () => undefined);
  const out = await runText(
    'xfs_db',
    ['-r', '-c', 'sb 0', '-c', 'p dblocks logstart logblocks blocksize', '-c', 'freesp -s', device],
    {
      what: `reading the free space of the XFS on ${device}`,
    },
  );
  const num = (re: RegExp) => {
    const m = re.exec(out);
    if (!m)
      throw new P2vError('FIXUP', `xfs_db did not show the free space of ${device}`, {
        hint: 'export without --target-size',
      });
    return Number(m[1]);
  };
  const dblocks = num(/^dblocks = (\d+)/m);
  const internalLog = num(/^logstart = (\d+)/m) > 0 ? num(/^logblocks = (\d+)/m) : 0;
  return (dblocks - internalLog - num(/^total free blocks (\d+)/m)) * num(/^blocksize = (\d+)/m);
}

export async function measureXfs(device: string, workDir: string): Promise<FsMeasure> {
  await needFsProgram('xfs_info', 'xfs_db');
  const usedBytes = await xfsUsedBytes(device, workDir);
  // The new filesystem gets a log of its own (newLogArgs): 64 MiB on any size near usedBytes.
  const minSize = Math.max(XFS_MIN_SIZE, roundUpMiB(usedBytes + XFS_SMALL_LOG + fitMargin(usedBytes)));
  return { usedBytes, minSize: Math.min(minSize, await deviceBytes(device)) };
}

export async function growXfs(device: string, newSize: number, workDir: string): Promise<void> {
  await needFsProgram('xfs_growfs', 'xfs_info', 'xfs_db');
  const info = await readXfsInfo(device);
  const bsize = Number(info.values['data.bsize']);
  const blocks = Math.floor(newSize / bsize);
  const now = Number(info.values['data.blocks']);
  if (blocks < now)
    throw new P2vError('FIXUP', `XFS cannot shrink in place (${device})`, {
      hint: 'this is a bug: a smaller XFS is recreated (recreateXfs)',
    });
  if (blocks === now) return;
  await withMount(device, 'xfs', workDir, { options: ['nouuid'] }, async (mnt) => {
    await run('xfs_growfs', ['-D', String(blocks), mnt], { what: `growing the XFS on ${device}` });
  });
}

/**
 * Make a new XFS on `newDevice` (fresh space of the new size) with the old
 * one's UUID, label and features, and copy every file of `oldDevice` into it.
 */
export async function recreateXfs(oldDevice: string, newDevice: string, workDir: string): Promise<void> {
  // All of them before anything is written.
  await needFsProgram('mkfs.xfs', 'xfs_info', 'xfs_db', 'xfsdump', 'xfsrestore', 'rsync', 'blockdev');
  const old = await readXfsInfo(oldDevice);
  const newSize = await deviceBytes(newDevice);
  if (newSize < XFS_MIN_SIZE)
    throw new P2vError(
      'FIXUP',
      `an XFS cannot be made smaller than 300 MiB (${newDevice} has ${Math.floor(newSize / MiB)} MiB)`,
      {
        hint: 'choose a larger --target-size',
      },
    );
  const plan = mkfsXfsArgs(old, newSize);
  if ('refuse' in plan)
    throw new P2vError('FIXUP', `the XFS on ${oldDevice} cannot be recreated smaller: ${plan.refuse}`, {
      hint: 'export without --target-size, or with one that leaves this filesystem its size',
    });
  const used = await xfsUsedBytes(oldDevice, workDir);
  await run('mkfs.xfs', [...plan.args, newDevice], { what: `making the new XFS on ${newDevice}` });
  const made = await readXfsInfo(newDevice);
  const lost = featureLines(old).filter((l) => !featureLines(made).includes(l));
  if (lost.length || made.uuid !== old.uuid || made.label !== old.label)
    throw new P2vError(
      'FIXUP',
      `the new XFS on ${newDevice} differs from the old one: ${lost.join(', ') || 'UUID or label'}`,
      {
        hint: 'export without --target-size, or report this with the xfs_info of the source filesystem',
      },
    );
  // Both carry the same UUID: XFS refuses a second mount of a UUID unless told nouuid.
  await withMount(oldDevice, 'xfs', workDir, { readOnly: true, options: ['nouuid'] }, (from) =>
    withMount(newDevice, 'xfs', workDir, { options: ['nouuid'] }, async (to) => {
      // A plan that leaves too little room fails here, not with ENOSPC halfway through the copy.
      const free = await statfsFree(to);
      if (used > free)
        throw new P2vError(
          'FIXUP',
          `the files of ${oldDevice} (${Math.ceil(used / MiB)} MiB) do not fit in the new XFS of ${Math.floor(newSize / MiB)} MiB (${Math.floor(free / MiB)} MiB free)`,
          { hint: 'choose a larger --target-size' },
        );
      await copyXfsTree(from, to);
    }),
  );
}
