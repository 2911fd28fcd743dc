/**
 * A UEFI machine, end to end (issue 19): the Debian bookworm guest of
 * test/helpers/uefi-guest.ts (GPT, an ESP holding only \EFI\debian\grubx64.efi,
 * ext4 root, grub-efi-amd64 + grub-pc-bin, hostname uefiphys) is
 *
 *   (a) booted in its physical form under a fresh OVMF (IDE disk, TCG): a
 *       copy whose ESP has a startup.nsh standing in for the NVRAM boot entry
 *       an installed machine has; it must reach "uefiphys login:" with its
 *       ESP mounted from fstab;
 *   (b) exported through a read-only loop device with
 *         p2v-export --disk /dev/loopN --boot uefi --hypervisor kvm --hostname uefinew --ovf
 *           | p2v-import --ganeti-export DIR
 *       and the imported disk booted as Ganeti's kvm hypervisor starts it
 *       (virtio disk, virtio NIC with a new MAC, the `kvm_extra` that
 *       config.ini's [hypervisor] section asks for, no NVRAM entry, no
 *       startup.nsh): OVMF must start the disk's own removable-media path
 *       (\EFI\BOOT\BOOTX64.EFI), never its UEFI shell, to "uefinew login:";
 *       then imported into the Ganeti sandbox (kvm hypervisor) with
 *       `gnt-backup import`, the cluster's `-accel tcg` merged into the
 *       instance's kvm_extra with -H as docs/admin-guide.md section 7 says,
 *       and started by Ganeti to the same login through the same path;
 *   (c) exported the same way with --boot bios: refused, since GRUB for BIOS
 *       has nowhere to go on a GPT disk without a BIOS boot partition (the
 *       exporter does not repartition); then from a copy with the 1 MiB BIOS
 *       boot partition an admin adds, and booted under SeaBIOS (no OVMF) to
 *       "biosnew login:".
 *
 * The three run side by side (describe.concurrent) to spend the TCG minutes
 * once. The export source is never written (its sha256 is checked).
 */
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv } from '../helpers/cli.js';
import { backupImportArgv, EXPORT_DIR, leaseSandbox, SERIAL_WAIT_SCRIPT, serialSocket } from '../helpers/ganeti.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { BAD_BOOT, bootToLogin, ovmfBootLines, plainConsole } from '../helpers/qemu-boot.js';
import {
  buildUefiMachine,
  espFiles,
  PHYS_HOSTNAME,
  withBiosBootPartition,
  withFirmwareEntryStandIn,
  type UefiMachine,
} from '../helpers/uefi-guest.js';
import { ESP_TYPE } from '../helpers/debian-image.js';
import {
  expectNoLeftovers,
  expectPipelineOk,
  sh,
  sha256File,
  shellPipeline,
  tool,
  type PipelineResult,
} from './support.js';

const UEFI_NEW = 'uefinew';
const BIOS_NEW = 'biosnew';

let work = '';
let machine: UefiMachine;
let sourceSha = '';

type Ini = Record<string, Record<string, string>>;

/** config.ini as Ganeti's ConfigParser reads it: [sections], `key = value` (or `key: value`), keys lower-cased, %% → %. */
function parseIni(text: string): Ini {
  const out: Ini = {};
  let section: Record<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = out[head[1]!] ??= {};
      continue;
    }
    const at = line.search(/[=:]/);
    if (!section || at <= 0) throw new Error(`config.ini: line outside a section or without a value: ${raw}`);
    section[line.slice(0, at).trim().toLowerCase()] = line
      .slice(at + 1)
      .trim()
      .replace(/%%/g, '%');
  }
  return out;
}

/** The ESP's byte offset in a disk image, from its partition table. */
async function espOffset(disk: string): Promise<number> {
  const table = JSON.parse(String((await execa('sfdisk', ['--json', disk])).stdout)).partitiontable as {
    partitions: { start: number; type: string }[];
  };
  const esp = table.partitions.find((p) => p.type.toUpperCase() === ESP_TYPE);
  if (!esp) throw new Error(`${disk}: no EFI System Partition in ${JSON.stringify(table)}`);
  return esp.start * 512;
}

