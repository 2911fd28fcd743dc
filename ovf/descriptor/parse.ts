/**
 * OVF descriptor → MachineDescription. Reads OVF 1.0/1.1/2.0 as written by
 * VMware, VirtualBox, Ganeti, virt-v2v and ourselves: elements are matched by
 * namespace URI, never by prefix; OVF 2.0's StorageItem/EthernetPortItem are
 * read like Items. Lenient where real producers disagree with the schema
 * (VirtualBox omits ovf:capacity; Ganeti's fixtures point disks at missing
 * controllers), strict where a wrong guess would move the wrong bytes
 * (unsafe hrefs, dangling fileRefs, duplicate ids, unknown units).
 */
import { P2vError } from '../../lib/errors.js';
import type {
  DiskController,
  DiskFormat,
  GanetiSection,
  MachineDescription,
  OvfDisk,
  OvfFile,
  OvfNic,
} from '../types.js';
import { readGanetiSection, type ParsedGanetiNic } from './ganeti-section.js';
import { controllerOf, DEFAULT_CONTROLLER, normaliseMac } from './hardware.js';
import { assertSafeHref } from './href.js';
import { ENVELOPE_VERSION, isSettingDataNs, NS, RESOURCE_TYPE } from './namespaces.js';
import type { ParseOptions } from './types.js';
import { parseAllocationUnits } from './units.js';
import { attr, childNamed, childrenNamed, parseXmlTree, type XmlNode } from './xml-tree.js';

/** The product name our ProductSection carries, which marks our own descriptors. */
export const PRODUCT_NAME = 'ganeti-p2v';

function bad(message: string, hint = 'the descriptor is damaged or was not written by a tool we know'): P2vError {
  return new P2vError('BAD_OVF', message, { hint });
}

/** A non-negative whole number written in decimal, or BAD_OVF naming `what`. */
function wholeNumber(text: string, what: string): number {
  const t = text.trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n)) throw bad(`${what} is "${text}", not a whole number`);
  return n;
}

