/**
 * The OVA writer's and reader's public interface. An OVA is a tar archive
 * holding, in this order, the OVF descriptor, the files its References name
 * (whole, or as chunks `href.000000000`, `href.000000001`, …), and a manifest
 * of digests; see docs/design-ova.md.
 */
import type { MachineDescription, OvfFile } from '../types.js';
import type { DigestAlgorithm } from '../manifest.js';

export interface OvaFileInput {
  /** ovf:id of the File. */
  id: string;
  /** ovf:href: a plain file name (no "/", no ".."), the member name in the archive. */
  href: string;
  /** The file's bytes, produced lazily; pulled only as fast as the output drains. */
  content: AsyncIterable<Buffer>;
}

export interface OvaWriteOptions {
  /** Member name of the descriptor, e.g. "vm.ovf"; the manifest is written as "vm.mf". */
  descriptorName: string;
  /**
   * Builds the descriptor text for the given References. Called first with
   * sizes unknown (and, in 'stream' mode, with chunkSize set), and in 'file'
   * mode called again at the end with every OvfFile.size filled in.
   */
  descriptor: (files: OvfFile[]) => string;
  /** Written in this order, after the descriptor. */
  files: OvaFileInput[];
  /**
   * 'file': a seekable regular file; each file is one member whose header is
   * patched once its size is known, and the descriptor is rewritten in place
   * with the real ovf:size values. 'stream': a pipe; files are split into
   * chunk members of chunkSize bytes, one chunk held in memory at a time.
   */
  mode: 'file' | 'stream';
  /** A path in 'file' mode (created or truncated; removed again on failure), a writable stream in 'stream' mode (left open: the caller ends it, so stdout can be passed). */
  output: string | NodeJS.WritableStream;
  /** 'stream' mode only; default DEFAULT_CHUNK_SIZE (64 MiB). A multiple of 512 keeps members block-aligned but is not required. */
  chunkSize?: number;
  /** Digest written to the manifest; default sha256. */
  manifest?: 'sha256' | 'sha1';
  /** Called with each number of content bytes consumed (a delta, for Progress.add). */
  onProgress?: (bytes: number) => void;
}

export interface OvaWriteResult {
  /** The References as finally known: sizes always set; chunkSize set in 'stream' mode. */
  files: OvfFile[];
  /** The manifest text written as the last member. */
  manifest: string;
  /** Bytes of the whole archive, tar end marker included. */
  bytesWritten: number;
}

export interface OvaReadOptions {
  parseDescriptor: (xml: string) => MachineDescription;
  /**
   * Called once per referenced file, in archive order, with its whole content
   * (chunks reassembled, gzip NOT undone). Must consume `content` fully; the
   * content stream throws BAD_MANIFEST at its end when the manifest came first
   * and the digest does not match, and TRUNCATED if the input ends early.
   */
  onFile: (file: OvfFile, content: AsyncIterable<Buffer>) => Promise<void>;
  /** Default 4 MiB. */
  maxDescriptorBytes?: number;
  /** Default 1 MiB. */
  maxManifestBytes?: number;
  /** Default false (Ganeti and VirtualBox OVAs may have none). */
  requireManifest?: boolean;
  /**
   * Digests computed for members that arrive before the manifest (a manifest at
   * the end can only be checked against what was computed on the way).
   * Default ['sha256', 'sha1']. When the manifest comes first, exactly the
   * algorithms it names are computed.
   */
  digestsBeforeManifest?: DigestAlgorithm[];
}

export interface OvaReadResult {
  machine: MachineDescription;
  descriptorName: string;
  /** Every manifest line checked, in the order checked. */
  verified: { name: string; algorithm: DigestAlgorithm }[];
  manifestFound: boolean;
  /** Name of a signature certificate (.cert) member, which is read past, not checked. */
  certificate?: string;
}