/**
 * `p2v-export --disk /dev/loopN --boot BOOT --hypervisor kvm --hostname NAME --ovf | p2v-import --ganeti-export DIR`
 * with `source` on a read-only loop device (the live system sees loopN, the
 * guest sda). Whatever the outcome: nothing of the export is left in its
 * TMPDIR, and the source is unchanged.
 */
async function exportForKvm(source: string, boot: 'uefi' | 'bios', name: string): Promise<PipelineResult> {
  const tmp = join(work, `tmp-${name}-${boot}`);
  await mkdir(tmp, { recursive: true });
  const before = source === machine.path ? sourceSha : await sha256File(source);
  const loop = String((await execa('losetup', ['--find', '--show', '--read-only', source])).stdout).trim();
  let r: PipelineResult;
  try {
    r = await shellPipeline(
      `${tool('p2v-export')} ${sh('--disk', loop, '--boot', boot, '--hypervisor', 'kvm', '--hostname', name, '--ovf', '--progress', 'none')}` +
        ` | ${tool('p2v-import')} ${sh('--staging', join(work, `staging-${name}`), '--ganeti-export', join(work, 'export'), '--progress', 'none')}`,
      { TMPDIR: tmp },
    );
  } finally {
    await execa('losetup', ['-d', loop], { reject: false });
  }
  process.stderr.write(`uefi-boot: export --boot ${boot} (${name}) took ${r.seconds.toFixed(1)} s\n${r.stderr}`);
  await expectNoLeftovers(tmp);
  expect(await sha256File(source)).toBe(before);
  return r;
}

/** The export dir p2v-import wrote for NAME: its config.ini and the path of disk 0's dump. */
async function imported(name: string): Promise<{ raw: string; ini: Ini }> {
  const dir = join(work, 'export', name);
  const ini = parseIni(await readFile(join(dir, 'config.ini'), 'utf8'));
  const dump = ini.instance?.disk0_dump;
  expect(dump, `config.ini [instance] disk0_dump: ${JSON.stringify(ini)}`).toBeTruthy();
  return { raw: join(dir, dump!), ini };
}

