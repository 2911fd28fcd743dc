/**
 * config.ini of a Ganeti export directory, as `gnt-backup import` of Ganeti
 * 3.0 reads it (Python ConfigParser with interpolation). Pure: machine in,
 * text out.
 *
 * Every value that came from the stream is checked against what Ganeti
 * accepts for that key, so a hostile descriptor cannot add keys (newlines),
 * break parsing ('%', written '%%') or smuggle hypervisor parameters:
 * gnt:Hypervisor/Parameters and OS parameters are deliberately NOT carried
 * (kvm_extra and friends would let an image choose the host's qemu command
 * line); the operator sets those with gnt-backup import -H/-O.
 *
 * The one hypervisor parameter written here is ours, not the stream's: a
 * machine whose descriptor says firmware "efi" (a fact about the guest) gets
 * `[hypervisor] kvm_extra` = the fixed OVMF value below, or the admin's
 * `p2v-import --uefi-kvm-extra` (docs/design-uefi.md).
 */
import { P2vError } from '../lib/errors.js';
import type { MachineDescription } from '../ovf/types.js';
import { toMiBRoundedUp } from './size.js';
import type { NicDefaults } from './types.js';

export interface ConfigIniInput {
  machine: MachineDescription;
  instanceName: string;
  /** Capacity of each disk in bytes, in Ganeti disk order. */
  diskSizes: number[];
  /** File name of each dump, relative to the export dir. */
  diskDumps: string[];
  /** OS when the descriptor's Ganeti section names none. */
  defaultOs: string;
  /** Hypervisor when the descriptor's Ganeti section names none. */
  defaultHypervisor: string;
  nic: NicDefaults;
  /** kvm_extra for a UEFI machine (the admin's --uefi-kvm-extra); DEFAULT_UEFI_KVM_EXTRA when absent. */
  uefiKvmExtra?: string;
}

/**
 * How Ganeti 3.0's kvm hypervisor (which has no firmware parameter) boots a
 * UEFI guest: OVMF's 4 MiB code image read-only and its empty variable store
 * with snapshot=on, as two pflash drives. No per-instance file: the guest
 * boots through the removable-media path and loses nothing when the
 * variables are thrown away at power-off. The 4 MiB pair is what Debian 12
 * and 13 and Ubuntu 22.04+ all ship (Debian 13 dropped the 2 MiB
 * OVMF_CODE.fd/OVMF_VARS.fd). Hypervisor parameters are split on single
 * spaces by Ganeti, so no argument may hold one.
 */
export const DEFAULT_UEFI_KVM_EXTRA =
  '-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd ' +
  '-drive if=pflash,format=raw,unit=1,snapshot=on,file=/usr/share/OVMF/OVMF_VARS_4M.fd';

/** The [hypervisor] entries the firmware asks for, and what to tell the admin about them. */
export function firmwareParams(
  firmware: MachineDescription['firmware'],
  hypervisor: string,
  uefiKvmExtra: string | undefined,
): { params: Record<string, string>; notes: string[] } {
  if (firmware !== 'efi') return { params: {}, notes: [] };
  if (hypervisor === 'kvm') {
    const value = uefiKvmExtra ?? DEFAULT_UEFI_KVM_EXTRA;
    return {
      params: { kvm_extra: value },
      notes: [
        `the machine boots with UEFI: config.ini sets kvm_extra = ${value} (the nodes need the ovmf package)`,
        "this instance's kvm_extra replaces the cluster's: if the cluster sets one (e.g. -accel tcg), merge it with --uefi-kvm-extra or gnt-backup import -H kvm:kvm_extra=… (with each comma written \\, since -H splits on commas)",
      ],
    };
  }
  if (hypervisor === 'fake')
    return {
      params: {},
      notes: ['the machine boots with UEFI; the fake hypervisor boots nothing, so no OVMF parameter is written'],
    };
  throw new P2vError(
    'POLICY',
    `the machine boots with UEFI, which Ganeti 3.0 offers only on kvm, not on ${hypervisor}`,
    {
      hint: 'import it with --hypervisor kvm, or export it again with p2v-export --boot bios (converts it to BIOS boot where it can)',
    },
  );
}

/** --uefi-kvm-extra: one line of qemu arguments separated by single spaces (Ganeti splits on them). */
export function checkUefiKvmExtra(v: string): string {
  if (v.trim() === '' || /[\r\n\0]/.test(v) || /\s\s|^\s|\s$|\t/.test(v))
    throw new P2vError('USAGE', `invalid --uefi-kvm-extra "${v.slice(0, 64)}"`, {
      hint: 'give qemu arguments separated by single spaces, e.g. "-bios /usr/share/ovmf/OVMF.fd"',
    });
  return v;
}

const OS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\+[A-Za-z0-9_.-]+)?$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const LINK = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const NIC_MODES = new Set(['bridged', 'routed', 'openvswitch']);
const HYPERVISORS = new Set(['kvm', 'xen-pvm', 'xen-hvm', 'fake', 'lxc', 'chroot']);

