/**
 * p2v-export on LVM, end to end through the real CLIs, on small disks built
 * without device-mapper (test/helpers/lvm-guest.ts):
 *
 *   disk 0: MBR, partition 1 = PV pv0      disk 1: MBR, partition 1 = PV pv1
 *   VG: root (linear, pv0: the guest's /), data (two segments: pv0 then pv1,
 *   mounted on /srv), swap (pv1); dirt everywhere nothing lives: a deleted
 *   file in data, random swap pages, random bytes in the unallocated extents.
 *
 * The export goes through `p2v-import --raw`; the LVs are read back from the
 * decoded disks at their extents: the same files, the same swap identity, the
 * guest's /dev/mapper and /dev/VG names kept, and the dirt not sent. Layouts
 * we do not handle are refused before any byte, with their exact message.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildInitrd, buildTree, put, seededBytes } from '../../../lib/sample-tree.js';
import { buildLvmDisks, lvmId, lvRanges, lvSize, writeLv, type LvmDisks } from '../../helpers/lvm-guest.js';
import { needPrograms, needRoot } from '../../helpers/programs.js';
import { cliArgv } from '../../helpers/cli.js';
import {
  expectNoLeftovers,
  expectPipelineOk,
  MiB,
  probe,
  sh,
  sha256File,
  shellPipeline,
  tool,
  withMount,
  withOffsetLoop,
} from '../../e2e/support.js';

let dir: string;
let disks: LvmDisks;
let vg: string;
const dataFiles: Record<string, string> = {};
let swapUuid: string;
let sourceSums: string[];
let referenceBytes: number;

/** Fill `size` bytes at `offset` of `file` with random data. */
async function dirty(file: string, offset: number, size: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(randomBytes(size), 0, size, offset);
  } finally {
    await fh.close();
  }
}

/** An ext4 image of `size` bytes made from `tree`; `deleted` MiB of random data written and deleted in it. */
async function ext4Image(path: string, size: number, tree: string, label: string, deletedMiB: number): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  await fh.close();
  await execa('mkfs.ext4', ['-q', '-F', '-L', label, '-d', tree, path]);
  if (deletedMiB) {
    await withMount(path, join(dir, `dirt-${label}`), async (mnt) => {
      await writeFile(join(mnt, 'old.bin'), randomBytes(deletedMiB * MiB));
      await execa('sync');
      await rm(join(mnt, 'old.bin'));
    });
  }
}

