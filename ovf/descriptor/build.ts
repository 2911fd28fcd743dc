/**
 * MachineDescription → OVF 1.1 descriptor text. The output validates against
 * DMTF DSP8023 1.1.1 (with schema/ganeti-section.xsd when a GanetiSection is
 * written), is read by Ganeti's ovfconverter without -o, and is byte-for-byte
 * the same for the same input: no timestamps, no random ids, parameters sorted.
 */
import xml2js from 'xml2js';
import { P2vError } from '../../lib/errors.js';
import { FORMAT_URI, type DiskController, type DiskFormat, type MachineDescription } from '../types.js';
import { ganetiSectionObject } from './ganeti-section.js';
import { CONTROLLER, normaliseMac } from './hardware.js';
import { unsafeHrefReason } from './href.js';
import { NS, RESOURCE_TYPE } from './namespaces.js';
import { PRODUCT_NAME } from './parse.js';
import type { BuildOptions } from './types.js';

/** The OVF version we write. */
export const OVF_VERSION = '1.1';

/**
 * vssd:VirtualSystemType. "vmx-07" (ESX 4 hardware) is the oldest type that
 * vSphere still imports; VirtualBox and virt-v2v accept it, Ganeti ignores it.
 */
export const VIRTUAL_SYSTEM_TYPE = 'vmx-07';

const URI_OF: Partial<Record<DiskFormat, string>> = {
  'vmdk-streamOptimized': FORMAT_URI.streamOptimized,
  'vmdk-monolithicSparse': FORMAT_URI.monolithicSparse,
  qcow2: FORMAT_URI.qcow2,
  raw: FORMAT_URI.raw,
};

function refuse(message: string, hint = 'this is a bug in the caller: fix the machine description'): P2vError {
  return new P2vError('BAD_OVF', `cannot write the OVF descriptor: ${message}`, { hint });
}

// XML 1.0 Char production: tab, LF, CR and everything from U+0020 except surrogates and U+FFFE/U+FFFF.
const NOT_XML_CHAR = /[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;

function positiveInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0) throw refuse(`${what} is ${n}, not a positive whole number`);
}

function nonNegativeInt(n: number | undefined, what: string): void {
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 0))
    throw refuse(`${what} is ${n}, not a whole number of bytes`);
}

/** Check everything the schema or a reader would trip on, before writing a single byte. */
function check(m: MachineDescription): void {
  if (m.name.trim() === '') throw refuse('the machine has no name');
  positiveInt(m.cpus, 'the number of CPUs');
  positiveInt(m.memoryMiB, 'the memory size in MiB');
  const fileIds = new Set<string>();
  for (const f of m.files) {
    if (f.id === '' || fileIds.has(f.id)) throw refuse(`file id "${f.id}" is empty or used twice`);
    fileIds.add(f.id);
    const reason = unsafeHrefReason(f.href);
    if (reason) throw refuse(`file ${f.id} has href "${f.href}": ${reason}`);
    nonNegativeInt(f.size, `the size of file ${f.id}`);
    if (f.chunkSize !== undefined) positiveInt(f.chunkSize, `the chunk size of file ${f.id}`);
  }
  const diskIds = new Set<string>();
  for (const d of m.disks) {
    if (d.diskId === '' || diskIds.has(d.diskId)) throw refuse(`disk id "${d.diskId}" is empty or used twice`);
    diskIds.add(d.diskId);
    if (d.fileRef !== undefined && !fileIds.has(d.fileRef))
      throw refuse(`disk ${d.diskId} refers to file ${d.fileRef}, which is not in files`);
    if (d.capacity === undefined) throw refuse(`disk ${d.diskId} has no capacity (ovf:capacity is required)`);
    nonNegativeInt(d.capacity, `the capacity of disk ${d.diskId}`);
    nonNegativeInt(d.populatedSize, `the populated size of disk ${d.diskId}`);
    if (!Number.isSafeInteger(d.unit) || d.unit < 0) throw refuse(`disk ${d.diskId} has unit ${d.unit}`);
    if (d.formatUri === undefined && URI_OF[d.format] === undefined)
      throw refuse(`disk ${d.diskId} has format ${d.format} and no format URI`);
  }
  const networks = new Set<string>();
  for (const n of m.networks) {
    if (networks.has(n)) throw refuse(`network "${n}" is listed twice`);
    networks.add(n);
  }
  m.nics.forEach((nic, i) => {
    if (!networks.has(nic.network)) throw refuse(`NIC ${i} is on network "${nic.network}", which is not in networks`);
    if (nic.mac !== undefined && normaliseMac(nic.mac) !== nic.mac)
      throw refuse(`NIC ${i} has MAC "${nic.mac}"; write it as aa:bb:cc:dd:ee:ff`);
  });
  if (m.os !== undefined && (!Number.isInteger(m.os.id) || m.os.id < 0 || m.os.id > 65535))
    throw refuse(`OS id ${m.os.id} is not a CIM OsType`);
  const g = m.ganeti;
  if (g?.nics !== undefined && g.nics.length > m.nics.length)
    throw refuse('the GanetiSection describes more NICs than the machine has');
}