/** ConfigParser value: one line, '%' doubled. */
export function iniValue(v: string | number): string {
  const s = String(v);
  if (/[\r\n\0]/.test(s)) throw new P2vError('BAD_OVF', 'a value for config.ini contains a line break', {});
  return s.replace(/%/g, '%%');
}

function checked(what: string, value: string, ok: (v: string) => boolean, hint: string): string {
  if (!ok(value))
    throw new P2vError('BAD_OVF', `the OVF descriptor has an invalid ${what} "${value.slice(0, 64)}"`, { hint });
  return value;
}

export function buildConfigIni(input: ConfigIniInput): string {
  const { machine, nic } = input;
  const gnt = machine.ganeti;
  const os = checked(
    'Ganeti OS name',
    gnt?.os ?? input.defaultOs,
    (v) => OS_NAME.test(v),
    'fix gnt:OperatingSystem/gnt:Name or import without it',
  );
  const hypervisor = checked(
    'hypervisor',
    gnt?.hypervisor ?? input.defaultHypervisor,
    (v) => HYPERVISORS.has(v),
    `use one of ${[...HYPERVISORS].join(', ')}`,
  );
  if (!Number.isSafeInteger(machine.memoryMiB) || machine.memoryMiB <= 0)
    throw new P2vError('BAD_OVF', `the OVF descriptor has an invalid memory size ${machine.memoryMiB} MiB`);
  if (!Number.isSafeInteger(machine.cpus) || machine.cpus <= 0)
    throw new P2vError('BAD_OVF', `the OVF descriptor has an invalid CPU count ${machine.cpus}`);

  const lines: string[] = ['[export]', 'version = 0', `os = ${iniValue(os)}`, '', '[instance]'];
  lines.push(`name = ${iniValue(input.instanceName)}`, `hypervisor = ${iniValue(hypervisor)}`);
  lines.push(`disk_count = ${input.diskSizes.length}`);
  input.diskSizes.forEach((bytes, i) => {
    lines.push(`disk${i}_size = ${toMiBRoundedUp(bytes)}`, `disk${i}_dump = ${iniValue(input.diskDumps[i]!)}`);
  });
  lines.push(`nic_count = ${machine.nics.length}`);
  machine.nics.forEach((n, i) => {
    const g = gnt?.nics?.[i];
    const mode = checked(
      'NIC mode',
      g?.mode ?? nic.mode,
      (v) => NIC_MODES.has(v),
      `use one of ${[...NIC_MODES].join(', ')}`,
    );
    const link = checked('NIC link', g?.link ?? nic.link, (v) => LINK.test(v), 'a bridge or interface name');
    // Ganeti reads NICs only while nicN_mac is present (a NIC without one is
    // dropped, with every NIC after it); "generate" asks it for a new MAC.
    const mac =
      n.mac === undefined
        ? 'generate'
        : checked('MAC address', n.mac.toLowerCase(), (v) => MAC.test(v), 'aa:00:00:xx:xx:xx');
    lines.push(`nic${i}_mac = ${mac}`);
    lines.push(`nic${i}_mode = ${iniValue(mode)}`, `nic${i}_link = ${iniValue(link)}`);
  });
  lines.push('', '[backend]', `memory = ${machine.memoryMiB}`, `vcpus = ${machine.cpus}`);
  if (gnt?.autoBalance !== undefined) lines.push(`auto_balance = ${gnt.autoBalance ? 'True' : 'False'}`);
  const { params } = firmwareParams(machine.firmware, hypervisor, input.uefiKvmExtra);
  if (Object.keys(params).length) {
    lines.push('', '[hypervisor]');
    for (const [k, v] of Object.entries(params)) lines.push(`${k} = ${iniValue(v)}`);
  }
  return lines.join('\n') + '\n';
}

/** The operator's defaults (--os, --hypervisor, --nic-mode, --nic-link), checked before anything is read. */
export function checkGanetiDefaults(d: { os: string; hypervisor: string; nic: NicDefaults }): void {
  const usage = (what: string, v: string, hint: string) => new P2vError('USAGE', `invalid ${what} "${v}"`, { hint });
  if (!OS_NAME.test(d.os)) throw usage('--os', d.os, 'give a Ganeti OS as NAME+VARIANT, e.g. p2v-image+default');
  if (!HYPERVISORS.has(d.hypervisor))
    throw usage('--hypervisor', d.hypervisor, `use one of ${[...HYPERVISORS].join(', ')}`);
  if (!NIC_MODES.has(d.nic.mode)) throw usage('--nic-mode', d.nic.mode, `use one of ${[...NIC_MODES].join(', ')}`);
  if (!LINK.test(d.nic.link)) throw usage('--nic-link', d.nic.link, 'give a bridge or interface name, e.g. gntbr0');
}
