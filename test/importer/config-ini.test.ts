import { describe, expect, it } from 'vitest';
import { buildConfigIni, iniValue } from '../../importer/config-ini.js';
import type { MachineDescription } from '../../ovf/types.js';
import { isP2vError } from '../../lib/errors.js';

const machine = (over: Partial<MachineDescription> = {}): MachineDescription => ({
  name: 'web1',
  cpus: 2,
  memoryMiB: 1024,
  files: [],
  disks: [],
  networks: ['VM Network'],
  nics: [{ network: 'VM Network', mac: 'AA:00:00:12:34:56' }, { network: 'VM Network' }],
  ...over,
});

const base = {
  instanceName: 'web1.example.org',
  diskSizes: [4 * 2 ** 30, 2 ** 20 + 1],
  diskDumps: ['disk0.raw', 'disk1.raw'],
  defaultOs: 'p2v-image+default',
  defaultHypervisor: 'kvm',
  nic: { mode: 'bridged', link: 'gntbr0' },
};

describe('buildConfigIni', () => {
  it('writes what gnt-backup import reads, sizes in MiB rounded up', () => {
    expect(buildConfigIni({ ...base, machine: machine() })).toBe(
      [
        '[export]',
        'version = 0',
        'os = p2v-image+default',
        '',
        '[instance]',
        'name = web1.example.org',
        'hypervisor = kvm',
        'disk_count = 2',
        'disk0_size = 4096',
        'disk0_dump = disk0.raw',
        'disk1_size = 2',
        'disk1_dump = disk1.raw',
        'nic_count = 2',
        'nic0_mac = aa:00:00:12:34:56',
        'nic0_mode = bridged',
        'nic0_link = gntbr0',
        'nic1_mac = generate',
        'nic1_mode = bridged',
        'nic1_link = gntbr0',
        '',
        '[backend]',
        'memory = 1024',
        'vcpus = 2',
        '',
      ].join('\n'),
    );
  });

  it("lets the descriptor's Ganeti section win over the defaults", () => {
    const ini = buildConfigIni({
      ...base,
      machine: machine({
        ganeti: {
          os: 'debootstrap+buster',
          hypervisor: 'xen-pvm',
          nics: [{ mode: 'routed', link: 'br0' }],
          autoBalance: false,
        },
      }),
    });
    expect(ini).toContain('os = debootstrap+buster\n');
    expect(ini).toContain('hypervisor = xen-pvm\n');
    expect(ini).toContain('nic0_mode = routed\nnic0_link = br0\n');
    expect(ini).toContain('nic1_mac = generate\nnic1_mode = bridged\nnic1_link = gntbr0\n');
    expect(ini).toContain('auto_balance = False\n');
  });

  it('doubles % and refuses line breaks (no key injection)', () => {
    expect(iniValue('50%')).toBe('50%%');
    expect(() => iniValue('x\nos = evil')).toThrow(/line break/);
  });

  it('refuses hostile values from the stream', () => {
    const cases: [Partial<MachineDescription>, RegExp][] = [
      [{ ganeti: { os: 'p2v\nname = x' } }, /invalid Ganeti OS name/],
      [{ ganeti: { hypervisor: 'qemu -runas' } }, /invalid hypervisor/],
      [{ ganeti: { nics: [{ mode: 'bridged', link: 'br0;rm' }] } }, /invalid NIC link/],
      [{ nics: [{ network: 'n', mac: 'aa:bb' }] }, /invalid MAC address/],
      [{ memoryMiB: 0 }, /invalid memory size/],
    ];
    for (const [over, re] of cases) {
      let err: unknown;
      try {
        buildConfigIni({ ...base, machine: machine(over) });
      } catch (e) {
        err = e;
      }
      expect(isP2vError(err, 'BAD_OVF'), String(re)).toBe(true);
      expect((err as Error).message).toMatch(re);
    }
  });

  it('never carries hypervisor or OS parameters from the stream', () => {
    const ini = buildConfigIni({
      ...base,
      machine: machine({ ganeti: { hypervisorParams: { kvm_extra: '-runas root' }, osParams: { x: 'y' } } }),
    });
    expect(ini).not.toMatch(/kvm_extra|\[hypervisor\]|\[os\]/);
  });
});
