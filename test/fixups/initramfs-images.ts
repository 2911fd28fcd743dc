/**
 * Real initramfs images for the tests, made the way the distributions make
 * them: `cpio -o -H newc` archives, the main one compressed (gzip, zstd, xz,
 * lz4 legacy as the kernel wants), optionally preceded by an uncompressed
 * early archive holding CPU microcode.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../../lib/run.js';
import { needPrograms } from '../helpers/programs.js';

export type ImageCompression = 'none' | 'gzip' | 'zstd' | 'xz' | 'lz4';

const COMPRESS: Record<ImageCompression, string> = {
  none: 'cat',
  gzip: 'gzip -n -9',
  zstd: 'zstd -q -19 -c',
  xz: 'xz --check=crc32 -c',
  lz4: 'lz4 -q -l -c',
};

/** Members of the main archive for kernel `version` with the given module files (paths below kernel/). */
export function mainMembers(version: string, modules: string[]): string[] {
  return [
    'init',
    'bin/busybox',
    'conf/initramfs.conf',
    ...modules.map((m) => `usr/lib/modules/${version}/kernel/${m}`),
    `usr/lib/modules/${version}/modules.dep`,
  ];
}

async function archive(work: string, name: string, members: string[]): Promise<string> {
  const dir = join(work, name);
  for (const m of members) {
    await mkdir(dirname(join(dir, m)), { recursive: true });
    await writeFile(join(dir, m), `${m}\n`);
  }
  return dir;
}

/**
 * Write an initramfs to `out`. Directories are not listed, only files, so the
 * member list is exactly `members` (plus early ones) in that order.
 */
export async function buildInitramfs(
  work: string,
  out: string,
  opts: { members: string[]; compression: ImageCompression; early?: boolean },
): Promise<void> {
  await needPrograms('cpio', 'gzip', 'zstd', 'xz', 'lz4');
  await mkdir(dirname(out), { recursive: true });
  const parts: string[] = [];
  if (opts.early) {
    const dir = await archive(work, 'early', ['kernel/x86/microcode/GenuineIntel.bin']);
    parts.push(`(cd '${dir}' && printf '%s\\n' kernel/x86/microcode/GenuineIntel.bin | cpio --quiet -o -H newc)`);
  }
  const dir = await archive(work, 'main', opts.members);
  await writeFile(join(work, 'main.list'), opts.members.join('\n') + '\n');
  parts.push(`(cd '${dir}' && cpio --quiet -o -H newc < '${join(work, 'main.list')}' | ${COMPRESS[opts.compression]})`);
  await run('bash', ['-o', 'pipefail', '-c', `{ ${parts.join('; ')}; } > '${out}'`]);
}
