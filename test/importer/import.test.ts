/**
 * p2v-import end to end, run as installed: raw disks → qemu-img
 * streamOptimized VMDKs + hand-written descriptor + manifest, tarred by GNU
 * tar → p2v-import → every output compared byte for byte with qemu-img.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { needPrograms } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { makeGoodOva, makeRawDisk, MiB, runImport } from './fixtures.js';
import { cliArgv, ROOT } from '../helpers/cli.js';
import { readRawChunks } from '../../importer/disk-sink.js';
import { buildDescriptor } from '../../ovf/descriptor/index.js';
import { writeOva } from '../../ovf/ova/index.js';
import type { MachineDescription } from '../../ovf/types.js';
import { writeStreamOptimized } from '../../ovf/vmdk/index.js';

const OVF_XSD = join(ROOT, '..', 'shared', 'reference', 'ovf-schemas', 'xo-ova-schema', 'dsp8023_1.1.1.xsd');

async function same(a: string, b: string, fmtB = 'raw'): Promise<void> {
  await execa('qemu-img', ['compare', '-q', '-f', 'raw', '-F', fmtB, a, b]);
}

describe('p2v-import', () => {
  it('writes a Ganeti export, raw, qcow2 and OVA outputs identical to the source disks', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('imp', async (dir) => {
      const good = await makeGoodOva(dir, {
        name: 'Web Server 1',
        sizes: [6 * MiB, 3 * MiB + 512],
        mac: 'aa:00:00:11:22:33',
      });
      const staging = join(dir, 'staging');
      const r = await runImport(
        [
          '--staging',
          staging,
          '--ganeti-export',
          join(dir, 'exports'),
          '--raw',
          join(dir, 'raw'),
          '--qcow2',
          join(dir, 'qcow2'),
          '--ova',
          join(dir, 'out', 'again.ova'),
          '-',
        ],
        { inputFile: good.ova },
      );
      expect(r.exitCode).toBe(0);
      const exp = join(dir, 'exports', 'web-server-1');
      expect(r.stderr).toBe(
        [
          exp,
          join(dir, 'out', 'again.ova'),
          join(dir, 'raw', 'web-server-1-disk0.raw'),
          join(dir, 'raw', 'web-server-1-disk1.raw'),
          join(dir, 'qcow2', 'web-server-1-disk0.qcow2'),
          join(dir, 'qcow2', 'web-server-1-disk1.qcow2'),
        ]
          .map((p) => `p2v-import: output: ${p}`)
          .join('\n'),
      );

      expect((await readdir(exp)).sort()).toEqual(['config.ini', 'disk0.raw', 'disk1.raw']);
      expect(await readFile(join(exp, 'config.ini'), 'utf8')).toBe(
        `[export]
version = 0
os = p2v-image+default

[instance]
name = web-server-1
hypervisor = kvm
disk_count = 2
disk0_size = 6
disk0_dump = disk0.raw
disk1_size = 4
disk1_dump = disk1.raw
nic_count = 1
nic0_mac = aa:00:00:11:22:33
nic0_mode = bridged
nic0_link = gntbr0

[backend]
memory = 512
vcpus = 2
`,
      );
      for (const [i, raw] of good.raws.entries()) {
        const dump = join(exp, `disk${i}.raw`);
        expect((await stat(dump)).isFile()).toBe(true);
        expect((await stat(dump)).size).toBe((await stat(raw)).size);
        await same(raw, dump);
        await same(raw, join(dir, 'raw', `web-server-1-disk${i}.raw`));
        await same(raw, join(dir, 'qcow2', `web-server-1-disk${i}.qcow2`), 'qcow2');
      }
      // The staged copy is gone once outputs are written; nothing else is left in staging.
      expect(await readdir(staging)).toEqual([]);
      // No temporary names left next to outputs.
      for (const d of ['exports', 'raw', 'qcow2', 'out'])
        expect((await readdir(join(dir, d))).filter((n) => n.startsWith('.'))).toEqual([]);

      // The OVA output is a standard OVA: import it again and compare.
      const r2 = await runImport([
        '--staging',
        staging,
        '--raw',
        join(dir, 'raw2'),
        '--name',
        'again',
        '-q',
        join(dir, 'out', 'again.ova'),
      ]);
      expect(r2.stderr).toBe('');
      expect(r2.exitCode).toBe(0);
      for (const [i, raw] of good.raws.entries()) await same(raw, join(dir, 'raw2', `again-disk${i}.raw`));
      const tv = await execa('tar', ['-tvf', join(dir, 'out', 'again.ova')]);
      expect(tv.stdout).toMatch(
        /web-server-1\.ovf[\s\S]*web-server-1-disk1\.vmdk[\s\S]*web-server-1-disk2\.vmdk[\s\S]*web-server-1\.mf/,
      );
      // Checked by others than us: the descriptor against the DMTF schema, the VMDKs by qemu-img.
      await execa('tar', ['-xf', join(dir, 'out', 'again.ova'), '-C', join(dir, 'out')]);
      await execa('xmllint', ['--noout', '--nonet', '--schema', OVF_XSD, join(dir, 'out', 'web-server-1.ovf')]);
      for (const [i, raw] of good.raws.entries()) {
        await execa('qemu-img', [
          'compare',
          '-q',
          '-f',
          'raw',
          '-F',
          'vmdk',
          raw,
          join(dir, 'out', `web-server-1-disk${i + 1}.vmdk`),
        ]);
      }
    });
  });

  it('hard-links dumps on the same filesystem and copies them sparsely across filesystems', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('imp', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [32 * MiB] });
      const shm = await mkdtemp('/dev/shm/p2v-imp-');
      try {
        const r = await runImport(
          [
            '--staging',
            join(dir, 'staging'),
            '--ganeti-export',
            join(dir, 'exports'),
            '--raw',
            shm,
            '--keep-staged',
            '-q',
          ],
          {
            inputFile: good.ova,
          },
        );
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        const [id] = await readdir(join(dir, 'staging'));
        const staged = await stat(join(dir, 'staging', id!, 'disk0.raw'));
        const dump = await stat(join(dir, 'exports', 'test-vm', 'disk0.raw'));
        // Same filesystem: the very same inode, no second copy.
        expect(dump.ino).toBe(staged.ino);
        expect(dump.nlink).toBe(2);
        // /dev/shm is another filesystem: a copy, as sparse as the source.
        const copy = join(shm, 'test-vm-disk0.raw');
        expect((await stat(copy)).size).toBe(32 * MiB);
        expect((await stat(copy)).blocks * 512).toBeLessThanOrEqual(4 * 65536 + 65536);
        await same(good.raws[0]!, copy);
      } finally {
        await rm(shm, { recursive: true, force: true });
      }
    });
  });

  it('takes the stream p2v-export writes: chunked members, manifest last, a GanetiSection', async () => {
    await needPrograms('qemu-img');
    await withTmpDir('imp', async (dir) => {
      const raw = join(dir, 'src.raw');
      await makeRawDisk(raw, 5 * MiB, 7);
      const machine: MachineDescription = {
        name: 'streamed',
        cpus: 1,
        memoryMiB: 256,
        files: [],
        disks: [
          { diskId: 'vmdisk1', capacity: 5 * MiB, format: 'vmdk-streamOptimized', controller: 'virtio', unit: 0 },
        ],
        networks: ['lan'],
        nics: [{ network: 'lan', mac: 'aa:00:00:00:00:07', model: 'virtio' }],
        ganeti: { os: 'p2v-image+default', hypervisor: 'kvm', nics: [{ mode: 'routed', link: 'br7' }] },
      };
      const [node, script] = cliArgv('p2v-import');
      const child = execa(
        node!,
        [script!, '--staging', join(dir, 'staging'), '--ganeti-export', join(dir, 'exports'), '-q'],
        {
          reject: false,
          stdin: 'pipe',
        },
      );
      await writeOva({
        descriptorName: 'streamed.ovf',
        descriptor: (files) =>
          buildDescriptor(
            { ...machine, files, disks: [{ ...machine.disks[0]!, fileRef: files[0]!.id }] },
            { chunked: true },
          ),
        files: [
          {
            id: 'file1',
            href: 'streamed-disk1.vmdk',
            content: writeStreamOptimized({ capacity: 5 * MiB, chunks: readRawChunks(raw, 5 * MiB) }),
          },
        ],
        mode: 'stream',
        output: child.stdin!,
        chunkSize: 64 * 1024,
      });
      child.stdin!.end();
      const r = await child;
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const ini = await readFile(join(dir, 'exports', 'streamed', 'config.ini'), 'utf8');
      expect(ini).toContain('nic0_mac = aa:00:00:00:00:07\nnic0_mode = routed\nnic0_link = br7\n');
      await same(raw, join(dir, 'exports', 'streamed', 'disk0.raw'));
    });
  });

  it('keeps the verified import in staging when no output is asked for', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('imp', async (dir) => {
      const good = await makeGoodOva(dir);
      const staging = join(dir, 'staging');
      const r = await runImport(['--staging', staging], { inputFile: good.ova });
      expect(r.exitCode).toBe(0);
      const ids = await readdir(staging);
      expect(ids).toHaveLength(1);
      expect(ids[0]).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
      expect((await readdir(join(staging, ids[0]!))).sort()).toEqual(['disk0.raw', 'machine.json']);
      await same(good.raws[0]!, join(staging, ids[0]!, 'disk0.raw'));
      const rec = JSON.parse(await readFile(join(staging, ids[0]!, 'machine.json'), 'utf8')) as {
        instanceName: string;
        manifestFound: boolean;
      };
      expect(rec.instanceName).toBe('test-vm');
      expect(rec.manifestFound).toBe(true);
    });
  });

  it('refuses to replace an existing export, before reading any disk data', async () => {
    await needPrograms('qemu-img', 'tar');
    await withTmpDir('imp', async (dir) => {
      const good = await makeGoodOva(dir);
      const staging = join(dir, 'staging');
      await execa('mkdir', ['-p', join(dir, 'exports', 'test-vm')]);
      await writeFile(join(dir, 'exports', 'test-vm', 'config.ini'), 'precious\n');
      const r = await runImport(['--staging', staging, '--ganeti-export', join(dir, 'exports')], {
        inputFile: good.ova,
      });
      expect(r.exitCode).toBe(1);
      expect(r.stderr.split('\n')[0]).toBe(`p2v-import: ${join(dir, 'exports', 'test-vm')} already exists`);
      expect(await readFile(join(dir, 'exports', 'test-vm', 'config.ini'), 'utf8')).toBe('precious\n');
      expect(await readdir(join(dir, 'exports'))).toEqual(['test-vm']);
      // Known from the descriptor: refused before a disk byte, so nothing was staged (fs-errors.test.ts has more).
      expect(await readdir(staging)).toEqual([]);
      expect(r.stderr.split('\n')[1]).toBe('p2v-import: hint: remove it, or choose another name with --name');
    });
  });

  it('writes disk 0 onto a device, refusing one that is too small before reading', async () => {
    await needPrograms('qemu-img', 'tar', 'losetup');
    await withTmpDir('imp', async (dir) => {
      const good = await makeGoodOva(dir, { sizes: [4 * MiB] });
      const staging = join(dir, 'staging');
      await execa('truncate', ['-s', '2M', join(dir, 'small.img')]);
      const small = await runImport(['--staging', staging, '--device', join(dir, 'small.img')], {
        inputFile: good.ova,
      });
      expect(small.exitCode).toBe(3);
      expect(small.stderr.split('\n')[0]).toBe(
        `p2v-import: ${join(dir, 'small.img')} holds 2.0 MiB (2097152 bytes) but the disk needs 4.0 MiB (4194304 bytes)`,
      );
      expect(await readdir(staging)).toEqual([]);

      await execa('truncate', ['-s', '5M', join(dir, 'target.img')]);
      const loop = (await execa('losetup', ['--find', '--show', join(dir, 'target.img')])).stdout.trim();
      try {
        const r = await runImport(['--staging', staging, '--device', loop], { inputFile: good.ova });
        expect(r.stderr).toBe(`p2v-import: output: ${loop}`);
        expect(r.exitCode).toBe(0);
        // The device is 1 MiB larger than the disk: compare the disk's length.
        const onDevice = (await execa('sh', ['-c', `head -c ${4 * MiB} ${loop} | sha256sum`])).stdout;
        const source = (await execa('sh', ['-c', `sha256sum < ${good.raws[0]!}`])).stdout;
        expect(onDevice).toBe(source);
        expect(await readdir(staging)).toEqual([]);
      } finally {
        await execa('losetup', ['-d', loop]);
      }
    });
  });
});
