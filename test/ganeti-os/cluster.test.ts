/**
 * The p2v-image OS definition under a real Ganeti 3.0 cluster (the shared
 * sandbox, fake hypervisor, file disks): gnt-backup import of an export
 * directory shaped like p2v-import's, gnt-backup export back, gnt-instance
 * add from an image, a two-disk machine, and a dump too large for its disk.
 * Ganeti 3.0.2 exits 0 when an OS import script fails, so every check looks
 * at the disk's bytes and at the job output.
 *
 * The export directories are written by the test for now; the end-to-end
 * test feeds p2v-export | p2v-import into the same checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { shippedDefinitionDir } from '../../ganeti-os/definition.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  exportedDumps,
  instanceDiskFiles,
  leaseSandbox,
  NODE,
  writeExportDir,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { needPrograms } from '../helpers/programs.js';

const MiB = 1024 * 1024;

let lease: SandboxLease | undefined;
let work = '';

/** A partitioned disk (DOS label, one ext4 partition at 1 MiB) with a few MiB of files; sparse. */
async function partitionedDisk(path: string, sizeMiB: number): Promise<void> {
  const src = join(work, `tree-${sizeMiB}`);
  await mkdir(join(src, 'etc'), { recursive: true });
  await mkdir(join(src, 'var/lib/data'), { recursive: true });
  await writeFile(join(src, 'etc/hostname'), 'moved.example\n');
  await writeFile(join(src, 'etc/fstab'), 'LABEL=root / ext4 defaults 0 1\n');
  await writeFile(join(src, 'var/lib/data/blob'), randomBytes(3 * MiB));
  await execa('truncate', ['-s', `${sizeMiB}M`, path]);
  await execa('sfdisk', ['-q', path], { input: 'label: dos\nstart=2048, type=83, bootable\n' });
  await execa('mkfs.ext4', ['-q', '-F', '-L', 'root', '-E', `offset=${MiB}`, '-d', src, path, `${sizeMiB - 1}M`]);
}

/** An unpartitioned ext4 disk (a typical second data disk). */
async function wholeDiskFs(path: string, sizeMiB: number): Promise<void> {
  const src = join(work, `data-${sizeMiB}`);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'table.db'), randomBytes(MiB + 4321));
  await execa('truncate', ['-s', `${sizeMiB}M`, path]);
  await execa('mkfs.ext4', ['-q', '-F', '-L', 'data', '-d', src, path]);
}

/** `qemu-img compare`: exit 0 when the guest-visible contents are equal (a larger side's tail must be zeros). */
async function sameContent(a: string, b: string): Promise<void> {
  const r = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', a, b], { reject: false, all: true });
  expect(r.exitCode, `qemu-img compare ${a} ${b}: ${String(r.all)}`).toBe(0);
}

