/**
 * initramfs-drivers: the target's disk and network drivers must be in the
 * initramfs of every installed kernel, or the kernel cannot find its root
 * filesystem ("ALERT! /dev/… does not exist"). Inspection has read each
 * initramfs image (InspectedKernel.initrdContent, guest/initramfs.ts) rather
 * than trust the guest's configuration: a driver counts as present when a
 * module of that name is inside, or when the kernel has it built in
 * (/lib/modules/VER/modules.builtin).
 *
 * When one is missing we rebuild with the guest's own tool, in a chroot,
 * after recording the drivers in the tool's configuration so that the next
 * kernel update keeps them: initramfs-tools (/etc/initramfs-tools/modules,
 * update-initramfs), dracut (/etc/dracut.conf.d, dracut --add-drivers) or
 * RHEL 5's mkinitrd (--with). It cannot be done when the kernel has no such
 * module at all or the guest has no tool: then we stop with a FIXUP error.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { InspectedKernel } from '../guest/types.js';
import { P2vError } from '../lib/errors.js';
import type { GuestFiles } from './guest-files.js';
import { INITRAMFS_TOOL_PATHS } from '../guest/inspect/detect.js';
import { moduleName, moduleNamesOf } from '../guest/module-names.js';
import { appendLines, isComment, lines } from './text.js';
import type { Change, Fixup, FixupContext, HypervisorProfile, PlannedFixup } from './types.js';

export function driversFor(hv: HypervisorProfile): string[] {
  return hv === 'kvm' ? ['virtio_blk', 'virtio_scsi', 'virtio_pci', 'virtio_net'] : ['xen-blkfront', 'xen-netfront'];
}

async function walk(dir: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.isDirectory()) await walk(join(dir, e.name), out);
    else out.push(e.name);
  }
}

/** Modules the kernel has as files (modules.dep, or the tree when depmod never ran). */
async function availableModules(files: GuestFiles, version: string): Promise<Set<string>> {
  const dep = await files.read(`/lib/modules/${version}/modules.dep`);
  if (dep !== null) return moduleNamesOf(lines(dep).map((l) => l.split(':')[0]!));
  const found: string[] = [];
  await walk(await files.hostPath(`/lib/modules/${version}/kernel`), found);
  return moduleNamesOf(found);
}

export const INITRAMFS_TOOLS_MODULES = '/etc/initramfs-tools/modules';
export const DRACUT_CONF = '/etc/dracut.conf.d/90-p2v.conf';

interface KernelGap {
  kernel: InspectedKernel;
  missing: string[];
}

async function missingDrivers(files: GuestFiles, k: InspectedKernel, wanted: string[]): Promise<string[]> {
  const builtin = moduleNamesOf(lines((await files.read(`/lib/modules/${k.version}/modules.builtin`)) ?? ''));
  const content = k.initrdContent;
  if (content && 'error' in content)
    throw new P2vError('FIXUP', `the initramfs ${k.initrd} of kernel ${k.version} cannot be read: ${content.error}`, {
      hint: 'rebuild it in the source system (update-initramfs -u or dracut -f), then retry',
    });
  const inside = new Set(content?.modules ?? []);
  return wanted.filter((w) => {
    const n = moduleName(w);
    return !builtin.has(n) && !inside.has(n);
  });
}

export const initramfsDrivers: Fixup = {
  name: 'initramfs-drivers',
  description: "make sure every kernel's initramfs holds the target's disk and network drivers",
  appliesTo: () => true,
  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'initramfs-drivers', summary: [], changes: [] };
    const os = ctx.inspection.os;
    if (!os) return out;
    const files = ctx.files;
    const wanted = driversFor(ctx.options.hypervisor);
    const gaps: KernelGap[] = [];
    for (const k of os.kernels) {
      if (!k.hasModules) {
        ctx.log.warn(`kernel ${k.version} has no /lib/modules/${k.version}: not checked (it cannot boot anyway)`);
        continue;
      }
      const missing = await missingDrivers(files, k, wanted);
      if (missing.length === 0) continue;
      const available = await availableModules(files, k.version);
      const absent = missing.filter((m) => !available.has(moduleName(m)));
      if (absent.length > 0) {
        throw new P2vError(
          'FIXUP',
          `kernel ${k.version} has no ${absent.join(', ')} driver (not built in, no module in /lib/modules/${k.version})`,
          {
            hint: `install a kernel with ${ctx.options.hypervisor} drivers in the source (Debian: linux-image-amd64, RHEL: kernel-core) or remove kernel ${k.version}, then retry`,
          },
        );
      }
      if (!k.initrd || !k.initrdContent) {
        throw new P2vError(
          'FIXUP',
          `kernel ${k.version} has no initramfs, and ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not built into it`,
          {
            hint: `create an initramfs for ${k.version} in the source system (or remove that kernel), then retry`,
          },
        );
      }
      gaps.push({ kernel: k, missing });
    }
    if (gaps.length === 0) return out;

    const tool = os.initramfsTool;
    const toolPaths = tool === 'unknown' ? [] : INITRAMFS_TOOL_PATHS[tool];
    let toolFound = false;
    for (const p of toolPaths) if (await files.exists(p)) toolFound = true;
    if (!toolFound) {
      throw new P2vError(
        'FIXUP',
        `the initramfs lacks ${gaps[0]!.missing.join(', ')} and the guest has no ${tool === 'unknown' ? 'known initramfs tool' : tool} to rebuild it`,
        {
          hint: `add the drivers to the initramfs in the source system (or install initramfs-tools or dracut there), then retry`,
        },
      );
    }
    const allMissing = [...new Set(gaps.flatMap((g) => g.missing))];
    const changes: Change[] = [];
    if (tool === 'initramfs-tools') {
      const before = await files.read(INITRAMFS_TOOLS_MODULES);
      const listed = new Set(
        lines(before ?? '')
          .filter((l) => !isComment(l))
          .map((l) => l.trim().split(/\s+/)[0]!),
      );
      const add = allMissing.filter((m) => !listed.has(m));
      if (add.length > 0)
        changes.push({
          kind: 'write',
          path: INITRAMFS_TOOLS_MODULES,
          before,
          after: appendLines(before, add),
          mode: 0o644,
        });
    } else if (tool === 'dracut') {
      const before = await files.read(DRACUT_CONF);
      const after = `# Written by ganeti-p2v: drivers of the Ganeti ${ctx.options.hypervisor} instance.\nadd_drivers+=" ${allMissing.join(' ')} "\n`;
      if (before !== after) changes.push({ kind: 'write', path: DRACUT_CONF, before, after, mode: 0o644 });
    }
    for (const g of gaps) {
      const v = g.kernel.version;
      const reason = `initramfs of ${v} lacks ${g.missing.join(', ')}`;
      const argv =
        tool === 'initramfs-tools'
          ? ['update-initramfs', '-u', '-k', v]
          : tool === 'dracut'
            ? ['dracut', '-f', '--no-hostonly', '--add-drivers', g.missing.join(' '), g.kernel.initrd!, v]
            : ['mkinitrd', '-f', ...g.missing.map((m) => `--with=${m}`), g.kernel.initrd!, v];
      changes.push({ kind: 'chroot', argv, reason });
      out.summary.push(`${g.kernel.initrd}: rebuilt with ${g.missing.join(', ')}`);
    }
    out.changes = changes;
    return out;
  },
};
