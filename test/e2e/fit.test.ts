/**
 * Fit-to-size through the real CLI (issue 16's acceptance on generated disks):
 *
 *   p2v-export --disk A [--disk B] --target-size SIZE|auto … -o X.ova
 *
 * on disks the test builds (MBR with a /boot, a root and a logical swap; GPT
 * with a BIOS boot partition, an XFS root and swap, plus a second disk; a
 * small disk grown), decoded with tar + qemu-img (not our importer), then:
 * each filesystem clean (e2fsck -fn / xfs_repair -n), its UUID and label
 * kept, every file equal in content, owner, mode, xattrs, ACLs, links and
 * holes (test/helpers/tree-digest.ts); the table's types and GPT GUIDs kept;
 * the bytes before the first partition (boot code, grub's core.img) and a
 * BIOS boot partition unchanged. A target that is too small is refused before
 * any byte, with the minimum in the message and nothing left behind.
 */
import { mkdir, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { buildRichTree, treeDigest, type TreeEntry } from '../helpers/tree-digest.js';
import { numberOf, readTable, type SfdiskPartition, type SfdiskTable } from '../../exporter/fit/table.js';
import {
  expectNoLeftovers,
  MiB,
  probe,
  sh,
  sha256File,
  shellPipeline,
  tool,
  withMount,
  withOffsetLoop,
} from './support.js';

let work = '';

interface PartSpec {
  /** sfdisk line fields (start/size in MiB; size 0 = to the end). */
  startMiB: number;
  sizeMiB: number;
  type: string;
  name?: string;
  fs?: 'ext4' | 'xfs' | 'swap';
  label?: string;
  /** Bytes of random file content in its rich tree. */
  bulk?: number;
  /** MBR extended container: nothing to make. */
  container?: boolean;
}

interface Built {
  path: string;
  /** By partition number: digest of the tree, UUID, label. */
  parts: Map<number, { tree?: TreeEntry[]; uuid?: string; label?: string; fs?: string }>;
  table: Table;
}

const partNumber = (p: SfdiskPartition) => numberOf(p.node);
/** The table with its partition list present (sfdisk leaves it out of an empty table). */
type Table = SfdiskTable & { partitions: SfdiskPartition[] };
async function tableOf(path: string): Promise<Table> {
  const t = await readTable(path);
  return { ...t, partitions: t.partitions ?? [] };
}

/** Build a disk image: the table, a random MBR boot code and gap, each filesystem with its rich tree. */
async function buildDisk(name: string, sizeMiB: number, label: 'dos' | 'gpt', parts: PartSpec[]): Promise<Built> {
  const path = join(work, `${name}.img`);
  await execa('truncate', ['-s', `${sizeMiB}M`, path]);
  // Boot code and "core.img" in the gap: they must come through untouched.
  const fh = await open(path, 'r+');
  await fh.write(randomBytes(440), 0, 440, 0);
  await fh.write(randomBytes(MiB - 512 * 34), 0, MiB - 512 * 34, 512 * 34);
  await fh.close();
  const lines = parts.map((p) => {
    const f = [`start=${p.startMiB * 2048}`, ...(p.sizeMiB ? [`size=${p.sizeMiB * 2048}`] : []), `type=${p.type}`];
    if (p.name) f.push(`name="${p.name}"`);
    return f.join(', ');
  });
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], {
    input: `label: ${label}\n${lines.join('\n')}\n`,
  });
  const table = await tableOf(path);
  const built: Built = { path, parts: new Map(), table };
  for (const p of table.partitions) {
    const n = partNumber(p);
    const spec = parts.find((s) => s.startMiB * 2048 === p.start)!;
    if (spec.container || !spec.fs) {
      if (!spec.container && !spec.fs) {
        // A partition with no filesystem (BIOS boot): random bytes to check byte for byte.
        await withOffsetLoop(path, p.start * 512, p.size * 512, (dev) =>
          execa('dd', [
            'if=/dev/urandom',
            `of=${dev}`,
            'bs=64K',
            `count=${(p.size * 512) / 65536}`,
            'status=none',
          ]).then(() => undefined),
        );
      }
      continue;
    }
    await withOffsetLoop(path, p.start * 512, p.size * 512, async (dev) => {
      if (spec.fs === 'swap') await execa('mkswap', ['-L', spec.label ?? 'swap', dev]);
      else if (spec.fs === 'xfs') await execa('mkfs.xfs', ['-q', '-f', ...(spec.label ? ['-L', spec.label] : []), dev]);
      else await execa('mkfs.ext4', ['-q', ...(spec.label ? ['-L', spec.label] : []), dev]);
      let tree: TreeEntry[] | undefined;
      if (spec.fs !== 'swap')
        tree = await withMount(dev, join(work, `mnt-${name}-${n}`), async (root) => {
          await buildRichTree(root, { bulkBytes: spec.bulk ?? 4 * MiB });
          return treeDigest(root);
        });
      const id = await probe(dev);
      built.parts.set(n, { tree, uuid: id.UUID, label: id.LABEL, fs: spec.fs });
    });
  }
  return built;
}

