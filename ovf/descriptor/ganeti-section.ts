/**
 * gnt:GanetiSection, in the layout Ganeti's ovfconverter reads (lib/ovf.py):
 * a direct child of Envelope holding Version, DiskTemplate, AutoBalance,
 * Tags, OperatingSystem/{Name,Parameters}, Hypervisor/{Name,Parameters} and
 * Network/Nic[@ovf:name = the NIC's network] with Mode, MACAddress,
 * IPAddress, Link, Net. We add the Info child every OVF Section carries so
 * that the section validates as a member of the ovf:Section substitution
 * group (schema/ganeti-section.xsd); Ganeti ignores it.
 */
import { P2vError } from '../../lib/errors.js';
import type { GanetiSection, OvfNic } from '../types.js';
import { NS } from './namespaces.js';
import { childNamed, childrenNamed, attr, type XmlNode } from './xml-tree.js';

/** The export format version Ganeti writes and expects. */
export const GANETI_EXPORT_VERSION = '0';

const XML_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;

function params(kind: string, record: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!record) return undefined;
  const keys = Object.keys(record).sort();
  if (keys.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const k of keys) {
    if (!XML_NAME.test(k)) {
      throw new P2vError(
        'BAD_OVF',
        `cannot write ${kind} parameter "${k}" into gnt:GanetiSection: not a valid XML name`,
        {
          hint: 'parameter names are letters, digits, "_", "-" and "."',
        },
      );
    }
    out[`gnt:${k}`] = record[k]!;
  }
  return out;
}

/** The xml2js builder object for the section (element order as Ganeti writes it). */
export function ganetiSectionObject(g: GanetiSection, nics: readonly OvfNic[]): Record<string, unknown> {
  const s: Record<string, unknown> = {
    $: { 'ovf:required': 'false' },
    Info: 'Ganeti instance parameters (read by Ganeti ovfconverter)',
    'gnt:Version': GANETI_EXPORT_VERSION,
  };
  if (g.diskTemplate !== undefined) s['gnt:DiskTemplate'] = g.diskTemplate;
  if (g.autoBalance !== undefined) s['gnt:AutoBalance'] = g.autoBalance ? 'True' : 'False';
  if (g.tags && g.tags.length > 0) {
    for (const t of g.tags) {
      if (t.includes(',') || t.trim() !== t || t === '') {
        throw new P2vError('BAD_OVF', `cannot write Ganeti tag "${t}": tags travel comma-separated`, {
          hint: 'use tags without commas or surrounding spaces',
        });
      }
    }
    s['gnt:Tags'] = g.tags.join(',');
  }
  if (g.os !== undefined) {
    const os: Record<string, unknown> = { 'gnt:Name': g.os };
    const p = params('OS', g.osParams);
    if (p) os['gnt:Parameters'] = p;
    s['gnt:OperatingSystem'] = os;
  }
  if (g.hypervisor !== undefined) {
    const hv: Record<string, unknown> = { 'gnt:Name': g.hypervisor };
    const p = params('hypervisor', g.hypervisorParams);
    if (p) hv['gnt:Parameters'] = p;
    s['gnt:Hypervisor'] = hv;
  }
  const gnics = g.nics ?? [];
  if (gnics.length > 0) {
    s['gnt:Network'] = {
      'gnt:Nic': gnics.map((gn, i) => {
        const nic = nics[i];
        const o: Record<string, unknown> = { $: { 'ovf:name': nic?.network ?? '' } };
        if (gn.mode !== undefined) o['gnt:Mode'] = gn.mode;
        if (nic?.mac !== undefined) o['gnt:MACAddress'] = nic.mac;
        if (gn.ip !== undefined) o['gnt:IPAddress'] = gn.ip;
        if (gn.link !== undefined) o['gnt:Link'] = gn.link;
        if (gn.network !== undefined) o['gnt:Net'] = gn.network;
        return o;
      }),
    };
  }
  return s;
}

const G = [NS.gnt];

function text(node: XmlNode | undefined, local: string): string | undefined {
  const c = node ? childNamed(node, G, local) : undefined;
  return c === undefined ? undefined : c.text.trim();
}

function readParams(node: XmlNode | undefined): Record<string, string> | undefined {
  const p = node ? childNamed(node, G, 'Parameters') : undefined;
  if (!p || p.children.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const c of p.children) out[c.local] = c.text.trim();
  return out;
}

export interface ParsedGanetiNic {
  /** ovf:name: the network the NIC is on, which is how Ganeti pairs it with a hardware NIC. */
  name?: string;
  mac?: string;
  mode?: string;
  link?: string;
  ip?: string;
  network?: string;
}

export interface ParsedGanetiSection {
  section: GanetiSection;
  nics: ParsedGanetiNic[];
}

/** Read a gnt:GanetiSection element. Unknown children are ignored, as Ganeti does. */
export function readGanetiSection(node: XmlNode, ovfNs: readonly string[]): ParsedGanetiSection {
  const g: GanetiSection = {};
  const template = text(node, 'DiskTemplate');
  if (template) g.diskTemplate = template;
  const balance = text(node, 'AutoBalance');
  if (balance) {
    const b = balance.toLowerCase();
    if (b === 'true' || b === '1' || b === 'yes') g.autoBalance = true;
    else if (b === 'false' || b === '0' || b === 'no') g.autoBalance = false;
    else {
      throw new P2vError('BAD_OVF', `gnt:AutoBalance is "${balance}", not True or False`, {
        hint: 'fix the GanetiSection of the descriptor',
      });
    }
  }
  const tags = (text(node, 'Tags') ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (tags.length > 0) g.tags = tags;
  const os = childNamed(node, G, 'OperatingSystem');
  const osName = text(os, 'Name');
  if (osName) g.os = osName;
  const osParams = readParams(os);
  if (osParams) g.osParams = osParams;
  const hv = childNamed(node, G, 'Hypervisor');
  const hvName = text(hv, 'Name');
  if (hvName) g.hypervisor = hvName;
  const hvParams = readParams(hv);
  if (hvParams) g.hypervisorParams = hvParams;

  const nics: ParsedGanetiNic[] = [];
  const network = childNamed(node, G, 'Network');
  for (const n of network ? childrenNamed(network, G, 'Nic') : []) {
    const nic: ParsedGanetiNic = {};
    const name = attr(n, ovfNs, 'name');
    if (name !== undefined) nic.name = name;
    const fields: [keyof ParsedGanetiNic, string][] = [
      ['mac', 'MACAddress'],
      ['mode', 'Mode'],
      ['link', 'Link'],
      ['ip', 'IPAddress'],
      ['network', 'Net'],
    ];
    for (const [key, local] of fields) {
      const v = text(n, local);
      if (v) nic[key] = v;
    }
    nics.push(nic);
  }
  if (nics.length > 0) {
    g.nics = nics.map(({ mode, link, ip, network: net }) => {
      const o: { mode?: string; link?: string; ip?: string; network?: string } = {};
      if (mode !== undefined) o.mode = mode;
      if (link !== undefined) o.link = link;
      if (ip !== undefined) o.ip = ip;
      if (net !== undefined) o.network = net;
      return o;
    });
  }
  return { section: g, nics };
}
