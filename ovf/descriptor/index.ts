export { buildDescriptor, OVF_VERSION, VIRTUAL_SYSTEM_TYPE } from './build.js';
export { parseDescriptor, diskFormatOf, PRODUCT_NAME } from './parse.js';
export { parseAllocationUnits } from './units.js';
export { assertSafeHref, unsafeHrefReason } from './href.js';
export { assertReferencedFilesPresent } from './references.js';
export { DEFAULT_MAX_DESCRIPTOR_BYTES } from './xml-tree.js';
export { GANETI_EXPORT_VERSION } from './ganeti-section.js';
export type { BuildOptions, ParseOptions } from './types.js';
