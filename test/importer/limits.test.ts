/**
 * Ganeti's maxima (16 disks, 8 NICs per instance) for a Ganeti export:
 * refused from the descriptor with one line, before any disk byte is
 * written; the maxima themselves are accepted, and other outputs are not
 * limited.
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GANETI_MAX_DISKS, GANETI_MAX_NICS } from '../../importer/limits.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { descriptorXml, makeRawDisk, MiB, runImport, tarOva, toStreamOptimized } from './fixtures.js';

/** An OVA of `disks` small streamOptimized disks (copies of one) and `nics` NICs, with a manifest. */
async function machineOva(dir: string, disks: number, nics: number): Promise<string> {
  await makeRawDisk(join(dir, 'src.raw'), MiB);
  await toStreamOptimized(join(dir, 'src.raw'), join(dir, 'one.vmdk'));
  const hrefs = Array.from({ length: disks }, (_, i) => `disk${i + 1}.vmdk`);
  for (const h of hrefs) await copyFile(join(dir, 'one.vmdk'), join(dir, h));
  let xml = descriptorXml({ disks: hrefs.map((href) => ({ href, capacity: MiB })) });
  const nic = /( {6}<Item>\s*<rasd:AutomaticAllocation>[\s\S]*?<\/Item>\n)/.exec(xml)![1]!;
  const more = Array.from({ length: nics }, (_, i) =>
    nic.replace('<rasd:InstanceID>20</rasd:InstanceID>', `<rasd:InstanceID>${20 + i}</rasd:InstanceID>`),
  ).join('');
  xml = xml.replace(nic, more);
  await writeFile(join(dir, 'vm.ovf'), xml);
  const ova = join(dir, `vm-${disks}-${nics}.ova`);
  await tarOva(dir, ova, ['vm.ovf', ...hrefs], 'vm.mf');
  return ova;
}

describe('Ganeti export limits', () => {
  it('are the Ganeti maxima', () => {
    expect([GANETI_MAX_DISKS, GANETI_MAX_NICS]).toEqual([16, 8]);
  });

  it('refuse 17 disks or 9 NICs before any data, and take 16 disks with 8 NICs', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('limits', async (dir) => {
      const refusals: [number, number, string, string][] = [
        [
          17,
          1,
          'the machine has 17 disks but a Ganeti instance takes at most 16',
          'export fewer disks (p2v-export --disk for each one to keep), or use --ova, --raw or --qcow2',
        ],
        [
          1,
          9,
          'the machine has 9 network interfaces but a Ganeti instance takes at most 8',
          'remove network interfaces from the source machine, or use --ova, --raw or --qcow2',
        ],
      ];
      for (const [disks, nics, error, hint] of refusals) {
        const ova = await machineOva(dir, disks, nics);
        const staging = join(dir, `staging-${disks}-${nics}`);
        const exports = join(dir, `exports-${disks}-${nics}`);
        // --keep-partial shows what the refused import had written: nothing but its own bookkeeping.
        const r = await runImport(['--staging', staging, '--ganeti-export', exports, '--keep-partial'], {
          inputFile: ova,
        });
        const [partial] = await readdir(staging);
        expect(r.stderr).toBe(
          `p2v-import: kept partial import in ${join(staging, partial!)}\np2v-import: ${error}\np2v-import: hint: ${hint}`,
        );
        expect(r.exitCode).toBe(3);
        expect((await readdir(join(staging, partial!))).sort()).toEqual(['kept']);
        expect(await readdir(exports).catch(() => [])).toEqual([]);
      }

      // At the maxima: imported, every disk and NIC in config.ini.
      const max = await machineOva(dir, 16, 8);
      const exports = join(dir, 'exports-max');
      const ok = await runImport(['--staging', join(dir, 'staging-max'), '--ganeti-export', exports, '-q'], {
        inputFile: max,
      });
      expect(ok.stderr).toBe('');
      expect(ok.exitCode).toBe(0);
      const ini = await readFile(join(exports, 'test-vm', 'config.ini'), 'utf8');
      expect(ini).toContain('disk_count = 16\n');
      expect(ini).toContain('disk15_dump = disk15.raw\n');
      expect(ini).toContain('nic_count = 8\n');
      expect(ini).toContain('nic7_mac = generate\n');

      // The limit is Ganeti's: raw disks of a 17-disk machine are written.
      const raw = join(dir, 'raw');
      const many = await runImport(['--staging', join(dir, 'staging-raw'), '--raw', raw, '-q'], {
        inputFile: await machineOva(dir, 17, 1),
      });
      expect(many.exitCode).toBe(0);
      expect(await readdir(raw)).toHaveLength(17);
    });
  });
});
