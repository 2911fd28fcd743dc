/**
 * The acceptance of p2v-export, end to end through the real CLIs: a 1 GiB
 * physical-looking disk (MBR, ext4 root named /dev/sda1 in fstab, swap full
 * of random pages, ~200 MiB of live files and a deleted 300 MiB file whose
 * blocks still hold data) goes through
 *
 *   p2v-export --disk IMG --hypervisor kvm --ovf | p2v-import --staging S --raw R
 *
 * and through `-o X.ova` + `p2v-import X.ova`. The source must be untouched,
 * the stream no bigger than what gzip makes of the live files (free space and
 * swap are not sent), and the decoded disk must hold a clean filesystem with
 * the same files and the same swap identity. Every way p2v-export can end
 * (success, its reader going away, SIGINT) must leave no nbdkit, nbdfuse,
 * loop device or mount behind.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSampleDisk, type SampleDisk } from '../../lib/sample-disk.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { cliArgv } from '../helpers/cli.js';
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
} from './support.js';

let dir: string;
let sample: SampleDisk;
let sourceSha: string;
/** gzip -6 of a tar of every live file of the source root fs: what an honest copy of the data costs. */
let referenceBytes: number;

/**
 * Environment of p2v-export: its work dir (overlay sockets, FUSE and guest
 * mounts) in a fresh directory under the test dir, one per run, so each test
 * sees only what its own run left.
 */
async function exportEnv(run: string): Promise<{ TMPDIR: string }> {
  const tmp = join(dir, `tmp-${run}`);
  await mkdir(tmp);
  return { TMPDIR: tmp };
}

/** p2v-export removed its work directory: nothing left in TMPDIR (what is left is listed on failure). */
async function expectWorkDirRemoved(env: { TMPDIR: string }, stderr = ''): Promise<void> {
  const left = await execa('find', [env.TMPDIR, '-mindepth', '1'], { reject: false });
  expect(String(left.stdout), `p2v-export left its work directory behind; its stderr:\n${stderr}`).toBe('');
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'nbdkit',
    'nbdfuse',
    'nbdinfo',
    'qemu-img',
    'losetup',
    'mount',
    'sfdisk',
    'mkfs.ext4',
    'mkswap',
    'debugfs',
    'cpio',
    'e2fsck',
    'blkid',
    'fstrim',
    'tar',
    'gzip',
    'pgrep',
  );
  dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-e2e-accept-'));
  sample = await buildSampleDisk({
    path: join(dir, 'source.img'),
    sizeMiB: 1024,
    swapMiB: 64,
    fillerMiB: 200,
    deletedFileMiB: 300,
    hostname: 'oldhost',
  });
  sourceSha = await sha256File(sample.path);
  // The reference is read from the source through a read-only loop and a
  // read-only, no-journal-replay mount: it must not change the source either.
  referenceBytes = await withOffsetLoop(
    sample.path,
    sample.rootOffset,
    sample.rootSize,
    (dev) =>
      withMount(
        dev,
        join(dir, 'ref-mnt'),
        async (mnt) => {
          const r = await execa('bash', ['-o', 'pipefail', '-c', `tar -C ${sh(mnt)} -cf - . | gzip -6 | wc -c`]);
          return Number(String(r.stdout).trim());
        },
        { readOnly: true },
      ),
    { readOnly: true },
  );
}, 600_000);