/** The bytes of an LV of the decoded disks, copied into one file. */
async function readLv(paths: string[], name: string, out: string): Promise<void> {
  let at = 0;
  for (const r of lvRanges(disks, name)) {
    await execa('dd', [
      `if=${paths[r.disk]}`,
      `of=${out}`,
      'bs=1M',
      `skip=${r.offset}`,
      `seek=${at}`,
      `count=${r.size}`,
      'iflag=skip_bytes,count_bytes',
      'oflag=seek_bytes',
      'conv=notrunc,sparse',
      'status=none',
    ]);
    at += r.size;
  }
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'nbdkit',
    'nbdfuse',
    'losetup',
    'sfdisk',
    'mkfs.ext4',
    'mkswap',
    'pvcreate',
    'vgcfgrestore',
    'e2fsck',
    'fstrim',
  );
  dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-lvm-export-'));
  vg = `p2v${Date.now().toString(36)}`;
  disks = await buildLvmDisks(dir, {
    vg,
    disks: [
      { sizeMiB: 64, partitions: [{ sizeMiB: 62, pv: true }] },
      { sizeMiB: 40, partitions: [{ sizeMiB: 38, pv: true }] },
    ],
    lvs: [
      { name: 'root', segments: [{ pv: 0, extent: 0, count: 24 }] },
      {
        name: 'data',
        segments: [
          { pv: 0, extent: 30, count: 10 },
          { pv: 1, extent: 0, count: 20 },
        ],
      },
      { name: 'swap', segments: [{ pv: 1, extent: 25, count: 8 }] },
    ],
  });
  // The root: the sample Debian tree, its fstab naming the LVs as installers do.
  const rootTree = join(dir, 'root-tree');
  const fstab =
    `/dev/mapper/${vg}-root / ext4 errors=remount-ro 0 1\n` +
    `/dev/${vg}/data /srv ext4 defaults 0 2\n` +
    `/dev/mapper/${vg}-swap none swap sw 0 0\n`;
  await buildTree(rootTree, {
    hostname: 'oldhost',
    mac: '52:54:00:12:34:56',
    ip: '192.0.2.10/24',
    kver: '6.1.0-18-amd64',
    fstab,
    fillerMiB: 1,
    rootDevice: `/dev/mapper/${vg}-root`,
    grubPrefix: '/boot',
  });
  await put(rootTree, 'boot/initrd.img-6.1.0-18-amd64', await buildInitrd(dir, '6.1.0-18-amd64'));
  const dataTree = join(dir, 'data-tree');
  for (let i = 0; i < 6; i++) {
    const name = `file${i}.bin`;
    // Half-compressible content of known digest: 1 MiB each, so it spans both segments.
    const bytes = Buffer.concat([seededBytes(`lvm-${i}`, MiB / 2), Buffer.alloc(MiB / 2, i)]);
    await mkdir(dataTree, { recursive: true });
    await writeFile(join(dataTree, name), bytes);
  }
  await ext4Image(join(dir, 'root.img'), lvSize(disks, 'root'), rootTree, 'root', 0);
  await ext4Image(join(dir, 'data.img'), lvSize(disks, 'data'), dataTree, 'data', 8);
  await writeLv(disks, 'root', join(dir, 'root.img'));
  await writeLv(disks, 'data', join(dir, 'data.img'));
  // Swap full of random pages behind a fresh header.
  const swap = lvRanges(disks, 'swap')[0]!;
  await dirty(disks.paths[swap.disk]!, swap.offset, swap.size);
  swapUuid = '5e7c1a8e-0000-4000-8000-00000000beef';
  await withOffsetLoop(disks.paths[swap.disk]!, swap.offset, swap.size, (dev) =>
    execa('mkswap', ['-U', swapUuid, '-L', 'swap', dev]),
  );
  // Random bytes in unallocated extents: pv0 24-29 and pv1 20-24.
  await dirty(disks.paths[0]!, disks.pvs[0]!.firstExtent + 24 * MiB, 6 * MiB);
  await dirty(disks.paths[1]!, disks.pvs[1]!.firstExtent + 20 * MiB, 5 * MiB);
  for (const d of ['data-tree']) {
    const mnt = join(dir, d);
    for (const f of await readdir(mnt)) dataFiles[f] = await sha256File(join(mnt, f));
  }
  sourceSums = await Promise.all(disks.paths.map(sha256File));
  // What an honest copy of the live files costs: tar | gzip -6 of both trees.
  const r = await execa('bash', [
    '-o',
    'pipefail',
    '-c',
    `tar -C ${sh(dir)} -cf - root-tree data-tree | gzip -6 | wc -c`,
  ]);
  referenceBytes = Number(String(r.stdout).trim());
}, 300_000);

