import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { P2vError } from '../../../lib/errors.js';
import {
  assertReferencedFilesPresent,
  buildDescriptor,
  parseAllocationUnits,
  parseDescriptor,
} from '../../../ovf/descriptor/index.js';
import { FORMAT_URI, type MachineDescription } from '../../../ovf/types.js';
import { twoDisksTwoNics } from './machines.js';
import { FIXTURES } from './xsd.js';

const GANETI = join(FIXTURES, 'ganeti-ovfdata');
const V2V = join(FIXTURES, 'virt-v2v-descriptors');
const GANETI_SPARSE = 'http://www.vmware.com/specifications/vmdk.html#sparse';

async function fixture(dir: string, name: string): Promise<string> {
  return readFile(join(dir, name), 'utf8');
}

function rejection(xml: string, opts?: { maxBytes?: number }): P2vError {
  try {
    parseDescriptor(xml, opts);
  } catch (e) {
    if (e instanceof P2vError) {
      expect(e.code).toBe('BAD_OVF');
      return e;
    }
    throw e;
  }
  throw new Error('parseDescriptor accepted a descriptor it should refuse');
}

/** A small valid OVF 1.0 descriptor with `files`/`disks` XML spliced in. */
function tiny(opts: { files?: string; disks?: string; items?: string; root?: string } = {}): string {
  return `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>${opts.files ?? '<File ovf:id="file1" ovf:href="disk1.vmdk"/>'}</References>
  <DiskSection><Info>disks</Info>${opts.disks ?? '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30"/>'}</DiskSection>
  ${opts.root ?? ''}
  <VirtualSystem ovf:id="tiny">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>hw</Info>
      <Item><rasd:ElementName>cpu</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>mem</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      ${opts.items ?? ''}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

describe('parseDescriptor on Ganeti test data (test/data/ovfdata)', () => {
  it('ganeti.ovf: reads the GanetiSection and names the instance as Ganeti does', async () => {
    expect(parseDescriptor(await fixture(GANETI, 'ganeti.ovf'))).toEqual({
      name: 'New-shiny-instance',
      os: { id: 93, description: 'Ubuntu' },
      cpus: 1,
      memoryMiB: 2048,
      files: [{ id: 'file1', href: 'new_disk.vmdk' }],
      // Its disk Item has Parent 3, but no Item 3 exists: the disk lands on the default IDE controller.
      disks: [
        {
          diskId: 'vmdisk1',
          fileRef: 'file1',
          format: 'vmdk-monolithicSparse',
          formatUri: GANETI_SPARSE,
          controller: 'ide',
          unit: 0,
        },
      ],
      networks: ['routed'],
      // Connection is empty; Ganeti pairs gnt:Nic ovf:name="routed" with it, and its MAC comes from there.
      nics: [{ network: 'routed', mac: 'aa:00:00:d8:2c:1e', model: 'PCNet32' }],
      ganeti: {
        name: 'ganeti-test-xen',
        os: 'lenny-image',
        hypervisor: 'xen-pvm',
        hypervisorParams: { 'root-path': '/dev/sda', kernel_args: 'ro' },
        diskTemplate: 'plain',
        autoBalance: false,
        nics: [{ mode: 'bridged', link: 'xen-br0', ip: 'none' }],
      },
      producer: 'ganeti',
      ovfVersion: '1.0',
    } satisfies MachineDescription);
  });

  it('virtualbox.ovf: no capacities, a repeated disk Item and an unplaced second disk', async () => {
    expect(parseDescriptor(await fixture(GANETI, 'virtualbox.ovf'))).toEqual({
      name: 'Ubuntu-freshly-created',
      os: { id: 93, description: 'Ubuntu' },
      cpus: 1,
      memoryMiB: 2048,
      files: [
        { id: 'file1', href: 'new_disk.vmdk' },
        { id: 'file2', href: 'second_disk.vmdk' },
      ],
      disks: [
        {
          diskId: 'vmdisk1',
          fileRef: 'file1',
          format: 'vmdk-monolithicSparse',
          formatUri: GANETI_SPARSE,
          controller: 'ide',
          unit: 0,
        },
        {
          diskId: 'vmdisk2',
          fileRef: 'file2',
          format: 'vmdk-monolithicSparse',
          formatUri: GANETI_SPARSE,
          controller: 'ide',
          unit: 1,
        },
      ],
      networks: ['bridged'],
      nics: [{ network: 'bridged', model: 'PCNet32' }],
      producer: 'virtualbox',
      ovfVersion: '1.0',
    } satisfies MachineDescription);
  });

  it('gzip_disk.ovf: a gzip-compressed File', async () => {
    const m = parseDescriptor(await fixture(GANETI, 'gzip_disk.ovf'));
    expect(m.files).toEqual([{ id: 'file1', href: 'compr_disk.vmdk.gz', compression: 'gzip' }]);
    expect(m.disks.map((d) => d.fileRef)).toEqual(['file1']);
    expect(m.ganeti?.os).toBe('lenny-image');
  });

  it('wrong_manifest.ovf: parses (the manifest is what is wrong); gnt:OS is not gnt:OperatingSystem', async () => {
    const m = parseDescriptor(await fixture(GANETI, 'wrong_manifest.ovf'));
    expect(m.networks).toEqual(['bridged network']);
    expect(m.nics).toEqual([{ network: 'bridged network', model: 'PCNet32' }]);
    expect(m.ganeti).toEqual({
      autoBalance: false,
      hypervisor: 'xen-pvm',
      hypervisorParams: { 'root-path': '/dev/sda', kernel_args: 'ro' },
    });
  });

  it('corrupted_resources.ovf: parses, but its disk file is not in the package ("does not exist")', async () => {
    const m = parseDescriptor(await fixture(GANETI, 'corrupted_resources.ovf'));
    expect(m.producer).toBe('vmware');
    expect(m.name).toBe('vm');
    expect(m.memoryMiB).toBe(512);
    expect(m.os).toEqual({ id: 83 });
    expect(m.disks).toEqual([
      {
        diskId: 'vmdisk1',
        fileRef: 'file1',
        capacity: 16514 * 2 ** 20,
        populatedSize: 2042953728,
        format: 'vmdk-streamOptimized',
        formatUri: FORMAT_URI.streamOptimized,
        controller: 'scsi',
        unit: 0,
      },
    ]);
    expect(m.nics).toEqual([{ network: 'bridged', model: 'E1000' }]);
    const present = await readdir(GANETI);
    let err: unknown;
    try {
      assertReferencedFilesPresent(m, present);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(P2vError);
    expect((err as P2vError).message).toBe(
      'File does not exist: other_disk.vmdk (File file1) is referenced by the descriptor but not in the package',
    );
    // The same check passes for a descriptor whose disks are all there.
    assertReferencedFilesPresent(parseDescriptor(await fixture(GANETI, 'virtualbox.ovf')), present);
  });

  it('empty.ovf: refused, no name of instance', async () => {
    expect(rejection(await fixture(GANETI, 'empty.ovf')).message).toBe(
      'Name of instance not provided: the VirtualSystem has neither ovf:id nor Name',
    );
  });

  it('no_disk_in_ref.ovf: refused, disk not found in references', async () => {
    expect(rejection(await fixture(GANETI, 'no_disk_in_ref.ovf')).message).toBe(
      '.ovf file corrupted - disk vmdisk1 refers to file file1, not found in references',
    );
  });

  it('wrong_xml.ovf: refused, error while reading .ovf', async () => {
    expect(rejection(await fixture(GANETI, 'wrong_xml.ovf')).message).toBe(
      'Error while reading .ovf descriptor: not well-formed XML at line 71, column 7: Invalid attribute name',
    );
  });
});

describe('parseDescriptor on virt-v2v test descriptors (VMware vSphere exports)', () => {
  it('test-i-ova.ovf', async () => {
    expect(parseDescriptor(await fixture(V2V, 'test-i-ova.ovf'))).toEqual({
      name: 'TestOva',
      os: { id: 74 },
      cpus: 1,
      memoryMiB: 2048,
      files: [{ id: 'file1', href: 'test-ova.vmdk', size: 349405696 }],
      disks: [
        {
          diskId: 'vmdisk1',
          fileRef: 'file1',
          capacity: 32 * 2 ** 30,
          populatedSize: 1008926720,
          format: 'vmdk-streamOptimized',
          formatUri: FORMAT_URI.streamOptimized,
          controller: 'scsi',
          unit: 0,
        },
      ],
      networks: ['VM Network'],
      nics: [{ network: 'VM Network', model: 'E1000' }],
      // vSphere writes <vmw:Config vmw:key="firmware" vmw:value="bios"/>.
      firmware: 'bios',
      producer: 'vmware',
      ovfVersion: '1.0',
    } satisfies MachineDescription);
  });

  it('test-i-ova-two-disks.ovf: two disks on one SCSI controller, in unit order', async () => {
    const m = parseDescriptor(await fixture(V2V, 'test-i-ova-two-disks.ovf'));
    expect(m.name).toBe('2K8R2EESP1_2_Medium');
    expect(m.os).toEqual({ id: 103, description: 'Microsoft Windows Server 2008 R2 (64-bit)' });
    expect(m.memoryMiB).toBe(1024);
    expect(m.files).toEqual([
      { id: 'file1', href: 'disk1.vmdk', size: 7804077568 },
      { id: 'file2', href: 'disk2.vmdk', size: 178523318784 },
    ]);
    expect(m.disks.map((d) => [d.diskId, d.capacity, d.populatedSize, d.controller, d.unit])).toEqual([
      ['vmdisk1', 50 * 2 ** 30, 18975752192, 'scsi', 0],
      ['vmdisk2', 450 * 2 ** 30, 275146276864, 'scsi', 1],
    ]);
    expect(m.nics).toEqual([{ network: 'PG-VLAN60', model: 'E1000' }]);
  });

  it('test-i-ova-gz.ovf, -formats.ovf and -snapshots.ovf', async () => {
    const gz = parseDescriptor(await fixture(V2V, 'test-i-ova-gz.ovf'));
    expect(gz.files).toEqual([{ id: 'file1', href: 'disk1.vmdk.gz', size: 7804077568, compression: 'gzip' }]);
    const formats = parseDescriptor(await fixture(V2V, 'test-i-ova-formats.ovf'));
    expect(formats.files).toEqual([{ id: 'file1', href: 'disk1.vmdk', size: 7804077568 }]);
    expect(formats.disks[0]?.capacity).toBe(50 * 2 ** 30);
    const snap = parseDescriptor(await fixture(V2V, 'test-i-ova-snapshots.ovf'));
    expect(snap.files).toEqual([{ id: 'file1', href: 'disk1.vmdk', size: 12288 }]);
    for (const m of [gz, formats, snap]) {
      expect(m.producer).toBe('vmware');
      expect(m.cpus).toBe(1);
      expect(m.memoryMiB).toBe(1024);
      expect(m.nics).toEqual([{ network: 'PG-VLAN60', model: 'E1000' }]);
    }
  });
});

describe('parseDescriptor on OVF 2.0', () => {
  it('reads StorageItem/EthernetPortItem with VirtualBox\'s ".xsd" namespaces', async () => {
    const tpl = await readFile(join(FIXTURES, 'ovf2/untangle-vbox-ovf2.ovf.tpl'), 'utf8');
    const xml = tpl.replaceAll('+SIZE+', String(8 * 2 ** 30));
    expect(parseDescriptor(xml)).toEqual({
      name: 'Untangle',
      os: { id: 96, description: 'Debian_64' },
      cpus: 2,
      memoryMiB: 2048,
      files: [{ id: 'file1', href: 'Untangle-disk001.vmdk' }],
      disks: [
        {
          diskId: 'vmdisk1',
          fileRef: 'file1',
          capacity: 8 * 2 ** 30,
          format: 'vmdk-streamOptimized',
          formatUri: FORMAT_URI.streamOptimized,
          controller: 'sata',
          unit: 0,
        },
      ],
      networks: ['NAT'],
      nics: [
        { network: 'External', model: 'E1000' },
        { network: 'Internal', model: 'E1000' },
      ],
      producer: 'virtualbox',
      ovfVersion: '2.0',
    } satisfies MachineDescription);
  });
});

describe('parseDescriptor resolves namespaces, not prefixes', () => {
  it('reads a descriptor whose prefixes are all different (and no default namespace)', () => {
    const original = buildDescriptor(twoDisksTwoNics);
    const renamed = original
      .replace('xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf=', 'xmlns:e=')
      .replaceAll(/<(\/?)([A-Za-z]+)([\s>/])/g, '<$1e:$2$3')
      .replaceAll(' ovf:', ' e:')
      .replaceAll('rasd:', 'r:')
      .replaceAll('vssd:', 'v:')
      .replaceAll('gnt:', 'g:')
      .replace('xmlns:rasd=', 'xmlns:r=')
      .replace('xmlns:vssd=', 'xmlns:v=')
      .replace('xmlns:gnt=', 'xmlns:g=');
    expect(renamed).not.toContain('<Envelope');
    expect(renamed).toContain('<r:ResourceType>');
    expect(renamed).toContain('<g:GanetiSection e:required="false">');
    expect(parseDescriptor(renamed)).toEqual(parseDescriptor(original));
  });

  it('ignores elements in the right local name but the wrong namespace', () => {
    const xml = tiny({
      items:
        '<Item xmlns:x="urn:not-rasd"><x:ResourceType>3</x:ResourceType><x:VirtualQuantity>64</x:VirtualQuantity>' +
        '<rasd:ElementName>n</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID></Item>',
    });
    expect(parseDescriptor(xml).cpus).toBe(1);
  });

  it('accepts unqualified ovf attributes', () => {
    const xml = tiny({ files: '<File id="file1" href="disk1.vmdk" size="42"/>' });
    expect(parseDescriptor(xml).files).toEqual([{ id: 'file1', href: 'disk1.vmdk', size: 42 }]);
  });
});

describe('parseDescriptor refuses hostile or unusable input', () => {
  it('refuses a DOCTYPE (billion laughs) before parsing', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&lol3;</Envelope>`;
    expect(rejection(lol).message).toBe(
      'the OVF descriptor contains a DOCTYPE or ENTITY declaration, which is refused',
    );
  });

  it('refuses an external entity (XXE)', () => {
    const xxe = tiny().replace(
      '<?xml version="1.0"?>',
      '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    );
    expect(rejection(xxe).message).toBe(
      'the OVF descriptor contains a DOCTYPE or ENTITY declaration, which is refused',
    );
    // Without a declaration, a reference to an unknown entity is simply not XML.
    expect(rejection(tiny().replace('<Info>disks</Info>', '<Info>&x;</Info>')).message).toMatch(
      /^Error while reading \.ovf descriptor: not well-formed XML at line 5, column \d+: Invalid character entity$/,
    );
  });

  it('caps the size: 4 MiB by default, or maxBytes', () => {
    const xml = tiny();
    const size = Buffer.byteLength(xml);
    expect(rejection(xml, { maxBytes: size - 1 }).message).toBe(
      `the OVF descriptor is ${size} bytes, over the ${size - 1}-byte limit`,
    );
    expect(parseDescriptor(xml, { maxBytes: size }).name).toBe('tiny');
    const padded = xml.replace('<Info>disks</Info>', `<Info>${'x'.repeat(4 * 1024 * 1024)}</Info>`);
    expect(rejection(padded).message).toBe(
      `the OVF descriptor is ${Buffer.byteLength(padded)} bytes, over the 4194304-byte limit`,
    );
  });

  it('refuses deep nesting and tag floods without exhausting the stack or the CPU', () => {
    const open = '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">';
    const deep = `${open}${'<a>'.repeat(20_000)}${'</a>'.repeat(20_000)}</Envelope>`;
    expect(rejection(deep).message).toBe('the OVF descriptor nests elements more than 64 deep');
    const flood = `${open}${'<a/>'.repeat(60_000)}</Envelope>`;
    const started = Date.now();
    expect(rejection(flood).message).toBe('the OVF descriptor has more than 50000 tags');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('refuses hrefs that leave the package, naming them', () => {
    const cases: [string, string][] = [
      ['/etc/shadow', 'it is an absolute path'],
      ['../../root/.ssh/id_rsa', 'it climbs out of the package with ".."'],
      ['disks/../../x.vmdk', 'it climbs out of the package with ".."'],
      ['disks\\x.vmdk', 'it contains a backslash'],
      ['http://evil.example/x.vmdk', 'it is a URL, not a file in the package'],
      ['file:///etc/passwd', 'it is a URL, not a file in the package'],
      ['', 'it is empty'],
    ];
    for (const [href, reason] of cases) {
      const xml = tiny({ files: `<File ovf:id="file1" ovf:href="${href}"/>` });
      expect(rejection(xml).message).toBe(`unsafe href "${href}" on File file1 in the OVF descriptor: ${reason}`);
    }
    // Dots inside a name are fine.
    const ok = tiny({ files: '<File ovf:id="file1" ovf:href="disks/a..b.vmdk"/>' });
    expect(parseDescriptor(ok).files[0]?.href).toBe('disks/a..b.vmdk');
  });

  it('refuses duplicate ids and dangling references', () => {
    expect(
      rejection(tiny({ files: '<File ovf:id="file1" ovf:href="a.vmdk"/><File ovf:id="file1" ovf:href="b.vmdk"/>' }))
        .message,
    ).toBe('File id file1 appears twice in References');
    const disk = '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1"/>';
    expect(rejection(tiny({ disks: disk + disk })).message).toBe('Disk id vmdisk1 appears twice in DiskSection');
    expect(
      rejection(
        tiny({
          items:
            '<Item><rasd:ElementName>d</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk9</rasd:HostResource>' +
            '<rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>17</rasd:ResourceType></Item>',
        }),
      ).message,
    ).toBe('hardware Item 5 refers to disk vmdisk9, which is not in DiskSection');
  });

  it('refuses what it cannot interpret: units, compression, MACs, collections, other XML', () => {
    expect(
      rejection(
        tiny({
          disks:
            '<Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1" ovf:capacityAllocationUnits="hertz * 10^6"/>',
        }),
      ).message,
    ).toBe('unknown allocation units "hertz * 10^6" in the OVF descriptor');
    expect(
      rejection(tiny({ files: '<File ovf:id="file1" ovf:href="d.vmdk.bz2" ovf:compression="bzip2"/>' })).message,
    ).toBe('File file1 uses compression "bzip2", which is not supported');
    expect(
      rejection(
        tiny({
          items:
            '<Item><rasd:Address>not-a-mac</rasd:Address><rasd:Connection>lan</rasd:Connection><rasd:ElementName>n</rasd:ElementName>' +
            '<rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>',
        }),
      ).message,
    ).toBe('network adapter Item 7 has MAC address "not-a-mac", which is not a MAC address');
    const collection = tiny().replace(
      /<VirtualSystem [\s\S]*<\/VirtualSystem>/,
      '<VirtualSystemCollection ovf:id="c"><Info>x</Info></VirtualSystemCollection>',
    );
    expect(rejection(collection).message).toBe(
      'the package holds a VirtualSystemCollection (several machines), which is not supported',
    );
    expect(rejection('<html><body>502 Bad Gateway</body></html>').message).toBe(
      'not an OVF descriptor: the root element is <html> in namespace ""',
    );
    expect(rejection('').message).toBe('Error while reading .ovf descriptor: no root element');
  });

  it('applies memory units and rounds up to whole MiB', () => {
    const mem = (units: string, q: number) =>
      tiny()
        .replace(
          '<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>',
          `<rasd:AllocationUnits>${units}</rasd:AllocationUnits>`,
        )
        .replace(
          '<rasd:VirtualQuantity>256</rasd:VirtualQuantity>',
          `<rasd:VirtualQuantity>${q}</rasd:VirtualQuantity>`,
        );
    expect(parseDescriptor(mem('MegaBytes', 2048)).memoryMiB).toBe(2048);
    expect(parseDescriptor(mem('byte * 2^30', 4)).memoryMiB).toBe(4096);
    expect(parseDescriptor(mem('byte * 2^10', 524289)).memoryMiB).toBe(513);
    expect(rejection(mem('byte * 2^20', 0)).message).toBe('the memory size "0 byte * 2^20" is unusable');
  });

  it('normalises MACs written with dashes or no separators', () => {
    const nic = (mac: string) =>
      tiny({
        items:
          `<Item><rasd:Address>${mac}</rasd:Address><rasd:Connection>lan</rasd:Connection><rasd:ElementName>n</rasd:ElementName>` +
          '<rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>',
      });
    expect(parseDescriptor(nic('AA-00-00-D8-2C-1E')).nics[0]?.mac).toBe('aa:00:00:d8:2c:1e');
    expect(parseDescriptor(nic('080027A1B2C3')).nics[0]?.mac).toBe('08:00:27:a1:b2:c3');
  });

  it('does not let element names reach object prototypes', () => {
    const xml = tiny({ root: '<__proto__ xmlns=""><polluted>yes</polluted></__proto__><constructor xmlns=""/>' });
    expect(parseDescriptor(xml).name).toBe('tiny');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseAllocationUnits', () => {
  it('reads programmatic units and the informal names producers use', () => {
    const table: [string, number][] = [
      ['byte', 1],
      ['byte * 2^10', 1024],
      ['byte * 2^20', 1048576],
      ['byte * 2^30', 1073741824],
      ['byte*2^40', 2 ** 40],
      ['byte * 1024 * 1024', 1048576],
      ['byte * 10^9', 1e9],
      ['byte * 2^30 / 1024', 1048576],
      ['bytes', 1],
      ['KiloBytes', 1024],
      ['MegaBytes', 1048576],
      ['GigaBytes', 1073741824],
      ['MB', 1048576],
      ['kb', 1024],
      ['  MiB ', 1048576],
    ];
    for (const [units, bytes] of table) expect(parseAllocationUnits(units), units).toBe(bytes);
  });

  it('refuses anything else', () => {
    for (const units of [
      'hertz * 10^6',
      'byte * 2^',
      'byte * 2^x',
      '',
      'byte * 2^1000',
      'byte / 3',
      'bit',
      'byte ** 2',
    ]) {
      let err: unknown;
      try {
        parseAllocationUnits(units);
      } catch (e) {
        err = e;
      }
      expect(err, units).toBeInstanceOf(P2vError);
      expect((err as P2vError).message).toBe(`unknown allocation units "${units}" in the OVF descriptor`);
    }
  });
});
