/**
 * formatInspection: the human text of `p2v-export --inspect` (the JSON form is
 * JSON.stringify of the same Inspection). Pure function.
 */
import { formatBytes } from '../lib/units.js';
import type { InspectedBoot, InspectedDisk, Inspection } from '../guest/types.js';
import { printable } from '../lib/text.js';

const bytes = (n: number): string => formatBytes(n, { style: 'compact' });

function fs(x: { fsType?: string; fsUuid?: string; fsLabel?: string; mountpoint?: string }): string {
  const parts = [x.fsType ?? 'no filesystem'];
  if (x.fsLabel) parts.push(`label "${x.fsLabel}"`);
  if (x.fsUuid) parts.push(`UUID ${x.fsUuid}`);
  if (x.mountpoint) parts.push(`mounted on ${x.mountpoint}`);
  return parts.join(', ');
}

function disk(d: InspectedDisk): string[] {
  const head = `disk ${d.index}: ${d.source} (${d.sourceName}), ${bytes(d.size)}, ${d.partitionTable === 'none' ? 'no partition table' : `${d.partitionTable === 'dos' ? 'MBR' : 'GPT'} partition table`}${d.diskId ? ` ${d.diskId}` : ''}`;
  const lines = [head];
  if (d.minimumSize !== undefined)
    lines.push(`  smallest size it fits (--target-size auto): ${formatBytes(d.minimumSize)}`);
  if (d.wholeDiskFs) lines.push(`  whole disk: ${fs(d.wholeDiskFs)}`);
  for (const p of d.partitions) {
    const flags = p.bootable ? ' (bootable)' : '';
    lines.push(
      `  ${String(p.number).padStart(2)}  ${bytes(p.start).padStart(9)} +${bytes(p.size).padEnd(9)} type ${p.type}${flags}: ${fs(p)}`,
    );
  }
  if (!d.wholeDiskFs && d.partitions.length === 0) lines.push('  (empty)');
  return lines;
}

const FIRMWARE_WORDS: Record<InspectedBoot['firmware'], string> = {
  uefi: 'UEFI only',
  bios: 'BIOS',
  both: 'UEFI and BIOS',
  unknown: 'no boot path found',
};

/** How the guest boots; ESP names come from the guest, so they are escaped. */
function bootLines(b: InspectedBoot): string[] {
  const out = [`firmware:         ${FIRMWARE_WORDS[b.firmware]}`];
  if (b.esp)
    out.push(
      `ESP:              disk ${b.esp.disk} partition ${b.esp.partition}; loaders ${b.efiLoaders.map(printable).join(', ') || 'none'}; fallback ${b.fallbackLoader ? printable(b.fallbackLoader) : 'none'}`,
    );
  if (b.efiBootloader)
    out.push(
      `EFI loader:       ${b.efiBootloader.kind} ${printable(b.efiBootloader.loader)}${b.efiBootloader.companions.length ? ` (with ${b.efiBootloader.companions.map(printable).join(', ')})` : ''}`,
    );
  const bb = b.biosBoot;
  out.push(
    `BIOS boot:        ${bb ? `${bb.kind === 'mbr-gap' ? 'MBR gap' : `BIOS boot partition ${bb.partition}`} of ${bytes(bb.size)}, ${bb.installed ? 'boot code installed' : 'no boot code'}` : 'no place for a BIOS loader'}; GRUB for BIOS in the guest: ${b.grubPc ? 'yes' : 'no'}`,
  );
  return out;
}

export function formatInspection(i: Inspection): string {
  const out: string[] = [];
  for (const d of i.disks) out.push(...disk(d));
  for (const g of i.volumeGroups ?? []) {
    out.push(
      `volume group ${g.name}: ${g.pvs.map((p) => `disk ${p.disk} partition ${p.partition}`).join(', ')}, extents of ${bytes(g.extentSize)}${g.asIs ? `; copied untouched (${g.asIs})` : ''}`,
    );
    for (const v of g.volumes)
      out.push(`  ${v.name.padEnd(12)} ${bytes(v.size).padStart(9)} in ${v.ranges.length} range(s): ${fs(v)}`);
  }
  out.push('');
  const o = i.os;
  if (!o) out.push('operating system: none found (data disks only)');
  else {
    out.push(
      `operating system: ${o.prettyName} (${o.distro} ${o.version}${o.distroLike.length ? `, like ${o.distroLike.join(' ')}` : ''}), ${o.arch}`,
    );
    out.push(
      `root:             ${o.root.volume ? `LV ${o.root.volume}` : `disk ${o.root.disk} ${o.root.partition ? `partition ${o.root.partition}` : 'whole disk'}`}`,
    );
    if (o.hostname) out.push(`hostname:         ${o.hostname}`);
    out.push(
      `kernels:          ${o.kernels.length ? o.kernels.map((k) => `${k.version}${k.initrd ? '' : ' (no initrd)'}${k.hasModules ? '' : ' (no modules)'}`).join(', ') : 'none'}`,
    );
    out.push(`initramfs:        ${o.initramfsTool}`);
    out.push(
      `bootloader:       ${o.bootloader}${o.grubConfigs.length ? ` (${o.grubConfigs.join(', ')})` : ''}${o.blsEntries ? ', BLS entries' : ''}`,
    );
    out.push(`init system:      ${o.initSystem}`);
    out.push(`network config:   ${o.networkConfig.length ? o.networkConfig.join(', ') : 'none found'}`);
    if (i.boot) out.push(...bootLines(i.boot));
  }
  const m = i.machine;
  out.push(
    `machine:          ${m.cpus} vCPU, ${m.memoryMiB} MiB, NICs ${m.nics.length ? m.nics.map((n) => `${n.name} ${n.mac}`).join(', ') : 'none'}`,
  );
  if (i.warnings.length) {
    out.push('');
    for (const w of i.warnings) out.push(`warning: ${w}`);
  }
  return out.join('\n') + '\n';
}