/** ovf:format URI → our DiskFormat. Matched loosely: Ganeti writes ".../specifications/vmdk.html#sparse". */
export function diskFormatOf(uri: string | undefined): DiskFormat {
  if (uri === undefined) return 'unknown';
  const u = uri.trim().toLowerCase();
  if (/vmdk\.html#streamoptimized$/.test(u)) return 'vmdk-streamOptimized';
  if (/vmdk\.html#(?:sparse|monolithicsparse)$/.test(u)) return 'vmdk-monolithicSparse';
  if (/vmdk\.html/.test(u)) return 'vmdk-other';
  if (/qcow/.test(u)) return 'qcow2';
  if (u === 'http://en.wikipedia.org/wiki/byte' || /#raw$/.test(u)) return 'raw';
  return 'unknown';
}

/** Field `local` of a hardware Item, in whichever CIM setting-data namespace the Item uses. */
function field(item: XmlNode, local: string): string | undefined {
  const c = item.children.find((n) => n.local === local && isSettingDataNs(n.uri));
  return c === undefined ? undefined : c.text.trim();
}

function readFiles(envelope: XmlNode, O: readonly string[]): OvfFile[] {
  const refs = childNamed(envelope, O, 'References');
  const files: OvfFile[] = [];
  const seen = new Set<string>();
  for (const f of refs ? childrenNamed(refs, O, 'File') : []) {
    const id = attr(f, O, 'id');
    const href = attr(f, O, 'href');
    if (!id) throw bad('a File in References has no ovf:id');
    if (href === undefined) throw bad(`File ${id} in References has no ovf:href`);
    if (seen.has(id)) throw bad(`File id ${id} appears twice in References`);
    seen.add(id);
    assertSafeHref(href, id);
    const file: OvfFile = { id, href };
    const size = attr(f, O, 'size');
    if (size !== undefined) file.size = wholeNumber(size, `ovf:size of File ${id}`);
    const chunk = attr(f, O, 'chunkSize');
    if (chunk !== undefined) {
      file.chunkSize = wholeNumber(chunk, `ovf:chunkSize of File ${id}`);
      if (file.chunkSize === 0) throw bad(`ovf:chunkSize of File ${id} is 0`);
    }
    const compression = attr(f, O, 'compression')?.trim();
    if (compression === 'gzip') file.compression = 'gzip';
    else if (compression !== undefined && compression !== '' && compression !== 'identity') {
      throw bad(
        `File ${id} uses compression "${compression}", which is not supported`,
        'only gzip-compressed files can be read',
      );
    }
    files.push(file);
  }
  return files;
}

interface DiskEntry {
  disk: Omit<OvfDisk, 'controller' | 'unit'>;
}

function readDisks(envelope: XmlNode, O: readonly string[], files: readonly OvfFile[]): DiskEntry[] {
  const section = childNamed(envelope, O, 'DiskSection');
  const fileIds = new Set(files.map((f) => f.id));
  const seen = new Set<string>();
  const out: DiskEntry[] = [];
  for (const d of section ? childrenNamed(section, O, 'Disk') : []) {
    const diskId = attr(d, O, 'diskId');
    if (!diskId) throw bad('a Disk in DiskSection has no ovf:diskId');
    if (seen.has(diskId)) throw bad(`Disk id ${diskId} appears twice in DiskSection`);
    seen.add(diskId);
    const formatUri = attr(d, O, 'format');
    const disk: DiskEntry['disk'] = { diskId, format: diskFormatOf(formatUri) };
    const fileRef = attr(d, O, 'fileRef');
    if (fileRef !== undefined && fileRef !== '') {
      // Ganeti's reader says the same ("... not found in references"); its tests expect those words.
      if (!fileIds.has(fileRef))
        throw bad(`.ovf file corrupted - disk ${diskId} refers to file ${fileRef}, not found in references`);
      disk.fileRef = fileRef;
    }
    const capacity = attr(d, O, 'capacity');
    if (capacity !== undefined) {
      if (/\$\{/.test(capacity))
        throw bad(`capacity of disk ${diskId} is the property reference "${capacity}", which is not supported`);
      const units = attr(d, O, 'capacityAllocationUnits');
      const bytes =
        wholeNumber(capacity, `ovf:capacity of disk ${diskId}`) *
        (units === undefined ? 1 : parseAllocationUnits(units));
      if (!Number.isSafeInteger(bytes)) throw bad(`capacity of disk ${diskId} (${capacity} × ${units}) is too large`);
      disk.capacity = bytes;
    }
    const populated = attr(d, O, 'populatedSize');
    if (populated !== undefined) disk.populatedSize = wholeNumber(populated, `ovf:populatedSize of disk ${diskId}`);
    if (formatUri !== undefined) disk.formatUri = formatUri;
    out.push({ disk });
  }
  return out;
}

interface Hardware {
  cpus?: number;
  memoryMiB?: number;
  /** diskId → where the disk sits. */
  placement: Map<string, { controller: DiskController; unit?: number }>;
  nics: { network: string; mac?: string; model?: string }[];
  systemType?: string;
}

const ITEM_KINDS = new Set(['Item', 'StorageItem', 'EthernetPortItem']);

function readHardware(vs: XmlNode, O: readonly string[], diskIds: ReadonlySet<string>): Hardware {
  const hw: Hardware = { placement: new Map(), nics: [] };
  // A VirtualSystem may carry several VirtualHardwareSections (one per transport or platform); the first is the default.
  const section = childNamed(vs, O, 'VirtualHardwareSection');
  if (!section) return hw;
  const system = childNamed(section, O, 'System');
  const systemType = system && field(system, 'VirtualSystemType');
  if (systemType) hw.systemType = systemType;

  const items = section.children.filter((c) => O.includes(c.uri) && ITEM_KINDS.has(c.local));
  const controllers = new Map<string, DiskController>();
  for (const item of items) {
    const type = Number(field(item, 'ResourceType'));
    const id = field(item, 'InstanceID');
    const kind = controllerOf(type, field(item, 'ResourceSubType'));
    if (kind && id !== undefined) controllers.set(id, kind);
  }

  for (const item of items) {
    const type = Number(field(item, 'ResourceType'));
    const instance = field(item, 'InstanceID') ?? '?';
    if (type === RESOURCE_TYPE.processor && hw.cpus === undefined) {
      const q = field(item, 'VirtualQuantity');
      if (q === undefined) throw bad(`the CPU Item (InstanceID ${instance}) has no VirtualQuantity`);
      const cpus = wholeNumber(q, 'the number of virtual CPUs');
      if (cpus === 0) throw bad('the descriptor asks for 0 virtual CPUs');
      hw.cpus = cpus;
    } else if (type === RESOURCE_TYPE.memory && hw.memoryMiB === undefined) {
      const q = field(item, 'VirtualQuantity');
      if (q === undefined) throw bad(`the memory Item (InstanceID ${instance}) has no VirtualQuantity`);
      // Absent units: every producer we know that omits them means MiB.
      const units = field(item, 'AllocationUnits');
      const bytes = wholeNumber(q, 'the memory size') * (units ? parseAllocationUnits(units) : 2 ** 20);
      if (!Number.isSafeInteger(bytes) || bytes === 0) throw bad(`the memory size "${q} ${units ?? ''}" is unusable`);
      // Rounded up: never give the guest less than it had.
      hw.memoryMiB = Math.ceil(bytes / 2 ** 20);
    } else if (type === RESOURCE_TYPE.disk) {
      const host = field(item, 'HostResource');
      // "ovf:/disk/ID" per the spec; VirtualBox 3 and Ganeti write "/disk/ID".
      const m = host === undefined ? null : /^(?:ovf:)?\/disk\/(.+)$/.exec(host);
      if (!m) continue; // a disk drive backed by a file or nothing (empty drive)
      const diskId = m[1]!;
      if (!diskIds.has(diskId))
        throw bad(`hardware Item ${instance} refers to disk ${diskId}, which is not in DiskSection`);
      if (hw.placement.has(diskId)) continue; // VirtualBox 3 repeats Items; the first one counts
      const parent = field(item, 'Parent');
      const controller = (parent !== undefined ? controllers.get(parent) : undefined) ?? DEFAULT_CONTROLLER;
      const address = field(item, 'AddressOnParent');
      const place: { controller: DiskController; unit?: number } = { controller };
      if (address !== undefined && address !== '')
        place.unit = wholeNumber(address, `AddressOnParent of disk ${diskId}`);
      hw.placement.set(diskId, place);
    } else if (type === RESOURCE_TYPE.ethernetAdapter) {
      const nic: Hardware['nics'][number] = { network: field(item, 'Connection') ?? '' };
      const address = field(item, 'Address');
      if (address) {
        const mac = normaliseMac(address);
        if (!mac)
          throw bad(`network adapter Item ${instance} has MAC address "${address}", which is not a MAC address`);
        nic.mac = mac;
      }
      const model = field(item, 'ResourceSubType');
      if (model) nic.model = model;
      hw.nics.push(nic);
    }
  }
  return hw;
}

/** Units for disks that no Item places: after the last used unit on their controller. */
function placeDisks(entries: readonly DiskEntry[], hw: Hardware): OvfDisk[] {
  const next = new Map<DiskController, number>();
  const bump = (c: DiskController, u: number) => next.set(c, Math.max(next.get(c) ?? 0, u + 1));
  for (const p of hw.placement.values()) if (p.unit !== undefined) bump(p.controller, p.unit);
  return entries.map(({ disk }) => {
    const p = hw.placement.get(disk.diskId);
    const controller = p?.controller ?? DEFAULT_CONTROLLER;
    const unit = p?.unit ?? next.get(controller) ?? 0;
    if (p?.unit === undefined) bump(controller, unit);
    const d: OvfDisk = { diskId: disk.diskId, format: disk.format, controller, unit };
    if (disk.fileRef !== undefined) d.fileRef = disk.fileRef;
    if (disk.capacity !== undefined) d.capacity = disk.capacity;
    if (disk.populatedSize !== undefined) d.populatedSize = disk.populatedSize;
    if (disk.formatUri !== undefined) d.formatUri = disk.formatUri;
    return d;
  });
}

/**
 * The firmware other makers' descriptors name: VMware's
 * `<vmw:Config vmw:key="firmware" vmw:value="efi|bios"/>` in a
 * VirtualHardwareSection, VirtualBox's `<vbox:Machine>` …
 * `<Hardware><Firmware type="EFI|EFI64|BIOS"/>`. OVF itself (DSP0243) has no
 * such field. A value we do not know says nothing.
 */
function readFirmware(vs: XmlNode, O: readonly string[]): 'efi' | 'bios' | undefined {
  for (const section of childrenNamed(vs, O, 'VirtualHardwareSection'))
    for (const c of childrenNamed(section, [NS.vmw], 'Config'))
      if (attr(c, [NS.vmw], 'key') === 'firmware') {
        const v = attr(c, [NS.vmw], 'value')?.trim().toLowerCase();
        if (v === 'efi' || v === 'bios') return v;
      }
  const machine = childNamed(vs, [NS.vbox], 'Machine');
  // Inside vbox:Machine, VirtualBox writes its own elements unprefixed: match them by name whatever the namespace.
  const hardware = machine?.children.find((c) => c.local === 'Hardware');
  const type = hardware?.children.find((c) => c.local === 'Firmware')?.attrs.find((a) => a.local === 'type')?.value;
  if (type && /^efi/i.test(type.trim())) return 'efi';
  if (type && /^bios$/i.test(type.trim())) return 'bios';
  return undefined;
}

function declaredNamespaces(node: XmlNode): Set<string> {
  return new Set(
    node.attrs.filter((a) => a.uri === NS.xmlns || (a.uri === '' && a.local === 'xmlns')).map((a) => a.value),
  );
}

/**
 * Parse an OVF descriptor. Throws P2vError('BAD_OVF') with a one-line
 * message on anything unusable; never resolves entities or DTDs.
 */
export function parseDescriptor(xml: string, opts: ParseOptions = {}): MachineDescription {
  const envelope = parseXmlTree(xml, opts.maxBytes);
  const defaultVersion = ENVELOPE_VERSION[envelope.uri];
  if (envelope.local !== 'Envelope' || defaultVersion === undefined) {
    throw bad(
      `not an OVF descriptor: the root element is <${envelope.local}> in namespace "${envelope.uri}"`,
      'give the .ovf file of an OVF 1.x or 2.0 package',
    );
  }
  const O = [envelope.uri];
  const ovfVersion = attr(envelope, O, 'version')?.trim() || defaultVersion;

  const files = readFiles(envelope, O);
  const diskEntries = readDisks(envelope, O, files);

  const networkSection = childNamed(envelope, O, 'NetworkSection');
  const networks: string[] = [];
  for (const n of networkSection ? childrenNamed(networkSection, O, 'Network') : []) {
    const name = attr(n, O, 'name');
    if (name === undefined) throw bad('a Network in NetworkSection has no ovf:name');
    if (networks.includes(name)) throw bad(`network "${name}" appears twice in NetworkSection`);
    networks.push(name);
  }

  if (childNamed(envelope, O, 'VirtualSystemCollection')) {
    throw bad(
      'the package holds a VirtualSystemCollection (several machines), which is not supported',
      'export each machine as its own OVF package',
    );
  }
  const vs = childNamed(envelope, O, 'VirtualSystem');
  if (!vs) throw bad('the descriptor has no VirtualSystem');
  const displayName = childNamed(vs, O, 'Name')?.text.trim() || undefined;
  const name = attr(vs, O, 'id')?.trim() || displayName;
  // Ganeti's tests expect "Name of instance" for a descriptor without one (empty.ovf).
  if (!name) throw bad('Name of instance not provided: the VirtualSystem has neither ovf:id nor Name');

  const hw = readHardware(vs, O, new Set(diskEntries.map((e) => e.disk.diskId)));
  if (hw.cpus === undefined) throw bad('the descriptor gives no number of virtual CPUs (no Item with ResourceType 3)');
  if (hw.memoryMiB === undefined) throw bad('the descriptor gives no memory size (no Item with ResourceType 4)');

  const gntNode = childNamed(envelope, [NS.gnt], 'GanetiSection');
  const gnt = gntNode ? readGanetiSection(gntNode, O) : undefined;

  const nics: OvfNic[] = hw.nics.map((n, i) => {
    const g: ParsedGanetiNic | undefined = gnt?.nics[i];
    // Ganeti pairs its Nic entries with networks by name; an empty Connection takes the name from there.
    const nic: OvfNic = { network: n.network || g?.name || '' };
    const mac = n.mac ?? (g?.mac ? normaliseMac(g.mac) : undefined);
    if (mac) nic.mac = mac;
    if (n.model) nic.model = n.model;
    return nic;
  });

  const m: MachineDescription = {
    name,
    cpus: hw.cpus,
    memoryMiB: hw.memoryMiB,
    files,
    disks: placeDisks(diskEntries, hw),
    networks,
    nics,
    ovfVersion,
  };

  const firmware = readFirmware(vs, O);
  if (firmware) m.firmware = firmware;

  const annotation = childNamed(vs, O, 'AnnotationSection');
  const annotationText = annotation && childNamed(annotation, O, 'Annotation')?.text;
  if (annotationText) m.annotation = annotationText;

  const osSection = childNamed(vs, O, 'OperatingSystemSection');
  const osId = osSection && attr(osSection, O, 'id');
  if (osSection && osId !== undefined && osId.trim() !== '') {
    const id = wholeNumber(osId, 'the OperatingSystemSection ovf:id');
    const description = childNamed(osSection, O, 'Description')?.text.trim();
    m.os = description ? { id, description } : { id };
  }

  if (gnt) {
    const section: GanetiSection = { ...gnt.section };
    // Ganeti names the instance after VirtualSystem/Name; kept only when it says something ovf:id does not.
    if (displayName !== undefined && displayName !== name) section.name = displayName;
    m.ganeti = section;
  }

  const products = childrenNamed(vs, O, 'ProductSection').map((p) => childNamed(p, O, 'Product')?.text.trim());
  const ns = declaredNamespaces(envelope);
  if (products.includes(PRODUCT_NAME)) m.producer = 'ganeti-p2v';
  else if (gnt) m.producer = 'ganeti';
  else if (ns.has(NS.vmw) || attr(envelope, [NS.vmw], 'buildId') !== undefined) m.producer = 'vmware';
  else if (ns.has(NS.vbox) || /^virtualbox/i.test(hw.systemType ?? '')) m.producer = 'virtualbox';
  else m.producer = 'unknown';
  return m;
}
