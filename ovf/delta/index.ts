export * from './format.js';
export { ByteReader } from './byte-reader.js';
export {
  BlockDigester,
  DIGEST_CHUNKS_HELD,
  digestBlocks,
  EntryCursor,
  type ChunkHasher,
  type DigestedBlock,
  type EntryRun,
} from './block-digest.js';
export * from './block-map.js';
export * from './delta-member.js';
export * from './result-map.js';