/** Every string that ends up in the document, with where it came from, for one XML character check. */
function checkChars(value: unknown, path: string): void {
  if (typeof value === 'string') {
    if (NOT_XML_CHAR.test(value)) {
      throw refuse(
        `${path} contains a character XML cannot carry`,
        'remove control characters from names and annotations',
      );
    }
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => checkChars(v, `${path}[${i}]`));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) checkChars(v, path === '' ? k : `${path}.${k}`);
  }
}

type Obj = Record<string, unknown>;

function item(fields: [string, string | number | undefined][], attrs?: Obj): Obj {
  // RASD elements must come in the schema's (alphabetical) order; callers list them so.
  const o: Obj = attrs ? { $: attrs } : {};
  for (const [k, v] of fields) if (v !== undefined) o[`rasd:${k}`] = String(v);
  return o;
}

function hardware(m: MachineDescription): Obj {
  const items: Obj[] = [];
  let next = 1;
  items.push(
    item([
      ['Description', 'Number of virtual CPUs'],
      ['ElementName', `${m.cpus} virtual CPU(s)`],
      ['InstanceID', next++],
      ['ResourceType', RESOURCE_TYPE.processor],
      ['VirtualQuantity', m.cpus],
    ]),
  );
  items.push(
    item([
      ['AllocationUnits', 'byte * 2^20'],
      ['Description', 'Memory Size'],
      ['ElementName', `${m.memoryMiB}MB of memory`],
      ['InstanceID', next++],
      ['ResourceType', RESOURCE_TYPE.memory],
      ['VirtualQuantity', m.memoryMiB],
    ]),
  );
  // One controller per kind, in the order disks first use them, so disk 0 decides what comes first.
  const controllerId = new Map<DiskController, number>();
  for (const d of m.disks) {
    if (controllerId.has(d.controller)) continue;
    const c = CONTROLLER[d.controller];
    const id = next++;
    controllerId.set(d.controller, id);
    items.push(
      item([
        ['Address', 0],
        ['ElementName', c.elementName],
        ['InstanceID', id],
        ['ResourceSubType', c.subType],
        ['ResourceType', c.resourceType],
      ]),
    );
  }
  m.disks.forEach((d, i) => {
    items.push(
      item([
        ['AddressOnParent', d.unit],
        ['ElementName', `Hard disk ${i + 1}`],
        ['HostResource', `ovf:/disk/${d.diskId}`],
        ['InstanceID', next++],
        ['Parent', controllerId.get(d.controller)],
        ['ResourceType', RESOURCE_TYPE.disk],
      ]),
    );
  });
  m.nics.forEach((n, i) => {
    items.push(
      item([
        ['Address', n.mac],
        ['AutomaticAllocation', 'true'],
        ['Connection', n.network],
        ['ElementName', `Network adapter ${i + 1}`],
        ['InstanceID', next++],
        ['ResourceSubType', n.model],
        ['ResourceType', RESOURCE_TYPE.ethernetAdapter],
      ]),
    );
  });
  const hw: Obj = {
    Info: 'Virtual hardware requirements',
    System: {
      'vssd:ElementName': 'Virtual Hardware Family',
      'vssd:InstanceID': '0',
      'vssd:VirtualSystemIdentifier': m.name,
      'vssd:VirtualSystemType': VIRTUAL_SYSTEM_TYPE,
    },
    Item: items,
  };
  // The firmware as VMware writes it (other tools ignore it: ovf:required="false"); the schema allows
  // elements of other namespaces after the Items.
  if (m.firmware) hw['vmw:Config'] = { $: { 'ovf:required': 'false', 'vmw:key': 'firmware', 'vmw:value': m.firmware } };
  return hw;
}