afterAll(async () => {
  if (dir && process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
});

/** Check a decoded raw disk against the sample: clean root fs with the same files, same swap identity, fixed fstab. */
async function checkDecodedDisk(raw: string): Promise<void> {
  expect((await stat(raw)).size).toBe(sample.size);
  const table = JSON.parse(String((await execa('sfdisk', ['--json', raw])).stdout)) as {
    partitiontable: { label: string; id: string; partitions: { start: number; size: number; type: string }[] };
  };
  expect(table.partitiontable.label).toBe('dos');
  expect(table.partitiontable.id.toLowerCase()).toBe(sample.diskId.toLowerCase());
  expect(table.partitiontable.partitions.map((p) => [p.start * 512, p.size * 512])).toEqual([
    [sample.rootOffset, sample.rootSize],
    [sample.swapOffset, sample.swapSize],
  ]);

  await withOffsetLoop(raw, sample.rootOffset, sample.rootSize, async (dev) => {
    const fsck = await execa('e2fsck', ['-fn', dev], { reject: false, all: true });
    expect(fsck.exitCode, String(fsck.all)).toBe(0);
    expect((await probe(dev)).UUID).toBe(sample.rootUuid);
    await withMount(
      dev,
      join(dir, 'check-mnt'),
      async (mnt) => {
        const digests: Record<string, string> = {};
        for (const p of sample.liveFiles) digests[p] = await sha256File(join(mnt, p));
        expect(digests).toEqual(sample.liveFileDigests);
        // The deleted file stays deleted, and the kvm fixups renamed the disks.
        await expect(stat(join(mnt, 'var/log/old-backup.tar'))).rejects.toThrow();
        const fstab = await readFile(join(mnt, 'etc/fstab'), 'utf8');
        expect(fstab).not.toMatch(/^\/dev\/sda/m);
        expect(fstab).toMatch(new RegExp(`^UUID=${sample.rootUuid}\\s+/\\s`, 'm'));
      },
      { readOnly: true },
    );
  });

  await withOffsetLoop(
    raw,
    sample.swapOffset,
    sample.swapSize,
    async (dev) => {
      const swap = await probe(dev);
      expect({ type: swap.TYPE, uuid: swap.UUID, label: swap.LABEL }).toEqual({
        type: 'swap',
        uuid: sample.swapUuid,
        label: sample.swapLabel,
      });
    },
    { readOnly: true },
  );
}

describe('p2v-export acceptance (1 GiB MBR disk, 200 MiB live, 300 MiB deleted, random swap)', () => {
  it('streams with --ovf into p2v-import --raw: small stream, same files, same swap, source untouched, nothing left', async () => {
    const staging = join(dir, 'staging');
    const rawDir = join(dir, 'raw');
    const ovaCopy = join(dir, 'stream.ova');
    const env = await exportEnv('ovf');
    // tee keeps the bytes that went over the pipe, to measure them.
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', sample.path, '--hypervisor', 'kvm', '--ovf', '--progress', 'none')}` +
        ` | tee ${sh(ovaCopy)}` +
        ` | ${tool('p2v-import')} ${sh('--staging', staging, '--raw', rawDir, '--progress', 'none')}`,
      env,
    );
    expectPipelineOk(r);
    await expectNoLeftovers(dir);
    await expectWorkDirRemoved(env, r.stderr);
    expect(await sha256File(sample.path)).toBe(sourceSha);

    const sent = (await stat(ovaCopy)).size;
    process.stderr.write(
      `export-acceptance: stream ${sent} bytes, reference tar|gzip -6 ${referenceBytes} bytes ` +
        `(ratio ${(sent / referenceBytes).toFixed(3)}), pipeline ${r.seconds.toFixed(1)} s\n`,
    );
    expect(sent).toBeLessThanOrEqual(1.05 * referenceBytes);
    // And well below the data the disk holds in allocated blocks (live + deleted + swap).
    expect(sent).toBeLessThan(sample.size / 3);

    const raws = await readdir(rawDir);
    expect(raws).toEqual(['oldhost-disk0.raw']);
    await checkDecodedDisk(join(rawDir, raws[0]!));
  });

  it('writes a single-file OVA with -o that p2v-import reads back to the same files', async () => {
    const ova = join(dir, 'machine.ova');
    const env = await exportEnv('file');
    const exp = await execa(
      cliArgv('p2v-export')[0]!,
      [...cliArgv('p2v-export').slice(1), '--disk', sample.path, '-o', ova, '--progress', 'none'],
      {
        reject: false,
        all: true,
        env,
        stdin: 'ignore',
      },
    );
    expect(exp.exitCode, String(exp.all)).toBe(0);
    await expectNoLeftovers(dir);
    await expectWorkDirRemoved(env, String(exp.all));
    expect(await sha256File(sample.path)).toBe(sourceSha);

    // A standard OVA: descriptor first, then the manifest and the disk (DSP0243 order).
    const members = String((await execa('tar', ['-tf', ova])).stdout)
      .trim()
      .split('\n');
    expect(members[0]).toMatch(/\.ovf$/);
    expect(members.some((m) => m.endsWith('.mf'))).toBe(true);
    expect(members.filter((m) => m.endsWith('.vmdk'))).toHaveLength(1);
    expect((await stat(ova)).size).toBeLessThanOrEqual(1.05 * referenceBytes);

    const rawDir = join(dir, 'raw-from-file');
    const imp = await execa(
      cliArgv('p2v-import')[0]!,
      [
        ...cliArgv('p2v-import').slice(1),
        '--staging',
        join(dir, 'staging2'),
        '--raw',
        rawDir,
        '--progress',
        'none',
        ova,
      ],
      { reject: false, all: true, stdin: 'ignore' },
    );
    expect(imp.exitCode, String(imp.all)).toBe(0);
    const raws = await readdir(rawDir);
    expect(raws).toHaveLength(1);
    await checkDecodedDisk(join(rawDir, raws[0]!));
  });

  it('exits non-zero and cleans up when its reader goes away mid-stream', async () => {
    const env = await exportEnv('epipe');
    const r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', sample.path, '--ovf', '--progress', 'none')} | head -c 5000000 >/dev/null`,
      env,
    );
    expect(r.statuses).toHaveLength(2);
    expect(r.statuses[1]).toBe(0); // head read its 5 MB: the failure happened mid-stream
    expect(r.statuses[0], r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/broken pipe|went away|EPIPE/i);
    await expectNoLeftovers(dir);
    await expectWorkDirRemoved(env, r.stderr);
    expect(await sha256File(sample.path)).toBe(sourceSha);
  });

  for (const target of ['p2v-export alone', 'its whole process group (Ctrl-C)'] as const) {
    it(`stops on SIGINT to ${target} mid-stream and cleans up`, async () => {
      const out = join(dir, 'interrupted.ova');
      const [node, ...args] = cliArgv('p2v-export');
      const env = await exportEnv(target === 'p2v-export alone' ? 'sigint' : 'ctrl-c');
      const child = execa(node!, [...args, '--disk', sample.path, '--ovf', '--progress', 'none'], {
        reject: false,
        env,
        stdin: 'ignore',
        stdout: { file: out },
        stderr: 'pipe',
        detached: true, // its own process group, like a shell job
      });
      const deadline = Date.now() + 60_000;
      for (;;) {
        const size = await stat(out).then(
          (s) => s.size,
          () => 0,
        );
        if (size > 8 * MiB) break;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error('p2v-export never got to streaming');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(child.exitCode).toBeNull(); // still streaming when interrupted
      if (target === 'p2v-export alone') child.kill('SIGINT');
      else process.kill(-child.pid!, 'SIGINT');
      const res = await child;
      expect(res.exitCode === 130 || res.signal === 'SIGINT', `exit ${res.exitCode} ${res.signal}\n${res.stderr}`).toBe(
        true,
      );
      await expectNoLeftovers(dir);
      await expectWorkDirRemoved(env, String(res.stderr));
      expect(await sha256File(sample.path)).toBe(sourceSha);
      await rm(out, { force: true });
    });
  }
});