afterAll(async () => {
  if (dir && process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
});

describe('p2v-export on LVM (root, a data LV in two segments on two disks, swap)', () => {
  it('round-trips every LV: same files, swap UUID kept, LVM names kept, dirt and free extents not sent', async () => {
    const staging = join(dir, 'staging');
    const rawDir = join(dir, 'raw');
    const ova = join(dir, 'stream.ova');
    const tmp = join(dir, 'tmp-export');
    await mkdir(tmp);
    const diskArgs = disks.paths.flatMap((p) => ['--disk', p]);
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh(...diskArgs, '--hypervisor', 'kvm', '--hostname', 'newhost', '--ovf', '--progress', 'none')}` +
        ` | tee ${sh(ova)} | ${tool('p2v-import')} ${sh('--staging', staging, '--raw', rawDir, '--progress', 'none')}`,
      { TMPDIR: tmp },
    );
    expectPipelineOk(r);
    expect(r.stderr).not.toMatch(/copied whole|cannot be mounted|not supported/);
    // The sample initramfs has no lvm tool: the export says the root may not be found at boot.
    expect(r.stderr).toContain(`the root is on LV ${vg}/root but the initramfs of 6.1.0-18-amd64 has no lvm tool`);
    await expectNoLeftovers(dir);
    expect(await Promise.all(disks.paths.map(sha256File))).toEqual(sourceSums);

    const sent = (await stat(ova)).size;
    process.stderr.write(`export-lvm: stream ${sent} bytes, tar|gzip of the live files ${referenceBytes} bytes\n`);
    // Each kind of dirt is at least 5 MiB of random bytes: any of them sent would show.
    expect(sent).toBeLessThanOrEqual(1.05 * referenceBytes);

    const raws = (await readdir(rawDir)).sort().map((f) => join(rawDir, f));
    expect(raws.length).toBe(2);
    // The data LV, read back from its two segments on two decoded disks.
    const data = join(dir, 'data-back.img');
    await readLv(raws, 'data', data);
    const fsck = await execa('e2fsck', ['-fn', data], { reject: false, all: true });
    expect(fsck.exitCode, String(fsck.all)).toBe(0);
    await withMount(
      data,
      join(dir, 'data-mnt'),
      async (mnt) => {
        const got: Record<string, string> = {};
        for (const f of (await readdir(mnt)).filter((x) => x.endsWith('.bin'))) got[f] = await sha256File(join(mnt, f));
        expect(got).toEqual(dataFiles);
      },
      { readOnly: true },
    );
    const root = join(dir, 'root-back.img');
    await readLv(raws, 'root', root);
    await withMount(
      root,
      join(dir, 'root-mnt'),
      async (mnt) => {
        expect(await readFile(join(mnt, 'etc/hostname'), 'utf8')).toBe('newhost\n');
        const fstab = await readFile(join(mnt, 'etc/fstab'), 'utf8');
        expect(fstab).toMatch(new RegExp(`^/dev/mapper/${vg}-root\\s+/\\s`, 'm'));
        expect(fstab).toMatch(new RegExp(`^/dev/${vg}/data\\s+/srv\\s`, 'm'));
        expect(fstab).toMatch(new RegExp(`^/dev/mapper/${vg}-swap\\s+none\\s+swap`, 'm'));
      },
      { readOnly: true },
    );
    const swap = lvRanges(disks, 'swap')[0]!;
    await withOffsetLoop(
      raws[swap.disk]!,
      swap.offset,
      swap.size,
      async (dev) => expect((await probe(dev)).UUID).toBe(swapUuid),
      { readOnly: true },
    );
    // LVM itself still finds the VG and its three LVs on the decoded disks.
    const loops: string[] = [];
    try {
      for (const pv of disks.pvs)
        loops.push(
          String(
            (
              await execa('losetup', [
                '--find',
                '--show',
                '--read-only',
                '-o',
                String(pv.offset),
                '--sizelimit',
                String(pv.size),
                raws[pv.disk]!,
              ])
            ).stdout,
          ).trim(),
        );
      const lvs = await execa('lvs', ['--noheadings', '-o', 'lv_name', '--devices', loops.join(','), vg], {
        reject: false,
      });
      expect(String(lvs.stdout).split(/\s+/).filter(Boolean).sort()).toEqual(['data', 'root', 'swap']);
    } finally {
      for (const l of loops) await execa('losetup', ['-d', l], { reject: false });
    }
  }, 300_000);
});

describe('p2v-export --inspect on LVM', () => {
  it('lists the volume group, each LV with its filesystem and mountpoint, and the root LV', async () => {
    const tmp = await mkdtemp(join(dir, 'tmp-inspect-'));
    const r = await execa(
      cliArgv('p2v-export')[0]!,
      [...cliArgv('p2v-export').slice(1), ...disks.paths.flatMap((p) => ['--disk', p]), '--inspect'],
      {
        env: { TMPDIR: tmp },
      },
    );
    const text = String(r.stdout);
    expect(text).toContain(`volume group ${vg}: disk 0 partition 1, disk 1 partition 1, extents of 1.0 MiB`);
    expect(text).toMatch(/^ {2}root +24 MiB in 1 range\(s\): ext4, label "root", UUID [0-9a-f-]+, mounted on \/$/m);
    expect(text).toMatch(/^ {2}data +30 MiB in 2 range\(s\): ext4, label "data", UUID [0-9a-f-]+, mounted on \/srv$/m);
    expect(text).toMatch(
      /^ {2}swap +8\.0 MiB in 1 range\(s\): swap, label "swap", UUID 5e7c1a8e-0000-4000-8000-00000000beef, mounted on swap$/m,
    );
    expect(text).toContain(`root:             LV ${vg}/root`);
  }, 120_000);
});

/** Run p2v-export --ovf on `paths` (extra args after), stdout into a file: the exit code, stderr and bytes sent. */
async function exportTo(
  paths: string[],
  extra: string[] = [],
): Promise<{ exitCode: number; stderr: string; bytes: number }> {
  const out = join(dir, `out-${randomBytes(4).toString('hex')}.ova`);
  const tmp = await mkdtemp(join(dir, 'tmp-'));
  const r = await execa(
    'bash',
    [
      '-c',
      `${tool('p2v-export')} ${sh(...paths.flatMap((p) => ['--disk', p]), '--ovf', '--progress', 'none', ...extra)} > ${sh(out)}`,
    ],
    { reject: false, env: { TMPDIR: tmp } },
  );
  return { exitCode: r.exitCode ?? -1, stderr: String(r.stderr), bytes: (await stat(out)).size };
}

describe('LVM layouts p2v-export refuses before sending anything', () => {
  it('a VG with a snapshot: every LV involved named; --lvm-as-is copies it untouched', async () => {
    const name = `s${Date.now().toString(36)}`;
    const sub = await mkdtemp(join(dir, 'snap-'));
    const snap = await buildLvmDisks(sub, {
      vg: name,
      disks: [{ sizeMiB: 24, partitions: [{ sizeMiB: 22, pv: true }] }],
      lvs: [
        { name: 'origin', segments: [{ pv: 0, extent: 0, count: 8 }] },
        { name: 'cow', segments: [{ pv: 0, extent: 8, count: 4 }] },
      ],
      rawLvSections: `
    snapshot0 {
      id = "${lvmId()}"
      status = ["READ"]
      flags = []
      segment_count = 1
      segment1 {
        start_extent = 0
        extent_count = 8
        type = "snapshot"
        chunk_size = 8
        origin = "origin"
        cow_store = "cow"
      }
    }`,
    });
    const r = await exportTo(snap.paths);
    expect(r.exitCode).not.toBe(0);
    expect(r.bytes).toBe(0);
    expect(r.stderr).toContain(
      `LVM volume group ${name} cannot be converted: ${name}/origin is the origin of a snapshot; ` +
        `${name}/cow is the store of a snapshot; ${name}/snapshot0 is a snapshot (segment type snapshot)`,
    );
    expect(r.stderr).toContain('--lvm-as-is');
    const asIs = await exportTo(snap.paths, ['--lvm-as-is']);
    expect(asIs.exitCode, asIs.stderr).toBe(0);
    expect(asIs.stderr).toContain(`LVM volume group ${name} is copied untouched (--lvm-as-is)`);
    expect(asIs.bytes).toBeGreaterThan(0);
  }, 120_000);

  it('an LV striped over two PVs', async () => {
    const name = `t${Date.now().toString(36)}`;
    const sub = await mkdtemp(join(dir, 'stripe-'));
    const striped = await buildLvmDisks(sub, {
      vg: name,
      disks: [
        {
          sizeMiB: 24,
          partitions: [
            { sizeMiB: 10, pv: true },
            { sizeMiB: 10, pv: true },
          ],
        },
      ],
      lvs: [],
      rawLvSections: `
    fast {
      id = "${lvmId()}"
      status = ["READ", "WRITE", "VISIBLE"]
      flags = []
      segment_count = 1
      segment1 {
        start_extent = 0
        extent_count = 8
        type = "striped"
        stripe_count = 2
        stripe_size = 128
        stripes = ["pv0", 0, "pv1", 0]
      }
    }`,
    });
    const r = await exportTo(striped.paths);
    expect(r.exitCode).not.toBe(0);
    expect(r.bytes).toBe(0);
    expect(r.stderr).toContain(
      `LVM volume group ${name} cannot be converted: ${name}/fast is striped over 2 physical volumes`,
    );
  }, 120_000);

  it('MD RAID and LUKS are named as not supported yet, in one message', async () => {
    const img = join(dir, 'md-luks.img');
    const fh = await open(img, 'w');
    await fh.truncate(48 * MiB);
    await fh.close();
    await execa('sfdisk', ['-q', img], {
      input: 'label: dos\nstart=2048, size=40960, type=fd\nstart=43008, size=40960, type=83\n',
    });
    await writeMdSuperblock(img, MiB, 20 * MiB);
    await withOffsetLoop(img, 21 * MiB, 20 * MiB, (dev) =>
      execa(
        'cryptsetup',
        [
          'luksFormat',
          '-q',
          '--type',
          'luks2',
          '--pbkdf',
          'pbkdf2',
          '--pbkdf-force-iterations',
          '1000',
          '--key-file',
          '-',
          dev,
        ],
        {
          input: 'secret',
        },
      ),
    );
    const r = await exportTo([img]);
    expect(r.exitCode).not.toBe(0);
    expect(r.bytes).toBe(0);
    expect(r.stderr).toContain(
      'not supported yet: MD RAID member on sda partition 1, LUKS encrypted volume on sda partition 2',
    );
  }, 120_000);
});

/**
 * An MD RAID1 member's v1.2 superblock (4 KiB into the member), written by hand
 * because mdadm needs the kernel's md driver, which these machines lack. Only
 * what blkid checks is filled in: magic, version, super_offset and the checksum.
 */
async function writeMdSuperblock(file: string, offset: number, size: number): Promise<void> {
  const sb = Buffer.alloc(1024);
  sb.writeUInt32LE(0xa92b4efc, 0); // magic
  sb.writeUInt32LE(1, 4); // major_version
  randomBytes(16).copy(sb, 16); // set_uuid
  sb.write('p2vtest:0', 32, 'latin1'); // set_name
  sb.writeInt32LE(1, 72); // level: raid1
  sb.writeBigUInt64LE(BigInt((size - 2 * MiB) / 512), 80); // size
  sb.writeUInt32LE(2, 92); // raid_disks
  sb.writeBigUInt64LE(2048n, 128); // data_offset
  sb.writeBigUInt64LE(BigInt((size - 2 * MiB) / 512), 136); // data_size
  sb.writeBigUInt64LE(8n, 144); // super_offset: 4 KiB in sectors
  randomBytes(16).copy(sb, 168); // device_uuid
  sb.writeUInt32LE(2, 220); // max_dev
  sb.writeUInt16LE(0, 256);
  sb.writeUInt16LE(1, 258);
  // sb_csum: 32-bit sum of the first 256 + 2*max_dev bytes with the field zero, high half folded in.
  let sum = 0n;
  for (let i = 0; i < 256 + 2 * 2; i += 4) sum += BigInt(sb.readUInt32LE(i));
  sum = (sum & 0xffffffffn) + (sum >> 32n);
  sb.writeUInt32LE(Number(sum & 0xffffffffn), 216);
  const fh = await open(file, 'r+');
  try {
    await fh.write(sb, 0, sb.length, offset + 4096);
  } finally {
    await fh.close();
  }
}
