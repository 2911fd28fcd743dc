/**
 * The direct path's target, for real: build the ramboot initrd for the host's
 * Debian kernel, boot a debootstrap-built bootstrap disk with it under qemu
 * (TCG), check over SSH that / is a tmpfs and the disk is free, write a known
 * image onto /dev/vda through SSH, power off, and compare the disk's bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isP2vError } from '../../lib/errors.js';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRamInitrd } from '../../ramboot/build.js';
import { bootRamTarget, type RamTarget } from '../helpers/ram-target.js';
import { copyImage, debianImage, type DebianImage } from '../helpers/debian-image.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { hostKernel, processesNaming } from '../helpers/host.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ramboot target (qemu TCG)', () => {
  let dir: string;
  let target: RamTarget | undefined;
  let img: DebianImage;
  let disk: string;
  let initrd: string;
  let vmlinuz: string;

  beforeAll(async () => {
    needRoot();
    await needPrograms('qemu-system-x86_64', 'ssh', 'debootstrap');
    dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-ramboot-'));
    const k = await hostKernel();
    vmlinuz = k.vmlinuz;
    initrd = join(dir, 'initrd.img');
    const report = await buildRamInitrd({ kernelRelease: k.release, output: initrd });
    expect(report.modules.some((m) => m.endsWith('/virtio_blk.ko'))).toBe(true);
    img = await debianImage({ hostname: 'p2v-ramboot' });
    disk = await copyImage(img, join(dir, 'disk.img'));
  });

  afterAll(async () => {
    await target?.stop();
    if (dir && process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
  });

  it("holds /init, busybox and the kernel's virtio and ext4 modules", async () => {
    const list = (await execa('sh', ['-c', `zcat ${initrd} | cpio -it --quiet`])).stdout.split('\n');
    expect(list).toContain('init');
    expect(list).toContain('bin/busybox');
    for (const m of ['virtio_pci', 'virtio_blk', 'virtio_net', 'ext4', 'jbd2'])
      expect(
        list.some((l) => l.startsWith('lib/modules/') && l.endsWith(`/${m}.ko`)),
        m,
      ).toBe(true);
  });

  // First: it only reads the disk, which the next test overwrites.
  it('refuses clearly on the console when RAM cannot hold the root', async () => {
    const lowDir = join(dir, 'low-ram');
    await mkdir(lowDir);
    const err = await bootRamTarget({
      kernel: vmlinuz,
      initrd,
      disk,
      rootUuid: img.rootUuid,
      sshKey: img.sshKey,
      workDir: lowDir,
      memoryMiB: 384,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isP2vError(err, 'COMMAND_FAILED')).toBe(true);
    expect((err as Error).message).toBe('the ramboot initrd failed on the target');
    const log = await readFile(join(lowDir, 'serial.log'), 'utf8');
    expect(log).toMatch(/p2v-ramboot: ERROR: not enough RAM to run the root filesystem from memory: it uses \d+ MiB/);
    expect(log).toMatch(/p2v-ramboot: hint: give the instance at least \d+ MiB more memory/);
    // bootRamTarget stopped qemu on the way out: no process still has the image on its command line.
    expect(await processesNaming(disk)).toEqual([]);
  });

  it('runs the bootstrap OS from RAM and lets the disk be overwritten over SSH', async () => {
    const t0 = Date.now();
    target = await bootRamTarget({
      kernel: vmlinuz,
      initrd,
      disk,
      rootUuid: img.rootUuid,
      sshKey: img.sshKey,
      workDir: dir,
      memoryMiB: 1024,
    });
    const bootSeconds = (Date.now() - t0) / 1000;
    console.log(`ramboot target: sshd answered after ${bootSeconds.toFixed(1)} s`);

    const log = await readFile(target.serialLog, 'utf8');
    expect(log).toMatch(/p2v-ramboot: copying \d+ MiB from \/dev\/vda1 into RAM/);
    expect(log).toContain('p2v-ramboot: /dev/vda1 is free; starting /sbin/init from RAM');

    expect(await target.ssh('findmnt -n -o FSTYPE /')).toBe('tmpfs');
    // Nothing may hold the disk: no mount of any of its partitions, no swap.
    expect(await target.ssh('findmnt -rn -o SOURCE | grep -c "^/dev/vda" || true')).toBe('0');
    expect(await target.ssh('grep -c "^/dev/vda" /proc/swaps || true')).toBe('0');
    expect(await target.ssh('cat /etc/p2v-ramboot')).toMatch(/^source=UUID=.*\ndevice=\/dev\/vda1\n/);
    // systemd must not have tried to mount or fsck the disk from fstab.
    expect(await target.ssh('systemctl --failed --no-legend --plain | grep -E "remount|fsck|\\.mount" || true')).toBe(
      '',
    );
    expect(
      await target.ssh('ls /sys/block/vda/holders /sys/block/vda/vda1/holders | grep -v ":$" | grep -c . || true'),
    ).toBe('0');

    // A known image: 4 MiB of random bytes then 60 MiB that must become zero
    // (the bootstrap root is there now) — dd writes every byte of it.
    const payload = Buffer.concat([randomBytes(4 * 1024 * 1024), Buffer.alloc(60 * 1024 * 1024)]);
    const payloadFile = join(dir, 'payload.raw');
    await writeFile(payloadFile, payload);
    await target.ssh('dd of=/dev/vda bs=1M iflag=fullblock oflag=direct status=none && sync', {
      inputFile: payloadFile,
    });
    expect(await target.ssh(`head -c ${payload.length} /dev/vda | sha256sum | cut -d" " -f1`)).toBe(sha256(payload));
    await target.poweroff();
    target = undefined;

    const fh = await open(disk, 'r');
    try {
      const back = Buffer.alloc(payload.length);
      await fh.read(back, 0, back.length, 0);
      expect(sha256(back)).toBe(sha256(payload));
    } finally {
      await fh.close();
    }
  });
});
