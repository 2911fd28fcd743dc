/**
 * Test OVAs built the way another tool would build them: qemu-img writes the
 * streamOptimized VMDK, GNU tar the archive, sha256sum-style lines the
 * manifest, and the descriptor is hand-written here. Nothing of ovf/ is used
 * to make them, so the importer is tested against independent bytes.
 */
import { createHash } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cliArgv } from '../helpers/cli.js';

export const MiB = 1024 * 1024;

/** A raw disk of `size` bytes with recognisable data at a few offsets, holes elsewhere. */
export async function makeRawDisk(path: string, size: number, seed = 1): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.truncate(size);
    const offsets = [0, 3 * 65536 + 512, Math.floor(size / 2), size - 65536];
    for (const [i, off] of offsets.entries()) {
      const b = Buffer.alloc(65536 - (off % 65536 === 0 ? 0 : 512));
      for (let j = 0; j < b.length; j++) b[j] = (j * 31 + seed * 7 + i) & 0xff || 1;
      await fh.write(b, 0, b.length, off);
    }
  } finally {
    await fh.close();
  }
}

export async function toStreamOptimized(raw: string, vmdk: string): Promise<void> {
  await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
}

export interface DescriptorSpec {
  name?: string;
  disks: { href: string; capacity?: number; format?: string; fileId?: string; diskId?: string; compression?: 'gzip' }[];
  memoryMiB?: number;
  cpus?: number;
  mac?: string;
  /** Raw XML inserted before <References> (DOCTYPE tricks go in `prolog`). */
  prolog?: string;
  ganeti?: string;
}

export const STREAM_OPTIMIZED = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';

/** A VMware-style OVF 1.0 descriptor. */
export function descriptorXml(s: DescriptorSpec): string {
  const files = s.disks
    .map(
      (d, i) =>
        `    <File ovf:id="${d.fileId ?? `file${i + 1}`}" ovf:href="${d.href}"${d.compression ? ` ovf:compression="${d.compression}"` : ''}/>`,
    )
    .join('\n');
  const disks = s.disks
    .map(
      (d, i) =>
        `    <Disk ovf:diskId="${d.diskId ?? `vmdisk${i + 1}`}" ovf:fileRef="${d.fileId ?? `file${i + 1}`}"${d.capacity !== undefined ? ` ovf:capacity="${d.capacity}"` : ''} ovf:format="${d.format ?? STREAM_OPTIMIZED}"/>`,
    )
    .join('\n');
  const diskItems = s.disks
    .map(
      (d, i) => `      <Item>
        <rasd:AddressOnParent>${i}</rasd:AddressOnParent>
        <rasd:ElementName>disk${i}</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/${d.diskId ?? `vmdisk${i + 1}`}</rasd:HostResource>
        <rasd:InstanceID>${10 + i}</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
${s.prolog ?? ''}<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:gnt="http://ganeti">
  <References>
${files}
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
${disks}
  </DiskSection>
  <NetworkSection>
    <Info>Networks</Info>
    <Network ovf:name="VM Network"><Description>net</Description></Network>
  </NetworkSection>
${s.ganeti ?? ''}  <VirtualSystem ovf:id="${s.name ?? 'test-vm'}">
    <Info>A virtual machine</Info>
    <Name>${s.name ?? 'test-vm'}</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>${s.cpus ?? 2} virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>${s.cpus ?? 2}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>${s.memoryMiB ?? 512}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
${diskItems}
      <Item>
        ${s.mac ? `<rasd:Address>${s.mac}</rasd:Address>` : ''}
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:ElementName>eth0</rasd:ElementName>
        <rasd:InstanceID>20</rasd:InstanceID>
        <rasd:ResourceSubType>VirtioNet</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Tar `members` (files in `dir`, in this order) into `ova`, with a manifest when `manifest` names it. */
export async function tarOva(dir: string, ova: string, members: string[], manifest?: string): Promise<void> {
  const names = [...members];
  if (manifest) {
    const lines = [];
    for (const m of members) lines.push(`SHA256(${m})= ${await sha256File(join(dir, m))}`);
    await writeFile(join(dir, manifest), lines.join('\n') + '\n');
    names.push(manifest);
  }
  await execa('tar', ['--format=ustar', '-cf', ova, '-C', dir, ...names]);
}

export interface GoodOva {
  ova: string;
  raws: string[];
  dir: string;
}

/** A good OVA: `disks` raw disks of the given sizes, streamOptimized, with manifest. */
export async function makeGoodOva(
  dir: string,
  opts: { name?: string; sizes?: number[]; mac?: string; ganeti?: string; seed?: number } = {},
): Promise<GoodOva> {
  const sizes = opts.sizes ?? [4 * MiB];
  const raws: string[] = [];
  const disks: DescriptorSpec['disks'] = [];
  for (const [i, size] of sizes.entries()) {
    const raw = join(dir, `src${i}.raw`);
    await makeRawDisk(raw, size, (opts.seed ?? 1) + i);
    await toStreamOptimized(raw, join(dir, `disk${i + 1}.vmdk`));
    raws.push(raw);
    disks.push({ href: `disk${i + 1}.vmdk`, capacity: size });
  }
  await writeFile(
    join(dir, 'vm.ovf'),
    descriptorXml({ name: opts.name ?? 'test-vm', disks, mac: opts.mac, ganeti: opts.ganeti }),
  );
  const ova = join(dir, 'vm.ova');
  await tarOva(dir, ova, ['vm.ovf', ...disks.map((d) => d.href)], 'vm.mf');
  return { ova, raws, dir };
}

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run p2v-import as installed, stdin from `input` (a file path) unless `args` name the file. */
export async function runImport(
  args: string[],
  opts: { inputFile?: string; input?: Buffer; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const [node, script] = cliArgv('p2v-import');
  const r = await execa(node!, [script!, ...args], {
    reject: false,
    inputFile: opts.inputFile,
    input: opts.input,
    env: { P2V_DEBUG: '', ...opts.env },
    timeout: 90_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
