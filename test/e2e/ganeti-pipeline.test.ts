/**
 * The whole pipeline into a real Ganeti 3.0.2 cluster (the shared sandbox,
 * fake hypervisor, file disks):
 *
 *   p2v-ganeti-os install                                    (inside the sandbox)
 *   p2v-export --disk IMG --ovf | p2v-import --ganeti-export /var/lib/ganeti/export --raw R --ova X.ova
 *   gnt-backup import …                                      → instance disk == R, byte for byte
 *
 * plus a two-disk machine, Ganeti's own ovfconverter reading our OVA (the OS
 * name comes from our gnt:GanetiSection, no -o) and qemu-img accepting the
 * VMDK inside it. Ganeti 3.0.2 exits 0 when an OS import script fails, so
 * every check looks at the disk bytes and the job output, not the status.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSampleDisk, type SampleDisk } from '../../lib/sample-disk.js';
import { cliArgv } from '../helpers/cli.js';
import {
  backupImportArgv,
  EXPORT_DIR,
  instanceDiskFiles,
  leaseSandbox,
  NODE,
  type SandboxLease,
} from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import {
  expectNoLeftovers,
  expectPipelineOk,
  MiB,
  sh,
  sha256File,
  shellPipeline,
  tool,
  withMount,
  withOffsetLoop,
} from './support.js';

const OVFCONVERTER = '/usr/lib/ganeti/tools/ovfconverter';

let lease: SandboxLease | undefined;
let work = '';
let sample: SampleDisk;
/** A second, unpartitioned data disk (ext4 on the whole device) and the sha256 of its one file. */
let dataDisk = '';
let dataDigest = '';
/** Export directories this file created under /var/lib/ganeti/export (removed in afterAll). */
const exportDirs: string[] = [];

/** `qemu-img compare` of two raw images: equal guest-visible contents. */
async function expectSameContent(a: string, b: string, fmtA = 'raw'): Promise<void> {
  const r = await execa('qemu-img', ['compare', '-f', fmtA, '-F', 'raw', a, b], { reject: false, all: true });
  expect(r.exitCode, `qemu-img compare ${a} ${b}: ${String(r.all)}`).toBe(0);
}

/** gnt-backup import of an export dir into a file-template instance; returns the job output. */
async function gntImport(srcDir: string, instance: string, extra: string[] = []): Promise<string> {
  const out = await lease!.gnt(
    backupImportArgv(srcDir, instance, [
      // The export names kvm (p2v-export --hypervisor kvm); this cluster runs only the fake hypervisor.
      '-H',
      'fake',
      ...extra,
    ]),
  );
  // A failed OS import script is only a WARNING to Ganeti 3.0.2.
  expect(out).not.toMatch(/WARNING/);
  return out;
}

/** Run p2v-export | p2v-import with the given arguments on each side. */
async function pipeline(exportArgs: string[], importArgs: string[]): Promise<void> {
  const r = await shellPipeline(
    `${tool('p2v-export')} ${sh(...exportArgs, '--ovf', '--progress', 'none')}` +
      ` | ${tool('p2v-import')} ${sh('--staging', join(work, 'staging'), ...importArgs, '--progress', 'none')}`,
    { TMPDIR: join(work, 'tmp') },
  );
  expectPipelineOk(r);
  process.stderr.write(`ganeti-pipeline: p2v-export | p2v-import took ${r.seconds.toFixed(1)} s\n`);
  await expectNoLeftovers(work);
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'nbdkit',
    'nbdfuse',
    'qemu-img',
    'losetup',
    'sfdisk',
    'mkfs.ext4',
    'mkswap',
    'tar',
    'fstrim',
    'e2fsck',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-ganeti-');
  await mkdir(join(work, 'tmp'));
  sample = await buildSampleDisk({
    path: join(work, 'boot.img'),
    sizeMiB: 256,
    swapMiB: 32,
    fillerMiB: 8,
    hostname: 'oldhost',
  });
  // The second disk: a whole-disk ext4 with a few MiB of data, like a database volume.
  const tree = join(work, 'data-tree');
  await mkdir(tree);
  await execa('dd', ['if=/dev/urandom', `of=${join(tree, 'table.db')}`, 'bs=1M', 'count=3', 'status=none']);
  dataDigest = await sha256File(join(tree, 'table.db'));
  dataDisk = join(work, 'data.img');
  await execa('truncate', ['-s', '64M', dataDisk]);
  await execa('mkfs.ext4', ['-q', '-F', '-L', 'data', '-d', tree, dataDisk]);

  lease = await leaseSandbox();
  // Installed the way an admin does it on a node: our own installer, inside the cluster's namespace.
  await lease.gnt([...cliArgv('p2v-ganeti-os'), 'install']);
  expect(await lease.gnt(['gnt-os', 'list', '--no-headers'])).toMatch(/^p2v-image\+default$/m);
}, 900_000);

