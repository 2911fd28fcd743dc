/**
 * UEFI guests (issue 19) through the CLIs, on small synthetic disks built
 * here: GPT with an ESP (FAT made by mkfs.fat at the partition's offset,
 * populated with mtools) and an ext4 root whose fstab mounts /boot/efi by
 * UUID. Detection (uefi-only, both, bios-only, systemd-boot), --inspect,
 * `--boot uefi` writing the removable-media path (read back with mtools from
 * the imported raw disk), the descriptor's firmware marker, config.ini's
 * [hypervisor] kvm_extra, the refusals with their exact words, and the
 * source's sha256 unchanged.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildInitrd, buildTree, put as putFile, seededBytes } from '../../lib/sample-tree.js';
import { DEFAULT_UEFI_KVM_EXTRA } from '../../importer/config-ini.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';
import { expectPipelineOk, sha256File, shellPipeline, sh, tool } from './support.js';

const MiB = 1024 * 1024;
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649';
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

/** Representative loaders: distinct bytes per file, so a copy is told from another loader. */
const SHIM = seededBytes('shimx64', 96 * 1024);
const GRUB = seededBytes('grubx64', 160 * 1024);
const MM = seededBytes('mmx64', 64 * 1024);
const SDBOOT = seededBytes('systemd-bootx64', 80 * 1024);
const OTHER = seededBytes('another-loader', 40 * 1024);
const GRUB_CFG = "search.fs_uuid ROOT root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n";

type Kind = 'uefi' | 'both' | 'bios' | 'systemd-boot' | 'uefi-other-fallback';

interface Built {
  path: string;
  espOffset: number;
}

async function mt(args: string[], input?: Buffer): Promise<Buffer> {
  const r = await execa(args[0]!, args.slice(1), {
    env: { MTOOLS_SKIP_CHECK: '1' },
    encoding: 'buffer',
    ...(input ? { input } : {}),
  });
  return Buffer.from(r.stdout as unknown as Uint8Array);
}