beforeAll(async () => {
  needRoot();
  await needPrograms(
    'qemu-system-x86_64',
    'python3',
    'nbdkit',
    'nbdfuse',
    'losetup',
    'debootstrap',
    'sfdisk',
    'mkfs.fat',
    'mdir',
    'mcopy',
    'grub-mkimage',
  );
  work = await mkdtemp('/var/tmp/p2v-e2e-uefi-boot-');
  const t0 = performance.now();
  machine = await buildUefiMachine(work);
  process.stderr.write(`uefi-boot: UEFI machine ready in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  sourceSha = await sha256File(machine.path);
}, 1_800_000);

afterAll(async () => {
  if (work && process.env.P2V_KEEP_TMP !== '1') await rm(work, { recursive: true, force: true });
}, 120_000);

/**
 * gnt-backup import of the --boot uefi export into the sandbox (kvm), the
 * instance started by Ganeti, its serial console read to the login prompt.
 */
async function ganetiUefiBoot(exportDir: string, kvmExtra: string): Promise<void> {
  // Ganeti reads dumps only under its exports directory.
  const ganetiDir = join(EXPORT_DIR, UEFI_NEW);
  const lease = await leaseSandbox({ hypervisors: 'kvm,fake' });
  try {
    await rm(ganetiDir, { recursive: true, force: true });
    await mkdir(EXPORT_DIR, { recursive: true });
    await execa('cp', ['-a', '--sparse=always', exportDir, ganetiDir]);
    await lease.gnt([...cliArgv('p2v-ganeti-os'), 'install']);
    const merged = `-accel tcg ${kvmExtra}`.replace(/,/g, '\\,');
    const t0 = performance.now();
    const out = await lease.gnt(
      backupImportArgv(ganetiDir, UEFI_NEW, ['-B', 'memory=1024M,vcpus=1', '-H', `kvm:kvm_extra=${merged}`]),
    );
    expect(out).not.toMatch(/WARNING/);
    const info = await lease.gnt(['gnt-instance', 'info', UEFI_NEW]);
    expect(info).toContain(`-accel tcg ${kvmExtra}`);
    await lease.gnt(['gnt-instance', 'start', UEFI_NEW]);
    const log = join(work, 'ganeti-uefinew.log');
    const r = await execa(
      'python3',
      [
        SERIAL_WAIT_SCRIPT,
        serialSocket(UEFI_NEW),
        log,
        '600',
        String.raw`${UEFI_NEW} login:|emergency mode|Timed out waiting for device|Kernel panic|Shell> `,
      ],
      { reject: false, all: true },
    );
    const consoleText = plainConsole(await readFile(log, 'utf8').catch(() => ''));
    expect(String(r.all), `Ganeti console:\n${consoleText.slice(-4000)}`).toMatch(/^MATCH/);
    expect(consoleText).toContain(`${UEFI_NEW} login:`);
    process.stderr.write(
      `uefi-boot: Ganeti kvm instance at its login prompt ${((performance.now() - t0) / 1000).toFixed(0)} s after gnt-backup import began\n`,
    );
    const started = ovmfBootLines(consoleText).filter((l) => /BdsDxe: starting Boot\d+/.test(l));
    expect(started, consoleText.slice(0, 4000)).toHaveLength(1);
    expect(started[0]).toMatch(/"UEFI Misc Device[^"]*"/);
    expect(consoleText).not.toMatch(BAD_BOOT);
  } finally {
    const removed = await lease.exec(['gnt-instance', 'remove', '-f', '--shutdown-timeout=0', UEFI_NEW]);
    if (removed.exitCode !== 0 && !/not known|does not exist/i.test(removed.all))
      process.stderr.write(`gnt-instance remove ${UEFI_NEW}: ${removed.all}\n`);
    await lease.release();
    await rm(ganetiDir, { recursive: true, force: true });
  }
}

describe.concurrent('a UEFI Debian machine', () => {
  it('(a) in its physical form boots under a fresh OVMF through its boot entry (startup.nsh stand-in) to "uefiphys login:"', async () => {
    // The source is an installed machine: its ESP has the loader only, no fallback path and no startup.nsh.
    expect(await espFiles(machine.path, machine.esp.offset)).toEqual(['/efi/debian/grubx64.efi']);
    const disk = await withFirmwareEntryStandIn(machine, join(work, 'physical.img'));
    const boot = await bootToLogin({
      disk,
      bus: 'ide',
      firmware: 'uefi',
      hostname: PHYS_HOSTNAME,
      mac: null,
      log: join(work, 'physical.log'),
    });
    process.stderr.write(
      `uefi-boot: physical form at its login prompt ${boot.seconds.toFixed(0)} s after qemu start\n`,
    );
    const lines = ovmfBootLines(boot.console);
    // No boot entry and no fallback path on the disk: OVMF's disk option fails, its shell runs startup.nsh.
    expect(lines.join('\n')).toMatch(/BdsDxe: failed to load Boot\d+ "UEFI QEMU HARDDISK[^"]*" .*: Not Found/);
    expect(lines.join('\n')).toMatch(/BdsDxe: starting Boot\d+ "EFI Internal Shell"/);
    expect(boot.console).toContain(`Shell> fs0:${machine.esp.loader}`);
    expect(boot.console).toMatch(/efi: EFI v[\d.]+ by EDK II/);
    expect(boot.console).toMatch(/Mounted .*boot-efi\.mount.* - \/boot\/efi/);
    expect(boot.console).not.toMatch(BAD_BOOT);
  });

  it('(b) exported with --boot uefi, boots as Ganeti kvm starts it (virtio, new MAC, config.ini kvm_extra) through the disk\'s fallback path to "uefinew login:"', async () => {
    expectPipelineOk(await exportForKvm(machine.path, 'uefi', UEFI_NEW));
    const { raw, ini } = await imported(UEFI_NEW);
    const kvmExtra = ini.hypervisor?.kvm_extra;
    expect(kvmExtra, `config.ini [hypervisor] kvm_extra: ${JSON.stringify(ini)}`).toBeTruthy();
    // The conversion added the removable-media path; nothing stands in for an NVRAM entry.
    const files = await espFiles(raw, await espOffset(raw));
    expect(files).toContain('/efi/boot/bootx64.efi');
    expect(files).not.toContain('/startup.nsh');
    const boot = await bootToLogin({
      disk: raw,
      firmware: { kvmExtra: kvmExtra! },
      // Ganeti boots the same dump next: this boot must leave it as imported.
      snapshot: true,
      hostname: UEFI_NEW,
      mac: '52:54:00:aa:bb:19',
      log: join(work, `${UEFI_NEW}.log`),
    });
    process.stderr.write(
      `uefi-boot: --boot uefi export at its login prompt ${boot.seconds.toFixed(0)} s after qemu start (kvm_extra: ${kvmExtra})\n`,
    );
    const lines = ovmfBootLines(boot.console);
    const started = lines.filter((l) => /BdsDxe: starting Boot\d+/.test(l));
    // UEFI firmware ran, and the one option it started is the virtio disk (OVMF's auto-created
    // option for a disk without an entry: it starts \EFI\BOOT\BOOTX64.EFI), not its shell.
    expect(started, `OVMF's boot lines:\n${lines.join('\n')}`).toHaveLength(1);
    expect(started[0]).toMatch(
      /BdsDxe: starting Boot\d+ "UEFI Misc Device[^"]*" from PciRoot\(0x0\)\/Pci\(0x[0-9A-F]+,0x0\)$/i,
    );
    expect(boot.console).not.toMatch(/UEFI Interactive Shell|EFI Internal Shell|startup\.nsh/);
    expect(boot.console).toMatch(/efi: EFI v[\d.]+ by EDK II/);
    expect(boot.console).toMatch(/Mounted .*boot-efi\.mount.* - \/boot\/efi/);
    expect(boot.console).not.toMatch(BAD_BOOT);

    // The same export through real Ganeti: the admin merges the cluster's kvm_extra (the sandbox's
    // -accel tcg) with the import's, escaping the commas Ganeti's -H would split on.
    await ganetiUefiBoot(join(work, 'export', UEFI_NEW), kvmExtra!);
  });

  it('(c) with --boot bios: refused while the GPT disk has no BIOS boot partition; with one added, boots under SeaBIOS (no OVMF) as Ganeti kvm starts it to "biosnew login:"', async () => {
    // As installed for UEFI, GRUB for BIOS has nowhere to keep its core: refused before any byte is sent.
    const refused = await exportForKvm(machine.path, 'bios', BIOS_NEW);
    expect(refused.statuses[0], refused.stderr).not.toBe(0);
    expect(refused.stderr).toMatch(/--boot bios: .*BIOS boot partition/);
    await expect(stat(join(work, 'export', BIOS_NEW))).rejects.toThrow(/ENOENT/);
    // The admin's remedy the refusal names, on a copy: a 1 MiB BIOS boot partition.
    const source = await withBiosBootPartition(machine, join(work, 'bios-source.img'));
    expectPipelineOk(await exportForKvm(source, 'bios', BIOS_NEW));
    const { raw, ini } = await imported(BIOS_NEW);
    const kvmExtra = ini.hypervisor?.kvm_extra;
    // A BIOS export must not ask for UEFI firmware.
    expect(kvmExtra ?? '').not.toMatch(/ovmf|pflash|-bios/i);
    const boot = await bootToLogin({
      disk: raw,
      firmware: kvmExtra ? { kvmExtra } : 'bios',
      hostname: BIOS_NEW,
      mac: '52:54:00:aa:bb:1a',
      log: join(work, `${BIOS_NEW}.log`),
    });
    process.stderr.write(
      `uefi-boot: --boot bios export at its login prompt ${boot.seconds.toFixed(0)} s after qemu start\n`,
    );
    expect(ovmfBootLines(boot.console)).toEqual([]);
    expect(boot.console).not.toMatch(/efi: EFI v/);
    expect(boot.console).not.toMatch(BAD_BOOT);
  });
});
