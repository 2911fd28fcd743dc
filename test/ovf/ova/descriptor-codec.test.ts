/**
 * The OVA layer with the real descriptor codec (ovf/descriptor), as the CLIs
 * wire it: the descriptor written first without sizes and, in 'file' mode,
 * rewritten in place with them; parsed back by readOva. The padded descriptor
 * must stay valid against the DMTF OVF 1.1 schema.
 */
import { describe, expect, it } from 'vitest';
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { run } from '../../../lib/run.js';
import { buildDescriptor, parseDescriptor } from '../../../ovf/descriptor/index.js';
import { readOva, writeOva } from '../../../ovf/ova/index.js';
import { FORMAT_URI, type MachineDescription, type OvfFile } from '../../../ovf/types.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { collect, noise, pieces } from './helpers.js';

const SCHEMA = '/work/shared/reference/ovf-schemas/xo-ova-schema/dsp8023_1.1.1.xsd';

function machine(files: OvfFile[]): MachineDescription {
  return {
    name: 'web1',
    cpus: 2,
    memoryMiB: 1024,
    files,
    disks: files.map((f, i) => ({
      diskId: `vmdisk${i + 1}`,
      fileRef: f.id,
      capacity: 64 * 1024 * 1024,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
      controller: 'scsi',
      unit: i,
    })),
    networks: ['VM Network'],
    nics: [{ network: 'VM Network', model: 'virtio' }],
  };
}

describe('OVA with the real descriptor codec', () => {
  it.each(['file', 'stream'] as const)("'%s' mode round-trips and the descriptor validates", async (mode) => {
    await needPrograms('xmllint', 'tar');
    await withTmpDir('ova-codec', async (dir) => {
      const data = [noise(2_500_000, 1), noise(700_000, 2)];
      const ova = join(dir, 'web1.ova');
      const out = mode === 'stream' ? createWriteStream(ova) : ova;
      const res = await writeOva({
        descriptorName: 'web1.ovf',
        descriptor: (files) => buildDescriptor(machine(files), { chunked: mode === 'stream' }),
        files: data.map((d, i) => ({ id: `file${i + 1}`, href: `web1-disk${i + 1}.vmdk`, content: pieces(d) })),
        mode,
        output: out,
        chunkSize: 1024 * 1024,
      });
      if (typeof out !== 'string') {
        out.end();
        await finished(out);
      }
      await run('tar', ['-xf', ova, '-C', dir, 'web1.ovf']);
      await run('xmllint', ['--noout', '--nonet', '--schema', SCHEMA, join(dir, 'web1.ovf')]);

      const got: Buffer[] = [];
      const r = await readOva(createReadStream(ova), {
        parseDescriptor: (xml) => parseDescriptor(xml),
        requireManifest: true,
        onFile: async (_f, content) => void got.push(await collect(content)),
      });
      expect(r.machine.files.map((f) => [f.href, f.size, f.chunkSize])).toEqual(
        mode === 'file'
          ? res.files.map((f) => [f.href, f.size, undefined])
          : res.files.map((f) => [f.href, undefined, 1024 * 1024]),
      );
      expect(got.map((b) => b.length)).toEqual(data.map((d) => d.length));
      expect(got.every((b, i) => b.equals(data[i]!))).toBe(true);
    });
  });
});
