/**
 * `--boot bios|uefi|auto`: how the instance will boot, decided from the
 * Inspection's boot record (guest/inspect/firmware.ts) and the target
 * hypervisor. Pure: the exporter calls it right after inspection (to refuse
 * early, log the choice and write the descriptor's firmware), and the
 * uefi-fallback and bios-boot fixups call it again to know what to plan.
 *
 *   decideBoot(inspection, { boot, hypervisor }): BootDecision   (throws POLICY on a refusal)
 *
 * Rules (docs/design-uefi.md):
 *   auto  a guest with a BIOS boot path (bios, both) stays as it is and boots with BIOS;
 *         a UEFI-only guest boots with UEFI (OVMF on kvm) through the removable-media path;
 *         nothing found: nothing is changed and no firmware is written.
 *   uefi  needs an ESP with a loader; xen has no UEFI in Ganeti 3.0.
 *   bios  a guest that boots with BIOS already stays; a UEFI-only one is given GRUB's
 *         BIOS core from its own grub-pc files, where there is room for it.
 */
import { P2vError } from '../lib/errors.js';
import { printable } from '../lib/text.js';
import type { Inspection } from '../guest/types.js';
import type { HypervisorProfile } from './types.js';

export type BootChoice = 'bios' | 'uefi' | 'auto';

export interface BootDecision {
  /** What the instance boots with; undefined when nothing is known (no firmware written). */
  firmware?: 'uefi' | 'bios';
  /** What the fixups do for it. */
  action: 'none' | 'uefi-fallback' | 'bios-install';
  /** One line for the log and the report: what was chosen and why. */
  reason: string;
}

/** The least room GRUB's core takes with the modules for a GPT or MBR table and ext2/xfs (measured: 27–40 KiB). */
export const MIN_CORE_ROOM = 31 * 1024;

const refuse = (message: string, hint: string) => new P2vError('POLICY', message, { hint });

function biosInstall(inspection: Inspection, why: string): BootDecision {
  const b = inspection.boot!;
  if (!b.grubPc)
    throw refuse(
      `--boot bios: the guest has no GRUB for BIOS (grub-pc-bin: /usr/lib/grub/i386-pc, grub-mkimage, grub-bios-setup), so it cannot be made to boot with BIOS`,
      'install grub-pc-bin on the source machine (it sits beside grub-efi and changes nothing until used), or export with --boot uefi',
    );
  const d0 = inspection.disks[0];
  if (!b.biosBoot && d0?.partitionTable === 'gpt')
    throw refuse(
      '--boot bios: the boot disk has a GPT table without a BIOS boot partition, so GRUB for BIOS has nowhere to keep its core',
      'add a 1 MiB partition of type BIOS boot (sgdisk -n 0:0:+1M -t 0:ef02) on the source, or export with --boot uefi (p2v-export does not repartition)',
    );
  if (!b.biosBoot)
    throw refuse(
      '--boot bios: the boot disk has no partition table, so there is no place for a BIOS boot loader',
      'export with --boot uefi',
    );
  if (b.biosBoot.size < MIN_CORE_ROOM)
    throw refuse(
      `--boot bios: the ${b.biosBoot.kind === 'mbr-gap' ? 'gap before the first partition' : 'BIOS boot partition'} holds ${b.biosBoot.size} bytes; GRUB's core needs at least ${MIN_CORE_ROOM}`,
      'move the first partition to start at 1 MiB on the source (as every partitioner since 2010 does), or export with --boot uefi',
    );
  if (!inspection.os?.grubConfigs.includes('/boot/grub/grub.cfg'))
    throw refuse(
      '--boot bios: the guest has no /boot/grub/grub.cfg for GRUB to read when it boots with BIOS',
      'run update-grub on the source, or export with --boot uefi',
    );
  return { firmware: 'bios', action: 'bios-install', reason: why };
}

export function decideBoot(
  inspection: Inspection,
  opts: { boot: BootChoice; hypervisor: HypervisorProfile },
): BootDecision {
  const b = inspection.boot;
  const { boot, hypervisor } = opts;
  if (!b || !inspection.os) return { action: 'none', reason: 'no operating system: nothing to boot' };
  // Xen PV boots the guest's kernel through pygrub or PV-GRUB: no firmware is involved.
  if (hypervisor === 'xen-pvm') {
    if (boot === 'uefi')
      throw refuse('--boot uefi does not apply to xen-pvm', 'xen-pvm boots the kernel itself: drop --boot');
    return { action: 'none', reason: 'xen-pvm boots the kernel through pygrub: the firmware does not matter' };
  }
  const esp = b.esp ? `disk ${b.esp.disk} partition ${b.esp.partition}` : '';

  if (boot === 'uefi') {
    if (hypervisor !== 'kvm')
      throw refuse(
        `--boot uefi: Ganeti 3.0 boots UEFI guests only on kvm (OVMF through kvm_extra), not on ${hypervisor}`,
        'export with --hypervisor kvm, or with --boot bios',
      );
    if (!b.esp)
      throw refuse(
        '--boot uefi: the guest has no EFI system partition (a FAT partition of type EFI System), so it cannot boot with UEFI',
        b.firmware === 'bios'
          ? 'it boots with BIOS: export with --boot bios or --boot auto'
          : 'export with --boot bios',
      );
    if (!b.efiBootloader) {
      if (b.fallbackLoader)
        return {
          firmware: 'uefi',
          action: 'none',
          reason: `UEFI (--boot uefi): no grub, shim or systemd-boot found on the ESP; its ${printable(b.fallbackLoader)} is kept as it is`,
        };
      throw refuse(
        `--boot uefi: no loader for the removable-media path on the EFI system partition (${esp}; found: ${b.efiLoaders.map(printable).join(', ') || 'none'})`,
        'install grub-efi-amd64 (or shim-signed, or systemd-boot) on the source and run grub-install, or export with --boot bios',
      );
    }
    return { firmware: 'uefi', action: 'uefi-fallback', reason: 'UEFI (--boot uefi): the nodes need the ovmf package' };
  }

  if (boot === 'bios') {
    if (b.firmware === 'bios' || b.firmware === 'both')
      return { firmware: 'bios', action: 'none', reason: 'BIOS (--boot bios): the guest boots with BIOS already' };
    return biosInstall(inspection, 'BIOS (--boot bios): GRUB for BIOS is installed from the guest’s own grub-pc files');
  }

  // auto
  if (b.firmware === 'bios' || b.firmware === 'both')
    return {
      firmware: 'bios',
      action: 'none',
      reason: `BIOS (--boot auto): the guest has a BIOS boot path${b.firmware === 'both' ? ' (it could boot with UEFI too)' : ''}`,
    };
  if (b.firmware === 'uefi') {
    if (hypervisor !== 'kvm')
      return biosInstall(
        inspection,
        `BIOS (--boot auto): a UEFI-only guest, converted because ${hypervisor} has no UEFI in Ganeti 3.0`,
      );
    const d = decideBoot(inspection, { boot: 'uefi', hypervisor });
    return {
      ...d,
      reason: `UEFI (--boot auto): the guest boots only with UEFI; the instance boots with OVMF, so the nodes need the ovmf package`,
    };
  }
  return { action: 'none', reason: 'no boot loader found (neither an ESP loader nor a BIOS boot path): left as it is' };
}
