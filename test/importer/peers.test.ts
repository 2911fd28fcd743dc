/**
 * Descriptors and OVAs from Ganeti's and virt-v2v's own test suites
 * (../shared/reference/peer-fixtures). Every valid one imports; the disks
 * that travel with a descriptor only are synthesised here in the format the
 * descriptor names. Their negative cases are refused with a clear error.
 */
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { MiB, runImport } from './fixtures.js';

const PEERS = join(ROOT, '..', 'shared', 'reference', 'peer-fixtures');
const GANETI = join(PEERS, 'ganeti-ovfdata');
const V2V = join(PEERS, 'virt-v2v-descriptors');
const GiB = 1024 * MiB;

async function tarOf(_dir: string, ova: string, from: string, names: string[], gzip = false): Promise<string> {
  await execa('tar', [gzip ? '-czf' : '-cf', ova, '-C', from, ...names]);
  return ova;
}

/** A sparse raw disk with 1 MiB of data at the start, and its streamOptimized VMDK. */
async function synthDisk(dir: string, name: string, capacity: number, gzip = false): Promise<string> {
  const raw = join(dir, `${name}.raw`);
  await execa('truncate', ['-s', String(capacity), raw]);
  await execa('sh', ['-c', `head -c ${MiB} /dev/urandom | dd of=${raw} conv=notrunc status=none`]);
  const vmdk = join(dir, gzip ? name.replace(/\.gz$/, '') : name);
  await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  if (gzip) await execa('gzip', ['-1', vmdk]);
  return raw;
}

/**
 * The peer descriptor with ovf:size set to our synthetic files' real sizes and
 * ovf:populatedSize to what they hold (the originals describe multi-GB
 * guests; the reader checks ovf:size, and the free-space preflight uses
 * populatedSize).
 */
async function adapt(src: string, dst: string, dir: string): Promise<void> {
  let xml = await readFile(src, 'utf8');
  const files = [...xml.matchAll(/<File ([^>]*)ovf:href="([^"]+)"([^>]*)>/g)];
  for (const f of files) {
    const size = (await stat(join(dir, f[2]!))).size;
    xml = xml.replace(f[0], f[0].replace(/ovf:size="\d+"/, `ovf:size="${size}"`));
  }
  xml = xml.replace(/ovf:populatedSize="\d+"/g, `ovf:populatedSize="${MiB}"`);
  await writeFile(dst, xml);
}

