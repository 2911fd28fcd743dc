/**
 * The OVAs and manifests of Ganeti's own test suite (test/data/ovfdata), with
 * what Ganeti's ovf_unittest expects of them: ova.ova (a gzip-compressed tar,
 * no manifest) imports; wrong_ova.ova (an XML file) and no_ovf.ova (a tar
 * without a descriptor) are refused; ganeti.mf checks, wrong_manifest.mf does not.
 */
import { describe, expect, it } from 'vitest';
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runText } from '../../../lib/run.js';
import { readOva } from '../../../ovf/ova/index.js';
import type { OvfFile } from '../../../ovf/types.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { collect, FIXTURES, parseTestDescriptor, pieces, sha, tarOf } from './helpers.js';

async function readFixture(input: AsyncIterable<Buffer> | NodeJS.ReadableStream, requireManifest = false) {
  const got = new Map<string, Buffer>();
  const files: OvfFile[] = [];
  const result = await readOva(input, {
    parseDescriptor: parseTestDescriptor,
    requireManifest,
    onFile: async (file, content) => {
      files.push(file);
      got.set(file.href, await collect(content));
    },
  });
  return { result, got, files };
}

describe("Ganeti's OVA fixtures", () => {
  it('ova.ova: gzip-compressed, no manifest, one VMDK that qemu-img opens', async () => {
    await needPrograms('qemu-img');
    const { result, got, files } = await readFixture(createReadStream(join(FIXTURES, 'ova.ova')));
    expect(result.descriptorName).toBe('ganeti.ovf');
    expect(result.manifestFound).toBe(false);
    expect(result.verified).toEqual([]);
    expect(files).toEqual([{ id: 'file1', href: 'new_disk.vmdk' }]);
    const disk = got.get('new_disk.vmdk')!;
    expect(disk.length).toBe(1114624);
    // wrong_manifest.mf happens to carry this disk's SHA1.
    expect(sha('sha1', disk)).toBe('0500304662fb8a6a7925b5a43bc0e05d6a03720d');
    await withTmpDir('ova-ganeti', async (dir) => {
      await writeFile(join(dir, 'd.vmdk'), disk);
      const info = JSON.parse(await runText('qemu-img', ['info', '--output=json', join(dir, 'd.vmdk')]));
      expect(info.format).toBe('vmdk');
    });
  });

  it('ova.ova is refused when a manifest is required', async () => {
    await expect(readFixture(createReadStream(join(FIXTURES, 'ova.ova')), true)).rejects.toMatchObject({
      code: 'BAD_MANIFEST',
      message: 'the OVA has no manifest (.mf)',
    });
  });

  it('wrong_ova.ova (a bare descriptor) is not an OVA', async () => {
    await expect(readFixture(createReadStream(join(FIXTURES, 'wrong_ova.ova')))).rejects.toMatchObject({
      code: 'BAD_OVA',
      message: 'not an OVA: the input is neither a tar archive nor a gzip-compressed one',
    });
  });

  it('no_ovf.ova (a tar holding no descriptor) is not an OVA', async () => {
    await expect(readFixture(createReadStream(join(FIXTURES, 'no_ovf.ova')))).rejects.toMatchObject({
      code: 'BAD_OVA',
      message: 'not an OVA: its first member wrong_ova.ova is not an OVF descriptor (.ovf)',
    });
  });

  it('ganeti.ovf + ganeti.mf (SHA1, ovftool order) + new_disk.vmdk checks', async () => {
    const [ovf, mf, disk] = await Promise.all(
      ['ganeti.ovf', 'ganeti.mf', 'new_disk.vmdk'].map((n) => readFile(join(FIXTURES, n))),
    );
    const archive = await tarOf([
      { name: 'ganeti.ovf', data: ovf! },
      { name: 'ganeti.mf', data: mf! },
      { name: 'new_disk.vmdk', data: disk! },
    ]);
    const { result, got } = await readFixture(pieces(archive, 4096), true);
    expect(result.verified).toEqual([
      { name: 'ganeti.ovf', algorithm: 'sha1' },
      { name: 'new_disk.vmdk', algorithm: 'sha1' },
    ]);
    expect(got.get('new_disk.vmdk')!.equals(disk!)).toBe(true);
  });

  it('wrong_manifest.ovf + wrong_manifest.mf is refused on the descriptor digest', async () => {
    const [ovf, mf, disk] = await Promise.all(
      ['wrong_manifest.ovf', 'wrong_manifest.mf', 'new_disk.vmdk'].map((n) => readFile(join(FIXTURES, n))),
    );
    const archive = await tarOf([
      { name: 'wrong_manifest.ovf', data: ovf! },
      { name: 'wrong_manifest.mf', data: mf! },
      { name: 'new_disk.vmdk', data: disk! },
    ]);
    await expect(readFixture(pieces(archive))).rejects.toMatchObject({
      code: 'BAD_MANIFEST',
      message: 'SHA1 of wrong_manifest.ovf does not match the manifest',
    });
  });
});