/**
 * The OVF 1.1 envelope for `m`. Throws BAD_OVF (naming the field) when the
 * description cannot make a valid descriptor: a disk without capacity, an
 * unsafe href, a NIC on an unlisted network, a control character in a name.
 */
export function buildDescriptor(m: MachineDescription, opts: BuildOptions = {}): string {
  check(m);
  checkChars(m, '');
  checkChars(opts.productVersion, 'productVersion');

  const envelopeAttrs: Obj = {
    'ovf:version': OVF_VERSION,
    'xml:lang': 'en-US',
    xmlns: NS.ovf1,
    'xmlns:ovf': NS.ovf1,
    'xmlns:rasd': NS.rasd,
    'xmlns:vssd': NS.vssd,
    'xmlns:xsi': NS.xsi,
  };
  if (m.ganeti) envelopeAttrs['xmlns:gnt'] = NS.gnt;
  if (m.firmware) envelopeAttrs['xmlns:vmw'] = NS.vmw;

  const files = m.files.map((f) => {
    const a: Obj = { 'ovf:id': f.id, 'ovf:href': f.href };
    if (f.size !== undefined) a['ovf:size'] = String(f.size);
    if (opts.chunked && f.chunkSize !== undefined) a['ovf:chunkSize'] = String(f.chunkSize);
    if (f.compression) a['ovf:compression'] = f.compression;
    return { $: a };
  });

  const disks = m.disks.map((d) => {
    const a: Obj = {
      'ovf:diskId': d.diskId,
      'ovf:capacity': String(d.capacity),
      'ovf:capacityAllocationUnits': 'byte',
    };
    if (d.fileRef !== undefined) a['ovf:fileRef'] = d.fileRef;
    a['ovf:format'] = d.formatUri ?? URI_OF[d.format];
    if (d.populatedSize !== undefined) a['ovf:populatedSize'] = String(d.populatedSize);
    return { $: a };
  });

  const envelope: Obj = {
    $: envelopeAttrs,
    References: files.length > 0 ? { File: files } : '',
    DiskSection: { Info: 'Virtual disk information', ...(disks.length > 0 ? { Disk: disks } : {}) },
  };
  if (m.networks.length > 0) {
    envelope.NetworkSection = {
      Info: 'The list of logical networks',
      Network: m.networks.map((n) => ({ $: { 'ovf:name': n }, Description: `The ${n} network` })),
    };
  }
  if (m.ganeti) envelope['gnt:GanetiSection'] = ganetiSectionObject(m.ganeti, m.nics);

  const vs: Obj = {
    $: { 'ovf:id': m.name },
    Info: 'A virtual machine',
    Name: m.ganeti?.name ?? m.name,
  };
  if (m.annotation !== undefined && m.annotation !== '') {
    vs.AnnotationSection = { Info: 'A human-readable annotation', Annotation: m.annotation };
  }
  const product: Obj = { Info: 'The tool that wrote this package', Product: PRODUCT_NAME };
  if (opts.productVersion !== undefined) product.Version = opts.productVersion;
  vs.ProductSection = product;
  if (m.os !== undefined) {
    const os: Obj = { $: { 'ovf:id': String(m.os.id) }, Info: 'The kind of installed guest operating system' };
    if (m.os.description !== undefined) os.Description = m.os.description;
    vs.OperatingSystemSection = os;
  }
  vs.VirtualHardwareSection = hardware(m);
  envelope.VirtualSystem = vs;

  const builder = new xml2js.Builder({
    rootName: 'Envelope',
    xmldec: { version: '1.0', encoding: 'UTF-8' },
    renderOpts: { pretty: true, indent: '  ', newline: '\n' },
  });
  return `${builder.buildObject(envelope)}\n`;
}