describe('peer fixtures', () => {
  it("imports Ganeti's own OVFs: manifest, VirtualBox without capacities, gzip disk, gzip-wrapped OVA", async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('peer', async (dir) => {
      const ex = join(dir, 'exports');
      const st = join(dir, 'staging');
      const cases: [string, string[]][] = [
        [
          'ganeti',
          [
            await tarOf(dir, join(dir, 'g.ova'), GANETI, ['ganeti.ovf', 'new_disk.vmdk', 'ganeti.mf']),
            '--require-manifest',
          ],
        ],
        [
          'vbox',
          [await tarOf(dir, join(dir, 'vb.ova'), GANETI, ['virtualbox.ovf', 'new_disk.vmdk', 'second_disk.vmdk'])],
        ],
        ['gzdisk', [await tarOf(dir, join(dir, 'gz.ova'), GANETI, ['gzip_disk.ovf', 'compr_disk.vmdk.gz'])]],
        ['gzova', [join(GANETI, 'ova.ova')]],
      ];
      for (const [name, args] of cases) {
        const r = await runImport(['--staging', st, '--ganeti-export', ex, '--name', name, '-q', ...args]);
        expect(r.stderr, name).toBe('');
        expect(r.exitCode, name).toBe(0);
      }
      // Ganeti's section wins: OS, hypervisor, NIC mode/link/MAC, auto_balance.
      expect(await readFile(join(ex, 'ganeti', 'config.ini'), 'utf8')).toBe(
        `[export]
version = 0
os = lenny-image

[instance]
name = ganeti
hypervisor = xen-pvm
disk_count = 1
disk0_size = 1
disk0_dump = disk0.raw
nic_count = 1
nic0_mac = aa:00:00:d8:2c:1e
nic0_mode = bridged
nic0_link = xen-br0

[backend]
memory = 2048
vcpus = 1
auto_balance = False
`,
      );
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'vmdk',
        '-F',
        'raw',
        join(GANETI, 'new_disk.vmdk'),
        join(ex, 'ganeti', 'disk0.raw'),
      ]);
      // VirtualBox gives no capacity: taken from each VMDK.
      const vb = await readFile(join(ex, 'vbox', 'config.ini'), 'utf8');
      expect(vb).toContain('disk_count = 2\n');
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'vmdk',
        '-F',
        'raw',
        join(GANETI, 'second_disk.vmdk'),
        join(ex, 'vbox', 'disk1.raw'),
      ]);
      await execa('sh', ['-c', `gzip -dc ${join(GANETI, 'compr_disk.vmdk.gz')} > ${join(dir, 'compr.vmdk')}`]);
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'vmdk',
        '-F',
        'raw',
        join(dir, 'compr.vmdk'),
        join(ex, 'gzdisk', 'disk0.raw'),
      ]);
      await execa('qemu-img', [
        'compare',
        '-q',
        '-f',
        'vmdk',
        '-F',
        'raw',
        join(GANETI, 'new_disk.vmdk'),
        join(ex, 'gzova', 'disk0.raw'),
      ]);
      expect(await readdir(st)).toEqual([]);
    });
  });

  it("refuses Ganeti's negative cases", async () => {
    await needPrograms('tar');
    await withTmpDir('peer', async (dir) => {
      const st = join(dir, 'staging');
      const cases: [string, string, string][] = [
        [
          'corrupted_resources',
          await tarOf(dir, join(dir, 'c.ova'), GANETI, ['corrupted_resources.ovf']),
          'other_disk.vmdk, referenced by corrupted_resources.ovf, is missing from the OVA',
        ],
        [
          'empty',
          await tarOf(dir, join(dir, 'e.ova'), GANETI, ['empty.ovf']),
          'Name of instance not provided: the VirtualSystem has neither ovf:id nor Name',
        ],
        [
          'no_disk_in_ref',
          await tarOf(dir, join(dir, 'n.ova'), GANETI, ['no_disk_in_ref.ovf', 'second_disk.vmdk']),
          '.ovf file corrupted - disk vmdisk1 refers to file file1, not found in references',
        ],
        [
          'wrong_xml',
          await tarOf(dir, join(dir, 'x.ova'), GANETI, ['wrong_xml.ovf']),
          'Error while reading .ovf descriptor: not well-formed XML at line 71, column 7: Invalid attribute name',
        ],
        [
          'wrong_extension',
          await tarOf(dir, join(dir, 'w.ova'), GANETI, ['wrong_extension.ovd']),
          'not an OVA: its first member wrong_extension.ovd is not an OVF descriptor (.ovf)',
        ],
        [
          'wrong_manifest',
          await tarOf(dir, join(dir, 'm.ova'), GANETI, ['wrong_manifest.ovf', 'new_disk.vmdk', 'wrong_manifest.mf']),
          'SHA1 of wrong_manifest.ovf does not match the manifest',
        ],
        [
          'wrong_ova',
          join(GANETI, 'wrong_ova.ova'),
          'not an OVA: the input is neither a tar archive nor a gzip-compressed one',
        ],
        [
          'no_ovf',
          join(GANETI, 'no_ovf.ova'),
          'not an OVA: its first member wrong_ova.ova is not an OVF descriptor (.ovf)',
        ],
      ];
      for (const [name, ova, error] of cases) {
        const r = await runImport(['--staging', st, '--ganeti-export', join(dir, 'ex'), ova]);
        expect(r.stderr.split('\n')[0], name).toBe(`p2v-import: ${error}`);
        expect(r.exitCode, name).toBe(3);
        expect(await readdir(st), name).toEqual([]);
      }
    });
  });

  it("imports virt-v2v's vSphere descriptors with synthesised disks (50 GiB, 450 GiB, gzip)", async () => {
    await needPrograms('qemu-img', 'tar', 'gzip');
    await withTmpDir('peer', async (dir) => {
      const st = join(dir, 'staging');
      const ex = join(dir, 'exports');
      const cases: { ovf: string; disks: { href: string; capacity: number; gzip?: boolean }[] }[] = [
        { ovf: 'test-i-ova.ovf', disks: [{ href: 'test-ova.vmdk', capacity: 32 * GiB }] },
        { ovf: 'test-i-ova-formats.ovf', disks: [{ href: 'disk1.vmdk', capacity: 50 * GiB }] },
        { ovf: 'test-i-ova-gz.ovf', disks: [{ href: 'disk1.vmdk.gz', capacity: 50 * GiB, gzip: true }] },
        { ovf: 'test-i-ova-snapshots.ovf', disks: [{ href: 'disk1.vmdk', capacity: 50 * GiB }] },
        {
          ovf: 'test-i-ova-two-disks.ovf',
          disks: [
            { href: 'disk1.vmdk', capacity: 50 * GiB },
            { href: 'disk2.vmdk', capacity: 450 * GiB },
          ],
        },
      ];
      for (const [i, c] of cases.entries()) {
        const d = join(dir, `c${i}`);
        await mkdir(d);
        const raws = [];
        for (const disk of c.disks) raws.push(await synthDisk(d, disk.href, disk.capacity, disk.gzip));
        await adapt(join(V2V, c.ovf), join(d, 'vm.ovf'), d);
        const ova = await tarOf(d, join(d, 'vm.ova'), d, ['vm.ovf', ...c.disks.map((x) => x.href)]);
        const name = `v2v${i}`;
        const r = await runImport(['--staging', st, '--ganeti-export', ex, '--name', name, '-q', ova]);
        expect(r.stderr, c.ovf).toBe('');
        expect(r.exitCode, c.ovf).toBe(0);
        const ini = await readFile(join(ex, name, 'config.ini'), 'utf8');
        for (const [k, disk] of c.disks.entries()) {
          expect(ini, c.ovf).toContain(`disk${k}_size = ${disk.capacity / MiB}\n`);
          await execa('qemu-img', [
            'compare',
            '-q',
            '-f',
            'raw',
            '-F',
            'raw',
            raws[k]!,
            join(ex, name, `disk${k}.raw`),
          ]);
          // Sparse: a 450 GiB disk holding 1 MiB takes about 1 MiB.
          expect((await stat(join(ex, name, `disk${k}.raw`))).blocks * 512).toBeLessThan(8 * MiB);
        }
      }
      expect(await readdir(st)).toEqual([]);
    });
  });

  it('refuses the snapshot layout (disk1.vmdk.00000000N without ovf:chunkSize) and an unmodified huge populatedSize', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('peer', async (dir) => {
      const st = join(dir, 'staging');
      await synthDisk(dir, 'disk1.vmdk.000000000', 50 * GiB);
      await adapt(join(V2V, 'test-i-ova-snapshots.ovf'), join(dir, 'vm.ovf'), join(dir)).catch(async () => {
        // ovf:size names disk1.vmdk, which is not there: keep the descriptor as it is.
        await writeFile(join(dir, 'vm.ovf'), await readFile(join(V2V, 'test-i-ova-snapshots.ovf')));
      });
      const snap = await tarOf(dir, join(dir, 's.ova'), dir, ['vm.ovf', 'disk1.vmdk.000000000']);
      const r = await runImport(['--staging', st, snap]);
      expect(r.stderr.split('\n')[0]).toBe(
        'p2v-import: member disk1.vmdk.000000000 is a chunk, but the descriptor gives disk1.vmdk no ovf:chunkSize',
      );
      expect(r.exitCode).toBe(3);

      // The two-disk descriptor as vSphere wrote it says 294 GB are populated: more than staging holds here.
      const d = join(dir, 'two');
      await mkdir(d);
      await synthDisk(d, 'disk1.vmdk', 50 * GiB);
      await synthDisk(d, 'disk2.vmdk', 450 * GiB);
      let xml = await readFile(join(V2V, 'test-i-ova-two-disks.ovf'), 'utf8');
      for (const f of ['disk1.vmdk', 'disk2.vmdk'])
        xml = xml.replace(new RegExp(`(href="${f}"[^>]*ovf:size=")\\d+`), `$1${(await stat(join(d, f))).size}`);
      await writeFile(join(d, 'vm.ovf'), xml);
      const two = await tarOf(d, join(d, 'two.ova'), d, ['vm.ovf', 'disk1.vmdk', 'disk2.vmdk']);
      const r2 = await runImport(['--staging', st, two]);
      expect(r2.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^p2v-import: staging ${st} has [\\d.]+ GiB \\(\\d+ bytes\\) free but the disks need 273\\.9 GiB \\(294122029056 bytes\\)$`,
        ),
      );
      expect(r2.exitCode).toBe(3);
      expect(await readdir(st)).toEqual([]);
    });
  });

  it('imports the OVF 2.0 (VirtualBox) template with its size filled in', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('peer', async (dir) => {
      const raw = await synthDisk(dir, 'Untangle-disk001.vmdk', 2 * GiB);
      const tpl = await readFile(join(PEERS, 'ovf2', 'untangle-vbox-ovf2.ovf.tpl'), 'utf8');
      await writeFile(join(dir, 'vm.ovf'), tpl.replace(/\+SIZE\+/g, String(2 * GiB)));
      const ova = await tarOf(dir, join(dir, 'u.ova'), dir, ['vm.ovf', 'Untangle-disk001.vmdk']);
      const r = await runImport([
        '--staging',
        join(dir, 'st'),
        '--raw',
        join(dir, 'out'),
        '--name',
        'untangle',
        '-q',
        ova,
      ]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'raw', raw, join(dir, 'out', 'untangle-disk0.raw')]);
    });
  });
});
