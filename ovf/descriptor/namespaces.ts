/**
 * The XML namespaces an OVF descriptor speaks, and the CIM ResourceType
 * numbers we read and write. The parser matches elements by namespace URI,
 * never by prefix: producers pick their own prefixes (or none at all).
 */

export const NS = {
  ovf1: 'http://schemas.dmtf.org/ovf/envelope/1',
  ovf2: 'http://schemas.dmtf.org/ovf/envelope/2',
  rasd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData',
  vssd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData',
  sasd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData',
  epasd: 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
  xmlns: 'http://www.w3.org/2000/xmlns/',
  gnt: 'http://ganeti',
  vmw: 'http://www.vmware.com/schema/ovf',
  vbox: 'http://www.virtualbox.org/ovf/machine',
} as const;

/** Envelope namespaces we accept, with the OVF version each implies when ovf:version is absent. */
export const ENVELOPE_VERSION: Readonly<Record<string, string>> = {
  [NS.ovf1]: '1.0',
  [NS.ovf2]: '2.0',
};

/**
 * The CIM setting-data namespaces an Item, StorageItem or EthernetPortItem
 * may use for its fields. VirtualBox writes the SASD/EPASD URIs with a
 * trailing ".xsd", so that spelling is accepted too.
 */
const SETTING_DATA = new Set<string>([NS.rasd, NS.sasd, NS.epasd, NS.vssd]);
export function isSettingDataNs(uri: string): boolean {
  return SETTING_DATA.has(uri.endsWith('.xsd') ? uri.slice(0, -4) : uri);
}

/** CIM_ResourceAllocationSettingData.ResourceType values (DSP1043). */
export const RESOURCE_TYPE = {
  other: 1,
  processor: 3,
  memory: 4,
  ideController: 5,
  parallelScsiHba: 6,
  ethernetAdapter: 10,
  disk: 17,
  sataController: 20,
} as const;