async function allocated(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

const importArgs = (srcDir: string, instance: string, extra: string[] = []) =>
  backupImportArgv(srcDir, instance, ['--no-nics', ...extra]);

describe('p2v-image on a real Ganeti cluster', () => {
  beforeAll(async () => {
    await needPrograms('qemu-img', 'sfdisk', 'mkfs.ext4', 'truncate');
    work = await mkdtemp('/var/tmp/p2v-gos-cluster-');
    lease = await leaseSandbox();
    await lease.installOs(shippedDefinitionDir(), 'p2v-image');
    expect(await lease.gnt(['gnt-os', 'list', '--no-headers'])).toMatch(/^p2v-image\+default$/m);
  }, 600_000);

  afterAll(async () => {
    await lease?.release();
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('imports an export dir: the instance disk equals the source and stays sparse', async () => {
    const src = join(work, 'one.raw');
    await partitionedDisk(src, 64);
    await writeExportDir({ dir: 'src-one', instance: 'one.example', disks: [{ image: src, sizeMiB: 64 }] });
    const out = await lease!.gnt(importArgs(join(EXPORT_DIR, 'src-one'), 'one.example'));
    expect(out).toMatch(/disk\/0 finished receiving data/);
    expect(out).not.toMatch(/WARNING/);
    const [disk] = await instanceDiskFiles('one.example');
    expect(disk).toBeDefined();
    expect((await stat(disk!)).size).toBe(64 * MiB);
    await sameContent(src, disk!);
    // ~3.5 MiB of files and metadata in a 64 MiB disk
    expect(await allocated(disk!)).toBeLessThan(12 * MiB);
    const list = await lease!.gnt(['gnt-instance', 'list', '--no-headers', '-o', 'name,os,disk.sizes', 'one.example']);
    expect(list.trim().split(/\s+/)).toEqual(['one.example', 'p2v-image+default', '64']);
  });

  it('gnt-backup export writes the same disk back out', async () => {
    const out = await lease!.gnt(['gnt-backup', 'export', '-n', NODE, '--noshutdown', 'one.example']);
    expect(out).not.toMatch(/WARNING/);
    const [dump] = await exportedDumps(join(EXPORT_DIR, 'one.example'));
    expect((await stat(dump!)).size).toBe(64 * MiB);
    await sameContent(join(work, 'one.raw'), dump!);

    // and that export directory imports again, as a new instance
    const again = await lease!.gnt(importArgs(join(EXPORT_DIR, 'one.example'), 'oneagain.example'));
    expect(again).not.toMatch(/WARNING/);
    const [disk] = await instanceDiskFiles('oneagain.example');
    await sameContent(join(work, 'one.raw'), disk!);
  });

  it('gnt-instance add -O image=… writes a qcow2 image onto disk 0', async () => {
    const qcow2 = join(work, 'one.qcow2');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(work, 'one.raw'), qcow2]);
    await lease!.gnt([
      'gnt-instance',
      'add',
      '-o',
      'p2v-image+default',
      '-O',
      `image=${qcow2}`,
      '-t',
      'file',
      '-s',
      '80M',
      '--no-start',
      '--no-ip-check',
      '--no-name-check',
      '--no-nics',
      '-n',
      NODE,
      'fromimage.example',
    ]);
    const [disk] = await instanceDiskFiles('fromimage.example');
    expect((await stat(disk!)).size).toBe(80 * MiB);
    await sameContent(join(work, 'one.raw'), disk!); // the 16 MiB beyond the image must read as zeros
    expect(await allocated(disk!)).toBeLessThan(12 * MiB);
  });

  it('gnt-instance reinstall -O image=… writes a raw image over disk 0', async () => {
    const raw = join(work, 'reinstall.raw');
    await partitionedDisk(raw, 72);
    const out = await lease!.gnt([
      'gnt-instance',
      'reinstall',
      '-f',
      '-O',
      `image=${raw},image_format=raw`,
      'fromimage.example',
    ]);
    expect(out).not.toMatch(/WARNING/);
    const [disk] = await instanceDiskFiles('fromimage.example');
    expect((await stat(disk!)).size).toBe(80 * MiB);
    await sameContent(raw, disk!);
  });

  it('gnt-instance add without an image fails and says what to give', async () => {
    const r = await lease!.exec([
      'gnt-instance',
      'add',
      '-o',
      'p2v-image+default',
      '-t',
      'file',
      '-s',
      '8M',
      '--no-start',
      '--no-ip-check',
      '--no-name-check',
      '--no-nics',
      '-n',
      NODE,
      'noimage.example',
    ]);
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/no image given/);
    expect(r.all).toMatch(/-O image=/);
  });

  it('imports a two-disk machine, each disk onto its own instance disk', async () => {
    const d0 = join(work, 'two-0.raw');
    const d1 = join(work, 'two-1.raw');
    await partitionedDisk(d0, 48);
    await wholeDiskFs(d1, 24);
    await writeExportDir({
      dir: 'src-two',
      instance: 'two.example',
      disks: [
        { image: d0, sizeMiB: 48 },
        { image: d1, sizeMiB: 24 },
      ],
    });
    const out = await lease!.gnt(importArgs(join(EXPORT_DIR, 'src-two'), 'two.example'));
    expect(out).not.toMatch(/WARNING/);
    const disks = await instanceDiskFiles('two.example');
    expect(disks).toHaveLength(2);
    await sameContent(d0, disks[0]!);
    await sameContent(d1, disks[1]!);
    expect((await stat(disks[1]!)).size).toBe(24 * MiB);
  });

  it('a dump larger than its disk fails loudly (in the job output; Ganeti still exits 0)', async () => {
    const src = join(work, 'big.raw');
    await partitionedDisk(src, 40);
    // data past the 32 MiB the disk will get, so a silently cut copy shows
    const tail = randomBytes(64 * 1024);
    await execa('dd', [`of=${src}`, 'bs=64K', `seek=${(36 * MiB) / (64 * 1024)}`, 'conv=notrunc', 'status=none'], {
      input: tail,
    });
    await writeExportDir({ dir: 'src-big', instance: 'big.example', disks: [{ image: src, sizeMiB: 32 }] });
    const r = await lease!.exec(importArgs(join(EXPORT_DIR, 'src-big'), 'big.example'));
    expect(r.all).toMatch(/p2v-image import: error: disk 0: the dump is larger than the disk \(32 MiB\)/);
    expect(r.all).toMatch(/hint: .*--disk 0:size=/);
    expect(r.all).toMatch(/WARNING: Some disks for instance big.example .* were not imported successfully/);
    const [disk] = await instanceDiskFiles('big.example');
    expect((await stat(disk!)).size).toBe(32 * MiB); // never extended past the disk
    // the disk holds the dump's first 32 MiB, as the error says, and nothing else
    await execa('cmp', ['-n', String(32 * MiB), src, disk!]);
    const cmp = await execa('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, disk!], { reject: false });
    expect(cmp.exitCode).toBe(1);

    // what the hint says works: the same export dir with a larger disk
    await lease!.gnt(['gnt-instance', 'remove', '-f', 'big.example']);
    const again = await lease!.gnt(importArgs(join(EXPORT_DIR, 'src-big'), 'big.example', ['--disk', '0:size=40M']));
    expect(again).not.toMatch(/WARNING/);
    const [bigger] = await instanceDiskFiles('big.example');
    await sameContent(src, bigger!);
  });
});
