import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { openOverlay } from '../../exporter/overlay.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

const sha = async (f: string) =>
  createHash('sha256')
    .update(await readFile(f))
    .digest('hex');

describe('Overlay', () => {
  it('takes writes without touching the source, and stops cleanly', async () => {
    await needPrograms('nbdkit', 'nbdinfo', 'nbdcopy');
    await withTmpDir('overlay', async (dir) => {
      const src = join(dir, 'src.img');
      await writeFile(src, Buffer.alloc(4 << 20, 0xab));
      const before = await sha(src);
      const ov = await openOverlay(src, { workDir: dir });
      // Write through the overlay with a real NBD client.
      const patch = join(dir, 'patch.img');
      await writeFile(patch, Buffer.alloc(4 << 20, 0x11));
      await execa('nbdcopy', [patch, ov.uri]);
      const { stdout } = await execa('nbdinfo', ['--size', ov.uri]);
      expect(Number(stdout)).toBe(4 << 20);
      const copyBack = join(dir, 'back.img');
      await execa('nbdcopy', [ov.uri, copyBack]);
      expect((await readFile(copyBack))[12345]).toBe(0x11);
      await ov.close();
      expect(await sha(src)).toBe(before);
      const ps = await execa('pgrep', ['-f', `file=${src}`], { reject: false });
      expect(ps.stdout).toBe('');
    });
  });

  it('refuses a missing source with a usage error', async () => {
    await expect(openOverlay('/nonexistent/disk.img')).rejects.toThrow(
      'source disk /nonexistent/disk.img does not exist',
    );
  });
});
