/**
 * Warm migration, booted (issue 18's slow acceptance): the Debian machine of
 * debian-machine.ts, its root mounted read-write and a writer busy in it,
 * is copied by a warm pass
 *
 *   p2v-export --disk IMG --name NEW --warm --ovf | p2v-import --keep-base …   (kept as a base, no output)
 *
 * then the writer stops, the filesystem is unmounted and some files change
 * (the machine's last minutes), and the final pass from the unmounted disk,
 * with fixups, sends only the difference:
 *
 *   p2v-import --block-map NEW > map
 *   p2v-export --disk IMG --hypervisor kvm --hostname NEW --base-map map --ovf | p2v-import --keep-base --raw OUT
 *
 * The result must equal a cold export of the same final disk with the same
 * options, and boot under qemu TCG as Ganeti's kvm starts it (virtio disk
 * and NIC, a new MAC) to `NEW login:`. "Equal": two exports with fixups are
 * never byte-identical (the fixups write files, and ext4 stamps them and its
 * superblock with the time of each run), so the comparison is: the same
 * partition table, the same bytes outside the root filesystem (MBR boot code,
 * swap), and the same root tree (every path, type, mode, owner, size,
 * content, link, xattr, ACL and flag), with equal mtimes except on what each
 * run's fixups wrote (stamped after that run started).
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchMap, runPipe, type PipeRun } from '../../bench/delta-pipe.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { BAD_BOOT, bootToLogin } from '../helpers/qemu-boot.js';
import { treeDigest, type TreeEntry } from '../helpers/tree-digest.js';
import { buildDebianMachine, inspectRoot, type DebianMachine } from './debian-machine.js';
import { expectNoLeftovers, withMount, withOffsetLoop } from './support.js';

const NEW = 'warmnew';
const NEW_MAC = '52:54:00:aa:bb:18';

let work = '';
let machine: DebianMachine;
let writer: ResultPromise | undefined;
const savedTmp = process.env.TMPDIR;

function ok(r: PipeRun, what: string): PipeRun {
  expect(r.exportCode, `${what}: ${r.exportStderr}`).toBe(0);
  expect(r.importCode, `${what}: ${r.importStderr}`).toBe(0);
  return r;
}

async function rangeSha(path: string, start: number, end: number): Promise<string> {
  const h = createHash('sha256');
  if (end > start) for await (const b of createReadStream(path, { start, end: end - 1 })) h.update(b as Buffer);
  return h.digest('hex');
}

/** The root tree of a result (mounted read-only). */
async function rootTree(raw: string, mnt: string): Promise<TreeEntry[]> {
  return inspectRoot(raw, machine, mnt, (root) => treeDigest(root));
}

beforeAll(async () => {
  needRoot();
  await needPrograms('qemu-system-x86_64', 'python3', 'nbdkit', 'nbdfuse', 'qemu-img', 'losetup', 'debootstrap');
  await needPrograms('getfattr', 'getfacl', 'lsattr', 'sfdisk', 'mount', 'umount', 'dd');
  work = await mkdtemp('/var/tmp/p2v-e2e-warm-boot-');
  await mkdir(join(work, 'tmp'));
  // Every p2v-export of this file keeps its sockets, FUSE views and mounts under work/tmp (the leak check).
  process.env.TMPDIR = join(work, 'tmp');
  machine = await buildDebianMachine(work);
}, 1_800_000);

afterAll(async () => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  if (writer && writer.exitCode === null) {
    writer.kill('SIGKILL');
    await writer.catch(() => undefined);
  }
  await execa('umount', [join(work, 'live')], { reject: false });
  if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
}, 120_000);

