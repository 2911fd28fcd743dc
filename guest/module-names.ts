/**
 * Kernel module names as the kernel compares them: the file name without
 * `.ko` (and its .xz/.zst/.gz compression), '-' and '_' the same character
 * ("xen-blkfront" = "xen_blkfront"). One rule for the ramboot initrd builder
 * (modules.dep, softdep, alias targets) and for inspection's reading of a
 * guest initramfs and the fixups' driver check.
 *
 *   moduleName("kernel/fs/ext4/ext4.ko.xz") === "ext4"; moduleName("crc32c-intel") === "crc32c_intel"
 *   isModuleFile("usr/lib/modules/6.1/kernel/…/virtio_blk.ko.zst") === true
 */

const KO = /\.ko(?:\.(?:xz|zst|gz))?$/;

/** Whether a path names a kernel module file (a non-empty name before `.ko`). */
export function isModuleFile(path: string): boolean {
  return /(?:^|\/)[^/]+\.ko(?:\.(?:xz|zst|gz))?$/.test(path);
}

/** Module name of a module file path or of a name as written ("crc32c-intel" → "crc32c_intel"). */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf('/') + 1);
  return base.replace(KO, '').replace(/-/g, '_');
}

/** Names of the module files among `paths` (other paths are ignored). */
export function moduleNamesOf(paths: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const raw of paths) {
    const p = raw.trim();
    if (isModuleFile(p)) out.add(moduleName(p));
  }
  return out;
}
