export { writeStreamOptimized, DEFAULT_LEVEL, type VmdkWriteOptions, type VmdkWriteStats } from './writer.js';
export {
  readStreamOptimized,
  DEFAULT_MAX_CAPACITY,
  READER_ENGINE,
  MAX_DESCRIPTOR_BYTES,
  type VmdkStreamInfo,
  type VmdkReadOptions,
} from './reader.js';
export { sniffDiskFormat } from './sniff.js';
export {
  buildDescriptor,
  parseDescriptor,
  geometryFor,
  type AdapterType,
  type DescriptorOptions,
  type ParsedDescriptor,
} from './descriptor.js';
export { assembleGrains, isAllZero, type Grain } from './grain-assembler.js';
export { StreamReader } from './stream-reader.js';
export { mapOrdered } from './ordered-map.js';
export * from './header.js';
export * from './marker.js';
export {
  ZlibPool,
  batched,
  BATCH_GRAINS,
  chooseEngine,
  threadpoolSize,
  DEFAULT_ENGINE,
  type ZlibEngine,
  type ZlibOp,
  type ZlibItemResult,
} from './zlib-pool.js';
