import { createHash, type Hash } from 'node:crypto';
import type { DigestAlgorithm } from '../manifest.js';

/** Several digests of the same bytes at once. */
export class Hasher {
  private readonly hashes: [DigestAlgorithm, Hash][];
  constructor(algorithms: DigestAlgorithm[]) {
    this.hashes = [...new Set(algorithms)].map((a) => [a, createHash(a)]);
  }
  update(buf: Buffer): void {
    for (const [, h] of this.hashes) h.update(buf);
  }
  digests(): Map<DigestAlgorithm, string> {
    return new Map(this.hashes.map(([a, h]) => [a, h.digest('hex')]));
  }
}