/** p2v-export the disks to an OVA; returns the exit status, stderr and the decoded raw disks. */
async function exportFitted(
  name: string,
  disks: Built[],
  sizes: string[],
): Promise<{ stderr: string; raws: string[] }> {
  const dir = join(work, name);
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const ova = join(dir, 'out.ova');
  const args = [...disks.flatMap((d) => ['--disk', d.path]), ...sizes.flatMap((s) => ['--target-size', s])];
  const r = await shellPipeline(`${tool('p2v-export')} ${sh(...args, '--progress', 'none', '-o', ova)}`, {
    TMPDIR: join(dir, 'tmp'),
  });
  if (r.exitCode !== 0) throw new Error(`p2v-export failed:\n${r.stderr}`);
  await expectNoLeftovers(dir);
  await execa('tar', ['-xf', ova, '-C', dir]);
  const vmdks = (await readdir(dir)).filter((f) => f.endsWith('.vmdk')).sort();
  const raws: string[] = [];
  for (const v of vmdks) {
    const raw = join(dir, v.replace(/\.vmdk$/, '.raw'));
    await execa('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', join(dir, v), raw]);
    raws.push(raw);
  }
  return { stderr: r.stderr, raws };
}

/** The first `n` bytes of a file (never the whole disk in memory). */
async function head(path: string, n: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(n);
    await fh.read(buf, 0, n, 0);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Everything the fit must keep, checked on the decoded disk `raw` against the source `src`. */
async function expectKept(src: Built, raw: string, sizeBytes: number): Promise<Table> {
  expect((await stat(raw)).size).toBe(sizeBytes);
  const t = await tableOf(raw);
  expect(t.label).toBe(src.table.label);
  expect(t.id).toBe(src.table.id);
  const key = (p: SfdiskPartition) => ({
    n: partNumber(p),
    type: p.type,
    uuid: p.uuid,
    name: p.name,
    attrs: p.attrs,
    bootable: p.bootable,
  });
  expect(t.partitions.map(key)).toEqual(src.table.partitions.map(key));
  expect((await execa('sfdisk', ['--verify', raw], { reject: false })).exitCode).toBe(0);
  // Boot code (0–439) and the gap before the first partition, past the GPT entries.
  const first = Math.min(...t.partitions.map((p) => p.start)) * 512;
  const a = await head(src.path, first);
  const b = await head(raw, first);
  expect(b.subarray(0, 440).equals(a.subarray(0, 440))).toBe(true);
  expect(b.subarray(34 * 512).equals(a.subarray(34 * 512))).toBe(true);
  for (const p of t.partitions) {
    const n = partNumber(p);
    const old = src.table.partitions.find((q) => partNumber(q) === n)!;
    const want = src.parts.get(n);
    await withOffsetLoop(
      raw,
      p.start * 512,
      p.size * 512,
      async (dev) => {
        if (!want) {
          if (['5', 'f', '85'].includes(p.type)) return; // an extended container
          // No filesystem: same bytes.
          expect(p.size).toBe(old.size);
          const mine = await withOffsetLoop(src.path, old.start * 512, old.size * 512, (d) => sha256File(d), {
            readOnly: true,
          });
          expect(await sha256File(dev)).toBe(mine);
          return;
        }
        const id = await probe(dev);
        expect({ uuid: id.UUID, label: id.LABEL }).toEqual({ uuid: want.uuid, label: want.label });
        if (want.fs === 'swap') return;
        const check =
          want.fs === 'xfs'
            ? await execa('xfs_repair', ['-n', dev], { reject: false, all: true })
            : await execa('e2fsck', ['-fn', dev], { reject: false, all: true });
        expect(check.exitCode, `partition ${n}: ${check.all}`).toBe(0);
        const tree = await withMount(dev, join(work, `check-${n}-${Date.now()}`), (root) => treeDigest(root), {
          readOnly: want.fs !== 'xfs',
        });
        // resize2fs renumbers the inodes it moves out of dropped block groups and stamps each directory
        // naming one with the time of the resize: directory mtimes are the one thing an ext shrink changes.
        // An XFS made anew gets its files from xfsrestore, which sets whole-second times and then the
        // immutable/append-only flags, after which no finer time can be set (docs/design-fit.md).
        const frozen = (e: TreeEntry) => /[ia]/.test((e.flags ?? '').slice(0, 6));
        const comparable = (t: TreeEntry[]) =>
          t.map((e) =>
            want.fs === 'ext4' && e.type === 'dir'
              ? { ...e, mtime: 'resized' }
              : want.fs === 'xfs' && frozen(e)
                ? { ...e, mtime: e.mtime.slice(0, -9) }
                : e,
          );
        expect(comparable(tree)).toEqual(comparable(want.tree!));
      },
      { readOnly: true },
    );
  }
  return t;
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
    'mkfs.xfs',
    'xfs_repair',
    'resize2fs',
    'mkswap',
    'getfattr',
    'setfacl',
  );
  work = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-fit-'));
}, 600_000);

afterAll(async () => {
  if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
});

