// -o FILE.ova: the OVA is written as FILE.ova.partial and renamed only once
// complete, so a failed export leaves nothing that looks like an OVA.
import { describe, expect, it } from 'vitest';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../../lib/sample-disk.js';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

describe('p2v-export -o FILE.ova', () => {
  it('leaves neither FILE.ova nor FILE.ova.partial when the disk fills up mid-write', async () => {
    needRoot();
    await needPrograms('nbdkit', 'nbdfuse', 'mount', 'umount');
    await withTmpDir('outfile', async (dir) => {
      const sample = await buildSampleDisk({ path: join(dir, 'src.img'), sizeMiB: 96, swapMiB: 8, fillerMiB: 12 });
      const small = join(dir, 'small');
      await mkdir(small);
      // Room for the descriptor and part of the disk (the random filler alone is 12 MiB), not for the whole OVA.
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
      try {
        const [node, exp] = cliArgv('p2v-export');
        const r = await execa(
          node!,
          [exp!, '--disk', sample.path, '--compress-level', '0', '-o', join(small, 'm.ova')],
          {
            reject: false,
            stdin: 'ignore',
          },
        );
        expect(r.exitCode).not.toBe(0);
        expect(r.stderr).toMatch(/ENOSPC|no space/i);
        expect(await readdir(small)).toEqual([]);
      } finally {
        await execa('umount', [small]);
      }
    });
  });
});
