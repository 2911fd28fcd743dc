/**
 * bios-boot: give a UEFI-only guest a BIOS boot path with its own GRUB
 * (`--boot bios`, or `auto` on a hypervisor without UEFI). What grub-install
 * --target=i386-pc would do, done by hand because grub-install probes
 * partition devices this live system does not have:
 *
 *   1. /boot/grub/i386-pc/p2v-load.cfg: the core's first words —
 *      `search.fs_uuid <the /boot filesystem> root` and the prefix there
 *      (a UUID, not (hd0,gptN): it holds whatever the disk is called);
 *   2. the guest's GRUB BIOS modules copied to /boot/grub/i386-pc (normal.mod
 *      and the rest are loaded from the prefix at boot), in a chroot;
 *   3. core.img made by the guest's grub-mkimage in a chroot, with the
 *      modules for the partition table and /boot's filesystem;
 *   4. boot.img and core.img installed by the guest's grub-bios-setup in a
 *      chroot, against a loop device over the whole exported disk 0 (the
 *      kernel makes no partition devices here, but GRUB reads the table
 *      itself): into the BIOS boot partition (GPT) or the gap after the MBR.
 *
 * /boot/grub/grub.cfg, which the EFI GRUB of Debian-like guests reads too,
 * is what the BIOS GRUB reads: it is kept as it is (serial-console and
 * block-devices edit it like any other). Refusals (no grub-pc files, no
 * room) come from decideBoot, before anything is changed.
 */
import { P2vError } from '../lib/errors.js';
import { GRUB_PC_FILES } from '../guest/inspect/firmware.js';
import { decideBoot } from './boot-mode.js';
import { writeIfChanged } from './guest-files.js';
import type { Change, Fixup, FixupContext, PlannedFixup } from './types.js';

export const BIOS_GRUB_DIR = '/boot/grub/i386-pc';
export const LOAD_CFG = `${BIOS_GRUB_DIR}/p2v-load.cfg`;

/** GRUB's module for each filesystem /boot can be on. */
const FS_MODULE: Record<string, string> = { ext2: 'ext2', ext3: 'ext2', ext4: 'ext2', xfs: 'xfs', btrfs: 'btrfs' };

export const biosBoot: Fixup = {
  name: 'bios-boot',
  description: 'install GRUB for BIOS from the guest’s own grub-pc files (--boot bios)',
  appliesTo: (o) => o.boot !== 'uefi' && o.hypervisor !== 'xen-pvm',

  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'bios-boot', summary: [], changes: [] };
    const decision = decideBoot(ctx.inspection, {
      boot: ctx.options.boot ?? 'auto',
      hypervisor: ctx.options.hypervisor,
    });
    if (decision.action !== 'bios-install') return out;
    const { disks, os, boot } = ctx.inspection;
    // Where /boot is: its own filesystem, or the root's (an LV root is not handled here).
    const bootPart = disks.flatMap((d) => d.partitions).find((p) => p.mountpoint === '/boot');
    const rootPart = disks[os!.root.disk]?.partitions.find((p) => p.number === os!.root.partition);
    const holder = bootPart ?? (os!.root.volume ? undefined : rootPart);
    const fsModule = holder?.fsType ? FS_MODULE[holder.fsType] : undefined;
    if (!holder?.fsUuid || !fsModule)
      throw new P2vError(
        'POLICY',
        `--boot bios: /boot is on ${holder ? `a ${holder.fsType ?? 'unknown'} filesystem` : 'LVM'}, which this conversion does not handle`,
        { hint: 'export with --boot uefi, or install grub-pc on the source yourself' },
      );
    const prefix = bootPart ? '/grub' : '/boot/grub';
    const load = `search.fs_uuid ${holder.fsUuid} root\nset prefix=($root)${prefix}\n`;
    const mkimage = await firstPresent(ctx, GRUB_PC_FILES.mkimage);
    const setup = await firstPresent(ctx, GRUB_PC_FILES.biosSetup);
    const table = disks[0]!.partitionTable === 'gpt' ? 'part_gpt' : 'part_msdos';

    const changes: Change[] = [
      ...writeIfChanged(LOAD_CFG, await ctx.files.read(LOAD_CFG), load),
      {
        kind: 'chroot',
        argv: ['cp', '-a', `${GRUB_PC_FILES.dir}/.`, `${BIOS_GRUB_DIR}/`],
        reason: 'GRUB for BIOS loads its modules from /boot/grub/i386-pc',
      },
      {
        kind: 'chroot',
        argv: [
          mkimage,
          '-O',
          'i386-pc',
          '-d',
          GRUB_PC_FILES.dir,
          '-o',
          `${BIOS_GRUB_DIR}/core.img`,
          '-c',
          LOAD_CFG,
          '-p',
          prefix,
          'biosdisk',
          table,
          fsModule,
          'search_fs_uuid',
        ],
        reason: 'GRUB for BIOS: its core image',
      },
      {
        kind: 'bios-setup',
        disk: 0,
        dir: BIOS_GRUB_DIR,
        setup,
        reason: `GRUB for BIOS: boot code in the MBR, core in the ${boot!.biosBoot!.kind === 'mbr-gap' ? 'gap after it' : `BIOS boot partition ${boot!.biosBoot!.partition}`}`,
      },
    ];
    out.changes = changes;
    out.summary.push(
      `GRUB for BIOS installed from the guest's grub-pc files (core in the ${boot!.biosBoot!.kind === 'mbr-gap' ? 'MBR gap' : 'BIOS boot partition'}, prefix ${holder.fsUuid}${prefix})`,
    );
    return out;
  },
};

async function firstPresent(ctx: FixupContext, paths: string[]): Promise<string> {
  for (const p of paths) if (await ctx.files.exists(p)) return p;
  throw new P2vError('FIXUP', `bios-boot: none of ${paths.join(', ')} is in the guest`, {
    hint: 'install grub-pc-bin on the source, or export with --boot uefi',
  });
}