describe('p2v-export --target-size', () => {
  it('shrinks an MBR disk (/boot, root, logical swap) to a given size and to auto, keeping every file', async () => {
    const src = await buildDisk('mbr', 1200, 'dos', [
      { startMiB: 1, sizeMiB: 128, type: '83', fs: 'ext4', label: 'boot', bulk: 2 * MiB },
      { startMiB: 129, sizeMiB: 900, type: '83', fs: 'ext4', label: 'root', bulk: 40 * MiB },
      { startMiB: 1029, sizeMiB: 0, type: '5', container: true },
      { startMiB: 1030, sizeMiB: 128, type: '82', fs: 'swap', label: 'swap' },
    ]);
    const before = await sha256File(src.path);
    const fixed = await exportFitted('mbr-600', [src], ['600M']);
    expect(fixed.stderr).toMatch(/fitted: +disk 0: .* → 600\.0 MiB/);
    const t = await expectKept(src, fixed.raws[0]!, 600 * MiB);
    expect(t.partitions.map(partNumber)).toEqual([1, 2, 3, 5]);

    const auto = await exportFitted('mbr-auto', [src], ['auto']);
    const size = (await stat(auto.raws[0]!)).size;
    expect(size).toBeLessThan(600 * MiB);
    await expectKept(src, auto.raws[0]!, size);
    // --inspect tells that size before anything is sent.
    const [node, exp] = cliArgv('p2v-export');
    const inspect = (json: boolean) =>
      execa(node!, [exp!, '--disk', src.path, '--inspect', ...(json ? ['--json'] : [])], {
        env: { TMPDIR: join(work, 'mbr-auto', 'tmp') },
      });
    const asJson = await inspect(true);
    expect(JSON.parse(asJson.stdout).disks[0].minimumSize).toBe(size);
    expect((await inspect(false)).stdout).toMatch(/^ {2}smallest size it fits \(--target-size auto\): [\d.]+ MiB/m);
    expect(await sha256File(src.path)).toBe(before);
  });

  it('shrinks a GPT disk with an XFS root (recreated) and a BIOS boot partition, and a second disk to auto', async () => {
    const a = await buildDisk('gpt', 1500, 'gpt', [
      { startMiB: 1, sizeMiB: 1, type: '21686148-6449-6E6F-744E-656564454649', name: 'bios' },
      {
        startMiB: 2,
        sizeMiB: 1200,
        type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
        name: 'root',
        fs: 'xfs',
        label: 'root',
        bulk: 30 * MiB,
      },
      { startMiB: 1202, sizeMiB: 200, type: '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F', name: 'swap', fs: 'swap' },
    ]);
    const b = await buildDisk('data', 600, 'gpt', [
      {
        startMiB: 1,
        sizeMiB: 0,
        type: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
        name: 'data',
        fs: 'ext4',
        label: 'data',
        bulk: 10 * MiB,
      },
    ]);
    const r = await exportFitted('gpt', [a, b], ['800M', 'auto']);
    expect(r.raws).toHaveLength(2);
    await expectKept(a, r.raws[0]!, 800 * MiB);
    const bSize = (await stat(r.raws[1]!)).size;
    expect(bSize).toBeLessThan(600 * MiB);
    await expectKept(b, r.raws[1]!, bSize);
    expect(r.stderr).toMatch(/partition 2 \(xfs\): .*recreated/);
  });

  it('grows a small disk: the last filesystem takes the room, the swap after it is made anew at the end', async () => {
    const src = await buildDisk('grow', 400, 'dos', [
      { startMiB: 1, sizeMiB: 300, type: '83', fs: 'ext4', label: 'root', bulk: 8 * MiB },
      { startMiB: 301, sizeMiB: 64, type: '82', fs: 'swap', label: 'swap' },
    ]);
    const r = await exportFitted('grow', [src], ['1G']);
    const t = await expectKept(src, r.raws[0]!, 1024 * MiB);
    const [root, swap] = t.partitions;
    expect(root!.size * 512).toBeGreaterThan(900 * MiB);
    expect(swap!.size * 512).toBe(64 * MiB);
    expect((swap!.start + swap!.size) * 512).toBeLessThanOrEqual(1024 * MiB);
  });

  it('refuses a target too small for the data before any byte, naming the minimum, leaving nothing behind', async () => {
    const src = await buildDisk('small', 300, 'dos', [
      { startMiB: 1, sizeMiB: 0, type: '83', fs: 'ext4', label: 'root', bulk: 60 * MiB },
    ]);
    const dir = join(work, 'refused');
    await mkdir(join(dir, 'tmp'), { recursive: true });
    const ova = join(dir, 'out.ova');
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', src.path, '--target-size', '32M', '--progress', 'none', '-o', ova)}`,
      { TMPDIR: join(dir, 'tmp') },
    );
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(
      /^p2v-export: disk 0 \(.*small\.img\): the disk does not fit in 33554432 bytes .*needs at least \d+ bytes/m,
    );
    expect(r.stderr).toMatch(/use --target-size \d+M or larger/);
    expect(await readdir(dir)).toEqual(['tmp']);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await expectNoLeftovers(dir);
  });
});
