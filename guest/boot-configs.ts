/**
 * Where a Linux guest keeps its kernel command lines, and how each file
 * spells one: the `linux` lines of a generated grub.cfg, the `kernel` lines
 * of a grub-legacy menu.lst/grub.conf, extlinux's `APPEND`, the `options`
 * line of each BLS entry, RHEL 8's `kernelopts` in grubenv,
 * /etc/kernel/cmdline for kernel-install, and GRUB_CMDLINE_LINUX(_DEFAULT)
 * in /etc/default/grub. Inspection reads them (root=, resume= for the device
 * map); fixups/boot-args.ts edits them. One list, so both see the same files.
 *
 *   kernelArgSites(files, boot): Promise<KernelArgSite[]>  — every file, in order
 *   kernelCommandLines(files, boot): Promise<KernelCommandLine[]>
 */
import { getShellVar } from './shell-vars.js';

/** What inspection says about the bootloader (a subset of exporter's InspectedOs). */
export interface BootloaderFacts {
  bootloader: string;
  grubConfigs: string[];
  blsEntries: boolean;
}

/** Read access to the guest's files (guest paths, symlinks resolved inside the guest). */
export interface GuestReader {
  read(path: string): Promise<string | null>;
  list(dir: string): Promise<string[]>;
}

export const GRUB_LINUX = /^(\s*(?:linux|linux16|linuxefi)\s+\S+)(.*)$/;
export const LEGACY_KERNEL = /^(\s*kernel\s+\S+)(.*)$/;
export const EXTLINUX_APPEND = /^(\s*append)((?:\s.*)?)$/i;
export const BLS_OPTIONS = /^(\s*options)(\s.*)?$/;
/** Where grub-legacy and extlinux keep their one file (Inspection names only the bootloader). */
export const LEGACY_CONFIGS = ['/boot/grub/menu.lst', '/boot/grub/grub.conf'];
export const EXTLINUX_CONFIGS = ['/boot/extlinux/extlinux.conf', '/boot/syslinux/syslinux.cfg'];
export const BLS_DIR = '/boot/loader/entries';
export const GRUBENV = ['/boot/grub2/grubenv', '/boot/grub/grubenv'];
export const KERNEL_CMDLINE = '/etc/kernel/cmdline';
export const DEFAULT_GRUB = '/etc/default/grub';
export const DEFAULT_GRUB_VARS = ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT'];

/** Boot entry files and the line that holds their kernel arguments, in the order fixups edit them. */
export function bootEntryConfigs(boot: BootloaderFacts): [string, RegExp][] {
  const configs: [string, RegExp][] = boot.grubConfigs.map((c) => [
    c,
    /(menu\.lst|grub\.conf)$/.test(c) ? LEGACY_KERNEL : GRUB_LINUX,
  ]);
  if (boot.bootloader === 'grub-legacy') for (const c of LEGACY_CONFIGS) configs.push([c, LEGACY_KERNEL]);
  if (boot.bootloader === 'extlinux') for (const c of EXTLINUX_CONFIGS) configs.push([c, EXTLINUX_APPEND]);
  return configs;
}

/**
 * One place that may hold kernel arguments, and how it spells them. The file
 * may not exist: readers skip what they cannot read.
 */
export type KernelArgSite =
  /** A boot entry file (grub.cfg, menu.lst, extlinux.conf, a BLS entry): every line `re` matches, group 2. */
  | { kind: 'entry'; file: string; re: RegExp; bls: boolean }
  /** RHEL 8's grubenv block: `kernelopts=`, used by BLS entries that say `$kernelopts`. */
  | { kind: 'grubenv'; file: string }
  /** /etc/kernel/cmdline, kernel-install's arguments for the next kernel. */
  | { kind: 'kernel-cmdline'; file: string }
  /** /etc/default/grub's GRUB_CMDLINE_LINUX(_DEFAULT), for the next grub-mkconfig. */
  | { kind: 'default-grub'; file: string };

/** Every place the guest keeps kernel arguments, in the order fixups edit them. */
export async function kernelArgSites(files: GuestReader, boot: BootloaderFacts): Promise<KernelArgSite[]> {
  const sites: KernelArgSite[] = bootEntryConfigs(boot).map(([file, re]) => ({ kind: 'entry', file, re, bls: false }));
  if (boot.blsEntries) {
    for (const name of await files.list(BLS_DIR))
      if (name.endsWith('.conf')) sites.push({ kind: 'entry', file: `${BLS_DIR}/${name}`, re: BLS_OPTIONS, bls: true });
    for (const env of GRUBENV) sites.push({ kind: 'grubenv', file: env });
    sites.push({ kind: 'kernel-cmdline', file: KERNEL_CMDLINE });
  }
  if (boot.bootloader === 'grub2') sites.push({ kind: 'default-grub', file: DEFAULT_GRUB });
  return sites;
}

export interface KernelCommandLine {
  /** Guest file it comes from. */
  file: string;
  args: string;
}

/** Every kernel command line the guest boots with or will write for its next kernel. */
export async function kernelCommandLines(files: GuestReader, boot: BootloaderFacts): Promise<KernelCommandLine[]> {
  const out: KernelCommandLine[] = [];
  const scan = (file: string, text: string, re: RegExp) => {
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (m) out.push({ file, args: m[2] ?? '' });
    }
  };
  for (const site of await kernelArgSites(files, boot)) {
    const text = await files.read(site.file);
    if (text === null) continue;
    switch (site.kind) {
      case 'entry':
        scan(site.file, text, site.re);
        break;
      case 'grubenv':
        scan(site.file, text.replace(/#+$/, ''), /^(kernelopts=)(.*)$/);
        break;
      case 'kernel-cmdline':
        out.push({ file: site.file, args: text.replace(/\n$/, '') });
        break;
      case 'default-grub':
        for (const v of DEFAULT_GRUB_VARS) {
          const value = getShellVar(text, v);
          if (value !== undefined) out.push({ file: site.file, args: value });
        }
        break;
    }
  }
  return out;
}