describe('a machine moved by a warm pass and a final delta pass', () => {
  it('equals a cold export of its final disk and boots under qemu TCG to its login prompt', async () => {
    const staging = join(work, 'staging');
    const out = join(work, 'out');
    const imp = ['--staging', staging, '--keep-base', '--raw', out, '--quiet'];
    const fixed = ['--disk', machine.path, '--name', NEW, '--ovf', '--quiet'];
    const fixups = ['--hypervisor', 'kvm', '--hostname', NEW];

    // The running machine: its root mounted read-write, a writer appending and rewriting files in it.
    const live = join(work, 'live');
    await mkdir(live);
    const loop = (
      await execa('losetup', [
        '--find',
        '--show',
        '-o',
        String(machine.rootOffset),
        '--sizelimit',
        String(machine.rootSize),
        machine.path,
      ])
    ).stdout.trim();
    let warm: PipeRun;
    try {
      await execa('mount', [loop, live]);
      writer = execa(
        'sh',
        [
          '-c',
          `i=0; while :; do i=$((i+1)); date >> ${live}/var/log/p2v-writer.log; ` +
            `dd if=/dev/urandom of=${live}/srv/busy-$((i % 4)) bs=64k count=8 conv=notrunc status=none; sync; done`,
        ],
        { reject: false },
      );
      warm = ok(await runPipe([...fixed, '--warm'], imp), 'warm pass');
      // Kept as the base only: a warm pass writes no output.
      expect(await readFile(join(out, `${NEW}-disk0.raw`)).catch(() => 'none')).toBe('none');
    } finally {
      writer?.kill('SIGKILL');
      await writer?.catch(() => undefined);
      await execa('umount', [live], { reject: false });
      await execa('losetup', ['-d', loop], { reject: false });
    }
    process.stderr.write(`warm-boot: warm pass ${warm.seconds.toFixed(1)} s, ${warm.bytes} bytes\n`);

    // The machine stopped: its last changes, then the final pass from the unmounted disk.
    await withOffsetLoop(machine.path, machine.rootOffset, machine.rootSize, (dev) =>
      withMount(dev, join(work, 'change-mnt'), async (root) => {
        await mkdir(join(root, 'srv/data'), { recursive: true });
        for (let i = 0; i < 20; i++) await writeFile(join(root, `srv/data/f${i}`), `last words ${i}\n`.repeat(4000));
        await rm(join(root, 'srv/busy-1'), { force: true });
      }),
    );
    const mapFile = join(work, 'map');
    await fetchMap(staging, NEW, mapFile);
    const finalStart = BigInt(Date.now()) * 1_000_000n;
    const final = ok(await runPipe([...fixed, ...fixups, '--base-map', mapFile], imp), 'final pass');
    process.stderr.write(`warm-boot: final pass ${final.seconds.toFixed(1)} s, ${final.bytes} bytes\n`);
    expect(final.bytes).toBeLessThan(warm.bytes / 3);
    await expectNoLeftovers(work);
    const result = join(out, `${NEW}-disk0.raw`);
    expect((await stat(result)).size).toBe(machine.size);

    // A cold export of the same final disk with the same options, into a stager of its own.
    const coldStart = BigInt(Date.now()) * 1_000_000n;
    ok(
      await runPipe([...fixed, ...fixups], ['--staging', join(work, 's2'), '--raw', join(work, 'cold'), '--quiet']),
      'cold export',
    );
    const cold = join(work, 'cold', `${NEW}-disk0.raw`);
    const table = async (p: string) => {
      const t = JSON.parse((await execa('sfdisk', ['--json', p])).stdout).partitiontable;
      type Part = { start: number; size: number; type: string; bootable?: boolean };
      return {
        label: t.label,
        id: t.id,
        parts: t.partitions.map(({ start, size, type, bootable }: Part) => [start, size, type, bootable]),
      };
    };
    expect(await table(result)).toEqual(await table(cold));
    for (const [a, b] of [
      [0, machine.rootOffset],
      [machine.rootOffset + machine.rootSize, machine.size],
    ] as const)
      expect(await rangeSha(result, a, b), `bytes ${a}-${b}`).toBe(await rangeSha(cold, a, b));
    const [t1, t2] = [await rootTree(result, join(work, 'm1')), await rootTree(cold, join(work, 'm2'))];
    expect(t1.map((e) => e.path)).toEqual(t2.map((e) => e.path));
    const strip = (e: TreeEntry, since: bigint) => (BigInt(e.mtime) >= since ? { ...e, mtime: 'fixed up' } : e);
    for (const [i, e] of t1.entries()) expect(strip(e, finalStart), e.path).toEqual(strip(t2[i]!, coldStart));
    // The fixups did run in the final pass (what the comparison lets differ in time): /etc/hostname was written by it.
    expect(BigInt(t1.find((e) => e.path === 'etc/hostname')!.mtime)).toBeGreaterThanOrEqual(finalStart);
    await inspectRoot(result, machine, join(work, 'm3'), async (root) => {
      expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe(`${NEW}\n`);
      expect(await readFile(join(root, 'srv/data/f7'), 'utf8')).toBe('last words 7\n'.repeat(4000));
    });

    // Booted as Ganeti's kvm starts an instance: virtio disk and NIC, a new MAC.
    // bootToLogin kills qemu before it returns or throws; snapshot: the result stays as imported.
    const boot = await bootToLogin({
      disk: result,
      hostname: NEW,
      firmware: 'bios',
      mac: NEW_MAC,
      log: join(work, 'boot-serial.log'),
      memoryMiB: 768,
      snapshot: true,
    });
    expect(boot.console).not.toMatch(BAD_BOOT);
    process.stderr.write(`warm-boot: login prompt ${boot.seconds.toFixed(0)} s after qemu start\n`);
  });
});