/** A 96 MiB disk of the given kind; GPT unless `bios` (MBR with boot code). */
async function buildDisk(dir: string, kind: Kind): Promise<Built> {
  const path = join(dir, `${kind}.img`);
  await execa('truncate', ['-s', `${96 * MiB}`, path]);
  const gpt = kind !== 'bios';
  const rootUuid = randomUUID();
  const espId = 'ABCD1234';
  // Layout (MiB): [1, 2) BIOS boot for `both`, [2, 18) ESP, [18, 95) root (GPT); MBR: root from 1 MiB.
  const lines = gpt
    ? [
        'label: gpt',
        ...(kind === 'both' ? [`start=2048, size=2048, type=${BIOS_BOOT}`] : []),
        `start=4096, size=32768, type=${ESP_TYPE}`,
        `start=36864, size=157696, type=${LINUX}`,
      ]
    : ['label: dos', 'start=2048, size=192512, type=83, bootable'];
  await execa('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], { input: lines.join('\n') + '\n' });
  const espOffset = 2 * MiB;
  const rootOffset = gpt ? 18 * MiB : MiB;
  const rootSize = gpt ? 77 * MiB : 94 * MiB;
  const fstab =
    `UUID=${rootUuid}\t/\text4\terrors=remount-ro\t0\t1\n` +
    (gpt ? `UUID=ABCD-1234\t/boot/efi\tvfat\tumask=0077\t0\t1\n` : '');
  const tree = join(dir, `${kind}-root`);
  await buildTree(tree, {
    hostname: 'uefihost',
    mac: '52:54:00:aa:bb:cc',
    ip: '192.0.2.20/24',
    kver: '6.1.0-18-amd64',
    fstab,
    fillerMiB: 1,
    rootDevice: `UUID=${rootUuid}`,
    grubPrefix: '/boot',
  });
  await putFile(tree, 'boot/initrd.img-6.1.0-18-amd64', await buildInitrd(dir, '6.1.0-18-amd64'));
  await mkdir(join(tree, 'boot/efi'), { recursive: true });
  await execa('mkfs.ext4', [
    '-q',
    '-F',
    '-b',
    '4096',
    '-E',
    `offset=${rootOffset},root_owner=0:0`,
    '-U',
    rootUuid,
    '-d',
    tree,
    path,
    `${rootSize / 1024}k`,
  ]);
  if (gpt) {
    await execa('mkfs.fat', ['-F', '16', '-i', espId, '-n', 'ESP', '--offset', String(espOffset / 512), path, '16384']);
    const drive = `${path}@@${espOffset}`;
    const put = async (p: string, data: Buffer | string) => {
      const f = join(dir, 'put.tmp');
      await writeFile(f, data);
      await mt(['mcopy', '-o', '-i', drive, f, `::${p}`]);
    };
    if (kind === 'systemd-boot') {
      await mt(['mmd', '-i', drive, '::/EFI', '::/EFI/systemd', '::/loader', '::/loader/entries']);
      await put('/EFI/systemd/systemd-bootx64.efi', SDBOOT);
      await put('/loader/loader.conf', 'timeout 3\n');
    } else {
      await mt(['mmd', '-i', drive, '::/EFI', '::/EFI/debian']);
      await put('/EFI/debian/shimx64.efi', SHIM);
      await put('/EFI/debian/grubx64.efi', GRUB);
      await put('/EFI/debian/mmx64.efi', MM);
      await put('/EFI/debian/grub.cfg', GRUB_CFG.replace('ROOT', rootUuid));
      if (kind === 'uefi-other-fallback') {
        await mt(['mmd', '-i', drive, '::/EFI/BOOT']);
        await put('/EFI/BOOT/BOOTX64.EFI', OTHER);
      }
    }
  }
  if (kind === 'both' || kind === 'bios') {
    // Boot code in the MBR (the table at 0x1BE is left alone) and, for GPT, a core in the BIOS boot partition.
    const fh = await import('node:fs/promises').then((m) => m.open(path, 'r+'));
    try {
      await fh.write(seededBytes('boot.img', 440), 0, 440, 0);
      if (kind === 'both') await fh.write(seededBytes('core.img', 4096), 0, 4096, MiB);
      else await fh.write(seededBytes('core.img', 4096), 0, 4096, 512);
    } finally {
      await fh.close();
    }
  }
  return { path, espOffset };
}

async function inspectJson(disk: string, env: Record<string, string>): Promise<Record<string, unknown>> {
  const r = await execa('bash', ['-c', `${tool('p2v-export')} --disk ${sh(disk)} --inspect --json`], {
    env,
    reject: false,
  });
  if (r.exitCode !== 0) throw new Error(String(r.stderr));
  return JSON.parse(String(r.stdout)) as Record<string, unknown>;
}

describe('UEFI guests', () => {
  beforeAll(async () => {
    needRoot();
    await needPrograms('sfdisk', 'mkfs.ext4', 'mkfs.fat', 'mcopy', 'mdir', 'mmd', 'nbdkit', 'nbdfuse', 'losetup');
  });

  it('inspection tells uefi-only, both, bios-only and systemd-boot guests apart', async () => {
    await withTmpDir('uefi', async (dir) => {
      const env = { TMPDIR: dir, PATH: process.env.PATH ?? '' };
      const boot = async (k: Kind) => (await inspectJson((await buildDisk(dir, k)).path, env)).boot as any;

      const uefi = await boot('uefi');
      expect(uefi).toMatchObject({
        firmware: 'uefi',
        esp: { disk: 0, partition: 1, offset: 2 * MiB, size: 16 * MiB },
        efiLoaders: ['/EFI/debian/grubx64.efi', '/EFI/debian/mmx64.efi', '/EFI/debian/shimx64.efi'],
        efiBootloader: {
          kind: 'shim',
          dir: '/EFI/debian',
          loader: '/EFI/debian/shimx64.efi',
          companions: ['/EFI/debian/grubx64.efi', '/EFI/debian/mmx64.efi', '/EFI/debian/grub.cfg'],
        },
        grubPc: false,
      });
      expect(uefi.fallbackLoader).toBeUndefined();
      expect(uefi.biosBoot).toBeUndefined();

      const both = await boot('both');
      expect(both).toMatchObject({
        firmware: 'both',
        esp: { partition: 2 },
        biosBoot: { kind: 'bios-boot-partition', partition: 1, offset: MiB, size: MiB, installed: true },
      });

      const bios = await boot('bios');
      expect(bios).toMatchObject({
        firmware: 'bios',
        efiLoaders: [],
        biosBoot: { kind: 'mbr-gap', offset: 512, size: MiB - 512, installed: true },
      });
      expect(bios.esp).toBeUndefined();

      const sd = await boot('systemd-boot');
      expect(sd).toMatchObject({
        firmware: 'uefi',
        efiBootloader: { kind: 'systemd-boot', loader: '/EFI/systemd/systemd-bootx64.efi', companions: [] },
      });

      const text = await execa('bash', ['-c', `${tool('p2v-export')} --disk ${sh(join(dir, 'uefi.img'))} --inspect`], {
        env,
        reject: false,
      });
      expect(text.exitCode, String(text.stderr)).toBe(0);
      expect(String(text.stdout)).toContain('firmware:         UEFI only');
      expect(String(text.stdout)).toContain(
        'EFI loader:       shim /EFI/debian/shimx64.efi (with /EFI/debian/grubx64.efi, /EFI/debian/mmx64.efi, /EFI/debian/grub.cfg)',
      );
      expect(String(text.stdout)).toContain(
        'BIOS boot:        no place for a BIOS loader; GRUB for BIOS in the guest: no',
      );
      // The ESP is not mounted (no vfat here, and mtools is the one path): no warning about it.
      expect(String(text.stderr)).not.toMatch(/vfat|cannot be mounted/);
    });
  });

  it('--boot uefi puts shim, grub, MokManager and grub.cfg on the removable-media path; the importer writes its kvm_extra', async () => {
    await withTmpDir('uefi', async (dir) => {
      const env = { TMPDIR: dir, PATH: process.env.PATH ?? '' };
      const disk = await buildDisk(dir, 'uefi-other-fallback');
      const before = await sha256File(disk.path);
      const ova = join(dir, 'm.ova');
      const exp = join(dir, 'export');
      const raw = join(dir, 'raw');
      await mkdir(exp);
      await mkdir(raw);
      const r = await shellPipeline(
        `${tool('p2v-export')} --disk ${sh(disk.path)} --boot uefi --name uefim -o ${sh(ova)} && ` +
          `${tool('p2v-import')} --staging ${sh(join(dir, 'staging'))} --ganeti-export ${sh(exp)} --raw ${sh(raw)} ${sh(ova)}`,
        env,
      );
      expectPipelineOk(r);
      expect(await sha256File(disk.path)).toBe(before);
      // The report and the log say what was chosen, and that the old fallback loader was replaced.
      expect(r.stderr).toContain('boots with UEFI (--boot uefi): the nodes need the ovmf package');
      expect(r.stderr).toMatch(
        /replaced \/EFI\/BOOT\/BOOTX64\.EFI, which held another loader \(sha256 [0-9a-f]{16}…\), with \/EFI\/debian\/shimx64\.efi/,
      );

      const drive = `${join(raw, 'uefim-disk0.raw')}@@${disk.espOffset}`;
      const read = (p: string) => mt(['mcopy', '-n', '-i', drive, `::${p}`, '-']);
      expect((await read('/EFI/BOOT/BOOTX64.EFI')).equals(SHIM)).toBe(true);
      expect((await read('/EFI/BOOT/grubx64.efi')).equals(GRUB)).toBe(true);
      expect((await read('/EFI/BOOT/mmx64.efi')).equals(MM)).toBe(true);
      expect(String(await read('/EFI/BOOT/grub.cfg'))).toBe(String(await read('/EFI/debian/grub.cfg')));
      // The vendor directory stays as it was.
      expect((await read('/EFI/debian/shimx64.efi')).equals(SHIM)).toBe(true);

      const ovf = String((await execa('tar', ['-xOf', ova, 'uefim.ovf'])).stdout);
      expect(ovf).toContain('<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>');
      const lint = await execa(
        'xmllint',
        [
          '--noout',
          '--nonet',
          '--schema',
          join(import.meta.dirname, '../../../shared/reference/ovf-schemas/xo-ova-schema/dsp8023_1.1.1.xsd'),
          '-',
        ],
        { input: ovf, reject: false },
      );
      // The schema takes the vmw:Config after the Items (its only complaint is gnt:GanetiSection, a known one).
      expect(String(lint.stderr)).not.toMatch(/vmware|Config/);
      expect(String(lint.stderr)).toMatch(/GanetiSection/);

      const ini = await readFile(join(exp, 'uefim', 'config.ini'), 'utf8');
      expect(ini).toContain(`\n[hypervisor]\nkvm_extra = ${DEFAULT_UEFI_KVM_EXTRA}\n`);
      expect(r.stderr).toContain("this instance's kvm_extra replaces the cluster's");
    });
  });

  it('--boot auto on a UEFI-only guest picks UEFI and says why; --uefi-kvm-extra replaces the value', async () => {
    await withTmpDir('uefi', async (dir) => {
      const env = { TMPDIR: dir, PATH: process.env.PATH ?? '' };
      const disk = await buildDisk(dir, 'systemd-boot');
      const exp = join(dir, 'export');
      await mkdir(exp);
      const r = await shellPipeline(
        `${tool('p2v-export')} --disk ${sh(disk.path)} --name sdb --ovf | ` +
          `${tool('p2v-import')} --staging ${sh(join(dir, 'staging'))} --ganeti-export ${sh(exp)} --uefi-kvm-extra ${sh('-bios /usr/share/ovmf/OVMF.fd -accel tcg')}`,
        env,
      );
      expectPipelineOk(r);
      expect(r.stderr).toContain(
        'boots with UEFI (--boot auto): the guest boots only with UEFI; the instance boots with OVMF, so the nodes need the ovmf package',
      );
      expect(r.stderr).toContain(
        'uefi-fallback: ESP: copied /EFI/systemd/systemd-bootx64.efi -> /EFI/BOOT/BOOTX64.EFI',
      );
      const ini = await readFile(join(exp, 'sdb', 'config.ini'), 'utf8');
      expect(ini).toContain('\n[hypervisor]\nkvm_extra = -bios /usr/share/ovmf/OVMF.fd -accel tcg\n');
    });
  });

  it('refuses --boot uefi without an ESP and --boot bios without GRUB for BIOS, before anything is sent', async () => {
    await withTmpDir('uefi', async (dir) => {
      const env = { TMPDIR: dir, PATH: process.env.PATH ?? '' };
      const bios = await buildDisk(dir, 'bios');
      const uefi = await buildDisk(dir, 'uefi');
      const sums = [await sha256File(bios.path), await sha256File(uefi.path)];
      const run = (disk: string, boot: string) =>
        execa('bash', ['-c', `${tool('p2v-export')} --disk ${sh(disk)} --boot ${boot} -o ${sh(join(dir, 'x.ova'))}`], {
          env,
          reject: false,
        });
      const a = await run(bios.path, 'uefi');
      expect(a.exitCode).toBe(3);
      expect(String(a.stderr)).toContain(
        'p2v-export: --boot uefi: the guest has no EFI system partition (a FAT partition of type EFI System), so it cannot boot with UEFI\n' +
          'p2v-export: hint: it boots with BIOS: export with --boot bios or --boot auto',
      );
      const b = await run(uefi.path, 'bios');
      expect(b.exitCode).toBe(3);
      expect(String(b.stderr)).toContain(
        'p2v-export: --boot bios: the guest has no GRUB for BIOS (grub-pc-bin: /usr/lib/grub/i386-pc, grub-mkimage, grub-bios-setup), so it cannot be made to boot with BIOS\n' +
          'p2v-export: hint: install grub-pc-bin on the source machine (it sits beside grub-efi and changes nothing until used), or export with --boot uefi',
      );
      const c = await execa(
        'bash',
        [
          '-c',
          `${tool('p2v-export')} --disk ${sh(uefi.path)} --boot uefi --hypervisor xen-hvm -o ${sh(join(dir, 'x.ova'))}`,
        ],
        { env, reject: false },
      );
      expect(c.exitCode).toBe(3);
      expect(String(c.stderr)).toContain(
        'p2v-export: --boot uefi: Ganeti 3.0 boots UEFI guests only on kvm (OVMF through kvm_extra), not on xen-hvm',
      );
      await expect(import('node:fs/promises').then((m) => m.access(join(dir, 'x.ova')))).rejects.toThrow();
      expect([await sha256File(bios.path), await sha256File(uefi.path)]).toEqual(sums);
    });
  });
});
