/**
 * The firmware as a fact in the descriptor: written as VMware's vmw:Config,
 * read back, and read from VMware's and VirtualBox's own spellings; the
 * importer maps `efi` to its own kvm_extra and never takes one from the stream.
 */
import { describe, expect, it } from 'vitest';
import { buildDescriptor } from '../../../ovf/descriptor/build.js';
import { parseDescriptor } from '../../../ovf/descriptor/parse.js';
import { buildConfigIni, DEFAULT_UEFI_KVM_EXTRA } from '../../../importer/config-ini.js';
import { oneDisk } from './machines.js';

const vbox = (type: string) =>
  buildDescriptor(oneDisk).replace(
    '</VirtualSystem>',
    `<vbox:Machine xmlns:vbox="http://www.virtualbox.org/ovf/machine" ovf:required="false"><Hardware><Firmware type="${type}"/></Hardware></vbox:Machine></VirtualSystem>`,
  );

describe('firmware in the descriptor', () => {
  it('is written as vmw:Config and read back; absent when not known', () => {
    const xml = buildDescriptor({ ...oneDisk, firmware: 'efi' });
    expect(xml).toContain('xmlns:vmw="http://www.vmware.com/schema/ovf"');
    expect(xml).toContain('<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>');
    expect(parseDescriptor(xml).firmware).toBe('efi');
    expect(parseDescriptor(buildDescriptor({ ...oneDisk, firmware: 'bios' })).firmware).toBe('bios');
    expect(buildDescriptor(oneDisk)).not.toContain('vmw:');
    expect(parseDescriptor(buildDescriptor(oneDisk)).firmware).toBeUndefined();
  });

  it("reads VirtualBox's Firmware type, and ignores values it does not know", () => {
    expect(parseDescriptor(vbox('EFI')).firmware).toBe('efi');
    expect(parseDescriptor(vbox('EFI64')).firmware).toBe('efi');
    expect(parseDescriptor(vbox('BIOS')).firmware).toBe('bios');
    expect(parseDescriptor(vbox('coreboot')).firmware).toBeUndefined();
  });

  it('config.ini: efi on kvm gets our kvm_extra, the stream never chooses one, xen is refused', () => {
    const input = (hypervisor: string, extra?: string) => ({
      machine: {
        ...oneDisk,
        firmware: 'efi' as const,
        ganeti: { hypervisor, hypervisorParams: { kvm_extra: '-hostile' } },
      },
      instanceName: 'm',
      diskSizes: [2 ** 30],
      diskDumps: ['disk0.raw'],
      defaultOs: 'p2v-image+default',
      defaultHypervisor: 'kvm',
      nic: { mode: 'bridged', link: 'gntbr0' },
      ...(extra ? { uefiKvmExtra: extra } : {}),
    });
    const ini = buildConfigIni(input('kvm'));
    expect(ini.endsWith(`\n[hypervisor]\nkvm_extra = ${DEFAULT_UEFI_KVM_EXTRA}\n`)).toBe(true);
    expect(ini).not.toContain('-hostile');
    expect(buildConfigIni(input('kvm', '-bios /x/OVMF%.fd'))).toContain('kvm_extra = -bios /x/OVMF%%.fd\n');
    expect(buildConfigIni(input('fake'))).not.toContain('[hypervisor]');
    expect(() => buildConfigIni(input('xen-hvm'))).toThrow(
      'the machine boots with UEFI, which Ganeti 3.0 offers only on kvm, not on xen-hvm',
    );
    expect(buildConfigIni({ ...input('kvm'), machine: { ...oneDisk } })).not.toContain('[hypervisor]');
  });
});
