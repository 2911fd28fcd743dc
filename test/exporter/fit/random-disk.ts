/**
 * Random but valid source disks for the fit tests: MBR (primaries, an
 * extended partition with logical ones placed as various tools leave them)
 * or GPT, sector-63 or MiB starts, sizes in whole MiB or odd sectors, gaps,
 * and minimum sizes that are sometimes above the partition's size (a full
 * filesystem). Seeded, so a failure can be replayed.
 */
import type { FitDisk, FitKind, FitPartition } from '../../../exporter/fit/types.js';
import { GPT_TAIL_BYTES } from '../../../exporter/fit/types.js';

const S = 512;
const MiB = 1024 * 1024;

/** A small deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomDisk(r: () => number): FitDisk {
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: T[]) => xs[int(0, xs.length - 1)]!;
  const table = pick<'dos' | 'gpt'>(['dos', 'gpt']);
  const kinds: FitKind[] = ['ext', 'xfs', 'btrfs', 'swap', 'fixed'];
  const partitions: FitPartition[] = [];
  // Old tools started at sector 63 or 2048; sizes are whole sectors, often not whole MiB.
  let at = pick([63 * S, 2048 * S, MiB, 34 * S]);
  const sizeOf = () => (r() < 0.5 ? int(1, 4000) * MiB : int(2048, 8_000_000) * S);
  const content = (number: number): FitPartition => {
    const kind = pick(kinds);
    const size = sizeOf();
    const minSize = kind === 'fixed' ? size : r() < 0.1 ? size + int(1, 100) * MiB : int(1, size / S) * S;
    const p: FitPartition = { number, start: at, size, kind, minSize };
    at += size + (r() < 0.5 ? 0 : int(0, 3000) * S);
    return p;
  };
  const primaries = int(1, table === 'dos' ? 4 : 8);
  const extAt = table === 'dos' && r() < 0.5 ? int(0, primaries - 1) : -1;
  for (let n = 1; n <= primaries; n++) {
    if (n - 1 === extAt) {
      const extStart = at;
      let number = 5;
      for (let k = int(1, 3); k > 0; k--) {
        // The EBR's room: before the first logical partition as various tools left it; before the
        // next ones, the MiB after the boundary following the previous one (sfdisk, which builds
        // these disks in the table tests, refuses tighter EBR places there).
        at = number === 5 ? at + pick([2 * S, MiB, 63 * S]) : Math.ceil(at / MiB) * MiB + MiB;
        partitions.push(content(number++));
      }
      partitions.push({
        number: n,
        start: extStart,
        size: at - extStart,
        kind: 'fixed',
        minSize: at - extStart,
        container: true,
      });
    } else partitions.push(content(n));
  }
  const lastEnd = Math.max(...partitions.map((p) => p.start + p.size));
  const size = Math.ceil((lastEnd + (table === 'gpt' ? GPT_TAIL_BYTES : 0) + int(0, 2000) * S) / S) * S;
  return { size, table, partitions };
}
