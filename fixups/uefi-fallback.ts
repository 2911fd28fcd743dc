/**
 * uefi-fallback: make the guest boot with UEFI without NVRAM boot entries.
 * The instance's OVMF starts with empty variables (no per-instance NVRAM:
 * docs/design-uefi.md), so it boots the removable-media path
 * /EFI/BOOT/BOOTX64.EFI of the ESP. The guest's own loader is copied there
 * with what it needs beside it:
 *
 *   shim          shimx64.efi → BOOTX64.EFI, grubx64.efi and mmx64.efi beside it
 *                 (shim starts grubx64.efi from its own directory). fbx64.efi is
 *                 left out on purpose: with it, shim would run fallback, which
 *                 writes NVRAM entries and resets, on every boot of a machine
 *                 whose NVRAM is thrown away.
 *   grub          grubx64.efi → BOOTX64.EFI
 *   systemd-boot  systemd-bootx64.efi → BOOTX64.EFI (it finds /loader on the ESP by itself)
 *
 * grub.cfg of the loader's directory is copied too: a signed grub looks for
 * its configuration in the directory it was started from, and a
 * grub-install'd image with a fixed prefix still finds /EFI/<vendor>, which
 * stays. An existing BOOTX64.EFI is kept when it is already the same loader
 * (same bytes); otherwise it is replaced, and the plan says so.
 *
 * Runs when decideBoot (boot-mode.ts) says uefi-fallback; reads the ESP with
 * mtools (guest/esp.ts) through ctx.diskFiles, detects nothing.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { P2vError } from '../lib/errors.js';
import { printable } from '../lib/text.js';
import { EspFiles } from '../guest/esp.js';
import { FALLBACK_LOADER } from '../guest/inspect/firmware.js';
import { decideBoot } from './boot-mode.js';
import type { Change, Fixup, FixupContext, FixupInput, PlannedFixup } from './types.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The ESP of the inspected guest as mtools sees it, through the overlay's disk file. */
export function espOf(ctx: Pick<FixupInput, 'inspection' | 'diskFiles'>): EspFiles {
  const esp = ctx.inspection.boot?.esp;
  const file = esp ? ctx.diskFiles?.[esp.disk] : undefined;
  if (!esp || !file)
    throw new P2vError('FIXUP', 'uefi-fallback: the EFI system partition is not reachable', {
      hint: 'this is a bug: the supervisor must pass the exported disks as files',
    });
  return new EspFiles(file, esp.offset, esp.size);
}

export const uefiFallback: Fixup = {
  name: 'uefi-fallback',
  description: 'copy the guest’s EFI loader to the removable-media path /EFI/BOOT/BOOTX64.EFI',
  appliesTo: (o) => o.boot !== 'bios' && o.hypervisor === 'kvm',

  async plan(ctx: FixupContext): Promise<PlannedFixup> {
    const out: PlannedFixup = { fixup: 'uefi-fallback', summary: [], changes: [] };
    const decision = decideBoot(ctx.inspection, {
      boot: ctx.options.boot ?? 'auto',
      hypervisor: ctx.options.hypervisor,
    });
    const loader = ctx.inspection.boot?.efiBootloader;
    if (decision.action !== 'uefi-fallback' || !loader) return out;
    const esp = espOf(ctx);
    const dest = posix.dirname(FALLBACK_LOADER);
    const copies: [string, string][] = [
      [loader.loader, FALLBACK_LOADER],
      ...loader.companions.map((c): [string, string] => [c, `${dest}/${posix.basename(c)}`]),
    ];
    const changes: Change[] = [];
    for (const [from, to] of copies) {
      const data = await esp.read(from);
      if (data === null)
        throw new P2vError('FIXUP', `uefi-fallback: ${printable(from)} is gone from the EFI system partition`, {
          hint: 'nothing else may write to the guest during the export: run it again',
        });
      const existing = await esp.read(to);
      if (existing !== null && existing.equals(data)) continue;
      const shown = `${printable(from)} -> ${printable(to)}`;
      if (existing !== null && to === FALLBACK_LOADER)
        out.summary.push(
          `replaced ${to}, which held another loader (sha256 ${sha256(existing).slice(0, 16)}…), with ${printable(from)}`,
        );
      else
        out.summary.push(existing !== null ? `replaced ${printable(to)} with ${printable(from)}` : `copied ${shown}`);
      changes.push({
        kind: 'esp-copy',
        from,
        to,
        sha256: sha256(data),
        reason: `${loader.kind} on the removable-media path`,
      });
    }
    out.changes = changes;
    return out;
  },
};
