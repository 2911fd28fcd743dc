/**
 * The common interface of fixups. A fixup reads the mounted guest (through
 * FixupContext.files) and the Inspection, and *plans* a list of Changes; the
 * runner prints them (--dry-run shows unified diffs), applies them, and records
 * them in the export log and the OVF annotation. A fixup never detects the
 * guest itself (that is Inspection's job) and never writes outside `root`.
 * Planning on an already fixed guest must return no changes (idempotence).
 */
import type { Inspection } from '../guest/types.js';
import type { Logger } from '../lib/log.js';
import type { GuestFiles } from './guest-files.js';

/** The target hypervisor profile. */
export type HypervisorProfile = 'kvm' | 'xen-pvm' | 'xen-hvm';

export interface FixupOptions {
  hypervisor: HypervisorProfile;
  /** New hostname (short or FQDN). */
  hostname?: string;
  /** Static address "A.B.C.D/N" (IPv4; IPv6 also accepted). */
  ip?: string;
  gateway?: string;
  dns?: string[];
  /** Use DHCP on the primary interface instead of a static address. */
  dhcp?: boolean;
  /** Directory of site hook executables. */
  hooksDir?: string;
  /** --boot: how the instance boots (fixups/boot-mode.ts); auto when absent. */
  boot?: 'bios' | 'uefi' | 'auto';
}

/** What the supervisor hands the runner (planFixups, applyFixups). */
export interface FixupInput {
  /** Host path where the guest's root filesystem (with /boot etc. below it) is mounted. */
  root: string;
  /** Everything known about the guest: fixups read it, never detect for themselves. */
  inspection: Inspection;
  options: FixupOptions;
  log: Logger;
  /**
   * Each exported disk as a host file (the overlay's nbdfuse view), by --disk
   * index: the ESP is read and written there with mtools (guest/esp.ts), and
   * GRUB's BIOS boot code is installed on disk 0 through it.
   */
  diskFiles?: string[];
}

/**
 * What each fixup's plan() gets: the runner's input plus `files`, the one view
 * of the guest for this planning run (guest paths resolved inside `root`,
 * changes planned by earlier fixups already visible).
 */
export interface FixupContext extends FixupInput {
  files: GuestFiles;
}

/** Guest paths are absolute inside the guest ("/etc/fstab"); the runner maps them under `root`. */
export type Change =
  | { kind: 'write'; path: string; before: string | null; after: string; mode?: number }
  | { kind: 'remove'; path: string; before: string }
  | { kind: 'symlink'; path: string; target: string }
  /** A command run in a chroot of the guest (initramfs rebuild). */
  | { kind: 'chroot'; argv: string[]; reason: string }
  /** A command run on the host with the guest root in its environment (site hooks). */
  | { kind: 'hook'; path: string; reason: string }
  /** Copy a file on the EFI system partition (ESP paths; `sha256` of what was planned from). */
  | { kind: 'esp-copy'; from: string; to: string; sha256: string; reason: string }
  /**
   * GRUB's boot.img and core.img (both in the guest directory `dir`) installed
   * on exported disk `disk` with the guest's own grub-bios-setup, in a chroot.
   */
  | { kind: 'bios-setup'; disk: number; dir: string; setup: string; reason: string };

export interface PlannedFixup {
  fixup: string;
  /** One line per change for the log and the OVF annotation. */
  summary: string[];
  changes: Change[];
}

export interface Fixup {
  /** Same word as its file, test and doc: "serial-console", "block-devices", … */
  readonly name: string;
  /** One line for --help and docs. */
  readonly description: string;
  /** Whether it runs for these options (e.g. hostname only with --hostname). */
  appliesTo(options: FixupOptions): boolean;
  plan(ctx: FixupContext): Promise<PlannedFixup>;
}
