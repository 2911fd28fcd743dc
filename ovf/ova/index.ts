export type { OvaFileInput, OvaWriteOptions, OvaWriteResult, OvaReadOptions, OvaReadResult } from './types.js';
export { writeOva, manifestNameFor, padDescriptor } from './writer.js';
export { readOva } from './reader.js';
export { encodeTarHeader, tarPadding, TAR_BLOCK, TAR_END, type TarFileHeader } from './tar-header.js';
export { chunkName, parseChunkName, MAX_CHUNKS } from './chunk-name.js';
export { TarTail, lastNonZeroEnd } from './tar-tail.js';
export {
  parseManifest,
  formatManifest,
  DIGEST_HEX_LENGTH,
  type DigestAlgorithm,
  type ManifestEntry,
} from '../manifest.js';