afterAll(async () => {
  try {
    await lease?.release(); // removes every instance
  } finally {
    for (const d of exportDirs) await rm(d, { recursive: true, force: true });
    if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
  }
}, 300_000);

describe('p2v-export | p2v-import | gnt-backup import on a real Ganeti cluster', () => {
  const ova = () => join(work, 'moved1.ova');
  const rawDir = () => join(work, 'raw1');

  it('imports the exported machine: the instance disk equals the raw copy byte for byte', async () => {
    await pipeline(
      ['--disk', sample.path, '--hypervisor', 'kvm', '--hostname', 'moved1', '--cpus', '1', '--memory', '256M'],
      ['--ganeti-export', EXPORT_DIR, '--raw', rawDir(), '--ova', ova()],
    );
    const exportDir = join(EXPORT_DIR, 'moved1');
    exportDirs.push(exportDir);
    const ini = await readFile(join(exportDir, 'config.ini'), 'utf8');
    expect(ini).toMatch(/^os = p2v-image\+default$/m);
    expect(ini).toMatch(/^disk_count = 1$/m);
    expect(ini).toMatch(/^nic0_mode = bridged$/m);
    expect(ini).toMatch(/^nic0_link = gntbr0$/m);
    const mac = /^nic0_mac = (\S+)$/m.exec(ini)?.[1];
    const raws = await readdir(rawDir());
    expect(raws).toEqual(['moved1-disk0.raw']);
    const raw = join(rawDir(), raws[0]!);
    expect((await stat(raw)).size).toBe(sample.size);

    // No --net: the NIC comes from config.ini.
    const out = await gntImport(exportDir, 'moved1.example');
    expect(out).toMatch(/disk\/0 finished receiving data/);
    const list = await lease!.gnt([
      'gnt-instance',
      'list',
      '--no-headers',
      '--separator=|',
      '-o',
      'name,os,disk.sizes,nic.modes,nic.links,nic.macs,be/memory,be/vcpus',
      'moved1.example',
    ]);
    // The MAC in config.ini (the source's own, when it has one) is the instance's.
    const macs = mac ?? list.split('|')[5];
    expect(list.trim()).toBe(`moved1.example|p2v-image+default|${sample.size / MiB}|bridged|gntbr0|${macs}|256|1`);
    const disks = await instanceDiskFiles('moved1.example');
    expect(disks).toHaveLength(1);
    expect((await stat(disks[0]!)).size).toBe(sample.size);
    await expectSameContent(disks[0]!, raw);
    // The source itself is not what was imported: the kvm fixups changed the guest.
    const cmp = await execa('cmp', ['-s', sample.path, disks[0]!], { reject: false });
    expect(cmp.exitCode).toBe(1);
  });

  it('the VMDK inside the OVA is accepted by qemu-img info and qemu-img check and holds the same disk', async () => {
    const x = join(work, 'ova-x');
    await mkdir(x);
    await execa('tar', ['-xf', ova(), '-C', x]);
    const vmdks = (await readdir(x)).filter((f) => f.endsWith('.vmdk'));
    expect(vmdks).toHaveLength(1);
    const vmdk = join(x, vmdks[0]!);
    const info = JSON.parse(String((await execa('qemu-img', ['info', '--output=json', vmdk])).stdout)) as {
      format: string;
      'virtual-size': number;
      'format-specific'?: { data?: { 'create-type'?: string } };
    };
    expect(info.format).toBe('vmdk');
    expect(info['virtual-size']).toBe(sample.size);
    expect(info['format-specific']?.data?.['create-type']).toBe('streamOptimized');
    const check = await execa('qemu-img', ['check', '-f', 'vmdk', vmdk], { reject: false, all: true });
    expect(check.exitCode, String(check.all)).toBe(0);
    await expectSameContent(vmdk, join(rawDir(), 'moved1-disk0.raw'), 'vmdk');
  });

  it("Ganeti's own ovfconverter imports our OVA (OS from gnt:GanetiSection) and gnt-backup import takes it", async () => {
    const outDir = join(EXPORT_DIR, 'ovfconverter');
    exportDirs.push(outDir);
    // No -o: the OS name must come from our gnt:GanetiSection.
    const conv = await lease!.exec([OVFCONVERTER, 'import', ova(), `--output-dir=${outDir}`, '--name=moved1conv']);
    expect(conv.exitCode, conv.all).toBe(0);
    const convDir = join(outDir, 'moved1conv');
    const ini = await readFile(join(convDir, 'config.ini'), 'utf8');
    expect(ini).toMatch(/^os = p2v-image\+default$/m);
    // ovfconverter writes nic0_network = auto, which gnt-backup import refuses: name the NIC ourselves.
    await gntImport(convDir, 'moved1conv.example', ['--net', '0:mode=bridged,link=gntbr0']);
    const disks = await instanceDiskFiles('moved1conv.example');
    expect(disks).toHaveLength(1);
    await expectSameContent(disks[0]!, join(rawDir(), 'moved1-disk0.raw'));
  });

  it('a two-disk machine imports both disks, each onto its own instance disk', async () => {
    // Every export from this host carries its NIC's MAC, which Ganeti keeps unique: the
    // machine moved above must go first, as the physical one would be retired.
    for (const old of ['moved1.example', 'moved1conv.example'])
      await lease!.gnt(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', old]);
    const raw2 = join(work, 'raw2');
    await pipeline(
      ['--disk', sample.path, '--disk', dataDisk, '--hypervisor', 'kvm', '--hostname', 'moved2'],
      ['--ganeti-export', EXPORT_DIR, '--raw', raw2],
    );
    exportDirs.push(join(EXPORT_DIR, 'moved2'));
    const ini = await readFile(join(EXPORT_DIR, 'moved2', 'config.ini'), 'utf8');
    expect(ini).toMatch(/^disk_count = 2$/m);
    expect((await readdir(raw2)).sort()).toEqual(['moved2-disk0.raw', 'moved2-disk1.raw']);

    const out = await gntImport(join(EXPORT_DIR, 'moved2'), 'moved2.example');
    expect(out).toMatch(/disk\/0 finished receiving data/);
    expect(out).toMatch(/disk\/1 finished receiving data/);
    const disks = await instanceDiskFiles('moved2.example');
    expect(disks).toHaveLength(2);
    expect((await stat(disks[0]!)).size).toBe(sample.size);
    expect((await stat(disks[1]!)).size).toBe(64 * MiB);
    await expectSameContent(disks[0]!, join(raw2, 'moved2-disk0.raw'));
    await expectSameContent(disks[1]!, join(raw2, 'moved2-disk1.raw'));
    // The data disk holds the same file in a clean filesystem (its superblock changed: it was
    // mounted on the overlay to be trimmed).
    await withOffsetLoop(
      disks[1]!,
      0,
      64 * MiB,
      async (dev) => {
        const fsck = await execa('e2fsck', ['-fn', dev], { reject: false, all: true });
        expect(fsck.exitCode, String(fsck.all)).toBe(0);
        await withMount(
          dev,
          join(work, 'data-mnt'),
          async (mnt) => {
            expect(await sha256File(join(mnt, 'table.db'))).toBe(dataDigest);
          },
          { readOnly: true },
        );
      },
      { readOnly: true },
    );
  });
});
