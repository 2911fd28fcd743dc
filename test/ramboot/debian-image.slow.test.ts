/**
 * The cached Debian image builder (test/helpers/debian-image.ts) with a kernel
 * and GRUB: the image must boot on its own (BIOS → GRUB in the MBR → kernel
 * from the ext4 root) to the serial login prompt, as a converted guest does.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { copyImage, debianImage, SHARED_MACHINE_SPEC } from '../helpers/debian-image.js';
import { needPrograms, needRoot } from '../helpers/programs.js';

const SERIAL_WAIT = fileURLToPath(new URL('../../../shared/tools/serial-wait.py', import.meta.url));

describe('debianImage with kernel and GRUB', () => {
  let dir: string | undefined;
  let qemu: ResultPromise | undefined;

  afterAll(async () => {
    if (qemu && qemu.exitCode === undefined) {
      qemu.kill('SIGKILL');
      await qemu;
    }
    if (dir && process.env.P2V_KEEP_TMP !== '1') await rm(dir, { recursive: true, force: true });
  });

  it('boots from its own MBR to a login prompt', async () => {
    needRoot();
    await needPrograms('qemu-system-x86_64', 'debootstrap', 'grub-mkimage', 'python3');
    // The image the other boot tests share (one debootstrap per cache), booted as it was built.
    const img = await debianImage({ ...SHARED_MACHINE_SPEC, packages: [...SHARED_MACHINE_SPEC.packages] });
    expect(img.kernelRelease).toMatch(/-amd64$/);
    dir = await mkdtemp(join(process.env.P2V_TEST_TMP ?? tmpdir(), 'p2v-debimg-'));
    const disk = await copyImage(img, join(dir, 'disk.img'));
    const serial = join(dir, 'serial.log');
    qemu = execa(
      'qemu-system-x86_64',
      [
        '-accel',
        'tcg',
        '-m',
        '768',
        '-no-reboot',
        '-drive',
        `file=${disk},if=virtio,format=raw,cache=unsafe`,
        '-nic',
        'none',
        '-serial',
        `file:${serial}`,
        '-display',
        'none',
        '-monitor',
        'none',
      ],
      { reject: false, stdin: 'ignore' },
    );
    const wait = await execa(
      'python3',
      [SERIAL_WAIT, serial, join(dir, 'console.log'), '300', `${SHARED_MACHINE_SPEC.hostname} login:`],
      {
        reject: false,
      },
    );
    console.log(`debian image (GRUB) boot: ${wait.stdout}`);
    expect(wait.stdout).toMatch(/^MATCH /);
  });
});
