// qemu-img 7.x ends a streamOptimized VMDK right after its last grain, with no
// end-of-stream marker. By default the marker is required; with
// allowMissingEndMarker (the importer's setting) the clean end is accepted,
// because qemu's grain tables, read up front, still prove every grain came
// (cut-stream.test.ts cuts such files everywhere).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { execa } from 'execa';
import { readStreamOptimized } from '../../../ovf/vmdk/index.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { fileStream, makeImage, readFile, writeChunks } from './fixtures.js';

describe('a VMDK without an end-of-stream marker', () => {
  it('is refused by default and read whole with allowMissingEndMarker', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('vmdk-eos', async (dir) => {
      const raw = join(dir, 'src.raw');
      const vmdk = join(dir, 'src.vmdk');
      // Incompressible data ending on an allocation boundary: qemu-img then writes no marker after it.
      await makeImage(raw, 64 << 20, [{ offset: 32 << 20, length: 1 << 20, fill: 'random' }]);
      await execa('qemu-img', ['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);

      const strict = await readStreamOptimized(fileStream(vmdk));
      const drain = async () => {
        for await (const _ of strict.grains) void _;
      };
      await expect(drain()).rejects.toThrow(/^VMDK stream ends at byte \d+ without an end-of-stream marker$/);

      const lenient = await readStreamOptimized(fileStream(vmdk), { allowMissingEndMarker: true });
      const out = join(dir, 'out.raw');
      await writeChunks(out, lenient.capacity, lenient.grains);
      expect((await readFile(out)).equals(await readFile(raw))).toBe(true);
    });
  });
});
