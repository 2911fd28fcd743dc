import { access, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { P2vError } from '../../../lib/errors.js';
import { buildDescriptor } from '../../../ovf/descriptor/index.js';
import { DEFAULT_CHUNK_SIZE, type MachineDescription } from '../../../ovf/types.js';
import { needPrograms } from '../../helpers/programs.js';
import { withTmpDir } from '../../helpers/tmp.js';
import { chunked, MACHINES, oddNames, oneDisk, twoDisksTwoNics } from './machines.js';
import { validate } from './xsd.js';

function refusal(m: MachineDescription): P2vError {
  try {
    buildDescriptor(m);
  } catch (e) {
    if (e instanceof P2vError) return e;
    throw e;
  }
  throw new Error('buildDescriptor accepted a machine it should refuse');
}

describe('buildDescriptor', () => {
  for (const [label, m] of Object.entries(MACHINES)) {
    it(`writes a schema-valid OVF 1.1 descriptor: ${label}`, async () => {
      await needPrograms('xmllint');
      await withTmpDir('ovf-build', async (dir) => {
        const xml = buildDescriptor(m, { chunked: true, productVersion: '0.1.0' });
        const v = await validate(dir, `${label}.ovf`, xml, m.ganeti !== undefined);
        expect(v.errors).toBe('');
        expect(v.ok).toBe(true);
      });
    });
  }

  it('validates against plain DSP8023 without a GanetiSection, and needs the gnt schema with one', async () => {
    await needPrograms('xmllint');
    await withTmpDir('ovf-build', async (dir) => {
      const plain = await validate(dir, 'plain.ovf', buildDescriptor(oneDisk), false);
      expect(plain.ok).toBe(true);
      // DSP8023 has no wildcard at Envelope level: that is why schema/ganeti-section.xsd exists.
      const gnt = await validate(dir, 'gnt.ovf', buildDescriptor(twoDisksTwoNics), false);
      expect(gnt.ok).toBe(false);
      expect(gnt.errors).toContain("Element '{http://ganeti}GanetiSection': This element is not expected.");
    });
  });

  it('is deterministic: same input, same bytes, whatever the order of parameter keys', () => {
    const a = buildDescriptor(twoDisksTwoNics);
    const shuffled: MachineDescription = {
      ...twoDisksTwoNics,
      ganeti: { ...twoDisksTwoNics.ganeti, hypervisorParams: { kernel_path: '', serial_console: 'true' } },
    };
    expect(buildDescriptor(shuffled)).toBe(a);
    expect(buildDescriptor(twoDisksTwoNics)).toBe(a);
    expect(a.indexOf('<gnt:kernel_path/>')).toBeLessThan(a.indexOf('<gnt:serial_console>'));
  });

  it('writes ovf:chunkSize only when asked to', () => {
    expect(buildDescriptor(chunked, { chunked: true })).toContain(
      `<File ovf:id="file1" ovf:href="big-disk1.vmdk" ovf:size="${3 * DEFAULT_CHUNK_SIZE + 17}" ovf:chunkSize="${DEFAULT_CHUNK_SIZE}"/>`,
    );
    expect(buildDescriptor(chunked)).not.toContain('chunkSize');
  });

  it('writes capacities in bytes and the streamOptimized format URI', () => {
    const xml = buildDescriptor(twoDisksTwoNics);
    expect(xml).toContain(
      '<Disk ovf:diskId="vmdisk2" ovf:capacity="536870912512" ovf:capacityAllocationUnits="byte" ovf:fileRef="file2" ' +
        'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="7516192768"/>',
    );
  });

  it('fills the format URI from the format when the model has none', () => {
    const m: MachineDescription = {
      ...oneDisk,
      disks: oneDisk.disks.map(({ formatUri: _u, ...d }) => ({ ...d, format: 'qcow2' as const })),
    };
    expect(buildDescriptor(m)).toContain('ovf:format="http://www.gnome.org/~markmc/qcow-image-format.html"');
  });

  it('escapes names with &, <, > and quotes', () => {
    const xml = buildDescriptor(oddNames);
    expect(xml).toContain('<VirtualSystem ovf:id="R&amp;D &lt;&quot;lab&quot;> \'box\' ü€">');
    expect(xml).toContain('<Name>r-and-d-lab.example.org</Name>');
    expect(xml).toContain('<File ovf:id="f&amp;1" ovf:href="disks/R&amp;D &quot;disk&quot; 1.vmdk"/>');
    expect(xml).toContain('<Annotation>line one\nline two &amp; &lt;three&gt; ]]&gt; "quoted"\ttab</Annotation>');
    expect(xml).not.toMatch(/<!DOCTYPE|<!\[CDATA\[/);
  });

  it('refuses machines that cannot make a valid descriptor, naming the culprit', () => {
    const noCapacity = refusal({ ...oneDisk, disks: [{ ...oneDisk.disks[0]!, capacity: undefined }] });
    expect(noCapacity.code).toBe('BAD_OVF');
    expect(noCapacity.message).toBe(
      'cannot write the OVF descriptor: disk vmdisk1 has no capacity (ovf:capacity is required)',
    );

    expect(refusal({ ...oneDisk, files: [{ id: 'file1', href: '../etc/passwd' }] }).message).toBe(
      'cannot write the OVF descriptor: file file1 has href "../etc/passwd": it climbs out of the package with ".."',
    );
    expect(refusal({ ...oneDisk, disks: [{ ...oneDisk.disks[0]!, fileRef: 'nope' }] }).message).toBe(
      'cannot write the OVF descriptor: disk vmdisk1 refers to file nope, which is not in files',
    );
    expect(refusal({ ...oneDisk, disks: [oneDisk.disks[0]!, oneDisk.disks[0]!] }).message).toBe(
      'cannot write the OVF descriptor: disk id "vmdisk1" is empty or used twice',
    );
    expect(refusal({ ...oneDisk, nics: [{ network: 'lan' }] }).message).toBe(
      'cannot write the OVF descriptor: NIC 0 is on network "lan", which is not in networks',
    );
    expect(
      refusal({ ...oneDisk, networks: ['lan'], nics: [{ network: 'lan', mac: 'AA-00-00-00-00-01' }] }).message,
    ).toBe('cannot write the OVF descriptor: NIC 0 has MAC "AA-00-00-00-00-01"; write it as aa:bb:cc:dd:ee:ff');
    expect(refusal({ ...oneDisk, memoryMiB: 0 }).message).toBe(
      'cannot write the OVF descriptor: the memory size in MiB is 0, not a positive whole number',
    );
    expect(refusal({ ...oneDisk, name: 'bad\u0001name' }).message).toBe(
      'cannot write the OVF descriptor: name contains a character XML cannot carry',
    );
    expect(refusal({ ...oneDisk, ganeti: { hypervisor: 'kvm', hypervisorParams: { 'a b': 'x' } } }).message).toBe(
      'cannot write hypervisor parameter "a b" into gnt:GanetiSection: not a valid XML name',
    );
  });

  it("is read by Ganeti's own ovfconverter without -o", async () => {
    const ovfconverter = '/usr/lib/ganeti/tools/ovfconverter';
    await needPrograms('qemu-img');
    await access(ovfconverter).catch(() => {
      throw new Error(`missing ${ovfconverter}: apt-get install ganeti`);
    });
    await withTmpDir('ovf-ganeti', async (dir) => {
      const m: MachineDescription = {
        ...twoDisksTwoNics,
        disks: [{ ...twoDisksTwoNics.disks[0]!, capacity: 8 * 1024 * 1024 }],
        files: [{ id: 'file1', href: 'db2-disk1.vmdk' }],
      };
      await execa('qemu-img', [
        'create',
        '-q',
        '-f',
        'vmdk',
        '-o',
        'subformat=streamOptimized',
        join(dir, 'db2-disk1.vmdk'),
        '8M',
      ]);
      const ovf = join(dir, 'db2.ovf');
      await writeFile(ovf, buildDescriptor(m));
      const out = join(dir, 'out');
      await execa(ovfconverter, ['import', ovf, `--output-dir=${out}`]);
      const [instance] = await readdir(out);
      expect(instance).toBe('db2.example.org');
      const ini = await readFile(join(out, instance!, 'config.ini'), 'utf8');
      const lines = new Set(ini.split('\n'));
      for (const want of [
        'name = db2.example.org',
        'os = p2v-image+default',
        'hypervisor = kvm',
        'disk_template = plain',
        'disk_count = 1',
        'disk0_size = 8',
        'disk0_dump = db2-disk1.raw',
        'vcpus = 4',
        'memory = 8192',
        'auto_balance = False',
        'tags = p2v,from-db2',
        'nic_count = 2',
        'nic0_mac = aa:00:00:12:34:56',
        'nic0_mode = bridged',
        'nic0_link = br0',
        'nic1_mac = aa:00:00:65:43:21',
        'nic1_mode = routed',
        'nic1_link = rt1',
        'nic1_ip = 192.0.2.7',
        'nic1_network = backup-net',
        'serial_console = true',
        'root_device = /dev/vda1',
      ]) {
        expect(lines, want).toContain(want);
      }
    });
  });
});
