/**
 * OVF manifest (.mf) codec: one digest line per file of the package.
 *
 *   parseManifest(text)      → Map name → { algorithm, hex }   (BAD_MANIFEST on junk)
 *   formatManifest(entries)  → "SHA256(vm.ovf)= 3f…\n…"
 *
 * Two spellings exist in the wild and both are read: ovftool / DSP0243 write
 * `SHA256(name)= hex`; VirtualBox and `openssl dgst` write `SHA256 (name) = hex`
 * (the form ESXi is known to reject, so we only ever write the first one).
 */
import { P2vError } from '../lib/errors.js';

export type DigestAlgorithm = 'sha1' | 'sha256' | 'sha512';

export interface ManifestEntry {
  name: string;
  algorithm: DigestAlgorithm;
  /** Lower-case hexadecimal digest. */
  hex: string;
}

/** Hex digits per algorithm: a line whose digest has another length is junk, not a mismatch. */
export const DIGEST_HEX_LENGTH: Record<DigestAlgorithm, number> = { sha1: 40, sha256: 64, sha512: 128 };

const LINE = /^(SHA1|SHA256|SHA512) ?\((.+)\) ?= ?([0-9A-Fa-f]+)$/i;

const HINT = 'the OVA was damaged or edited after it was written: export it again';

/** Parse a manifest. Blank lines are ignored; anything else that is not a digest line is an error. */
export function parseManifest(text: string): Map<string, { algorithm: DigestAlgorithm; hex: string }> {
  const out = new Map<string, { algorithm: DigestAlgorithm; hex: string }>();
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (line === '') continue;
    const m = LINE.exec(line);
    if (!m) {
      throw new P2vError('BAD_MANIFEST', `manifest line ${i + 1} is not "SHA256(file)= digest": ${printable(line)}`, {
        hint: HINT,
      });
    }
    const algorithm = m[1]!.toLowerCase() as DigestAlgorithm;
    const name = m[2]!;
    const hex = m[3]!.toLowerCase();
    if (hex.length !== DIGEST_HEX_LENGTH[algorithm]) {
      throw new P2vError(
        'BAD_MANIFEST',
        `manifest line ${i + 1}: a ${algorithm.toUpperCase()} digest has ${DIGEST_HEX_LENGTH[algorithm]} hex digits, not ${hex.length}`,
        { hint: HINT },
      );
    }
    if (out.has(name)) {
      throw new P2vError('BAD_MANIFEST', `manifest lists ${name} twice`, { hint: HINT });
    }
    out.set(name, { algorithm, hex });
  }
  if (out.size === 0) throw new P2vError('BAD_MANIFEST', 'the manifest lists no files', { hint: HINT });
  return out;
}

/** Format a manifest in the ovftool spelling, one line per entry, in the given order. */
export function formatManifest(entries: ManifestEntry[]): string {
  return entries
    .map((e) => {
      if (/[\n\r]/.test(e.name) || e.name === '') {
        throw new P2vError('BAD_MANIFEST', `cannot write a manifest line for the file name ${JSON.stringify(e.name)}`);
      }
      if (!/^[0-9a-f]+$/.test(e.hex) || e.hex.length !== DIGEST_HEX_LENGTH[e.algorithm]) {
        throw new P2vError('BAD_MANIFEST', `not a ${e.algorithm.toUpperCase()} digest: ${e.hex}`);
      }
      return `${e.algorithm.toUpperCase()}(${e.name})= ${e.hex}\n`;
    })
    .join('');
}

function printable(s: string): string {
  const cut = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return JSON.stringify(cut);
}
