/**
 * Does the package hold every file its descriptor references? The descriptor
 * codec cannot know; the OVA reader (or a directory listing) can, and asks here
 * so the answer is worded the same everywhere.
 */
import { P2vError } from '../../lib/errors.js';
import type { MachineDescription } from '../types.js';

/**
 * Throws BAD_OVF for the first referenced file missing from `present`
 * (names as they appear in the package). A chunked file is present when its
 * first chunk, href.000000000, is.
 */
export function assertReferencedFilesPresent(m: MachineDescription, present: Iterable<string>): void {
  const names = new Set(present);
  for (const f of m.files) {
    if (names.has(f.href)) continue;
    if (f.chunkSize !== undefined && names.has(`${f.href}.000000000`)) continue;
    // Ganeti's reader words it "File does not exist"; its tests look for "does not exist".
    throw new P2vError(
      'BAD_OVF',
      `File does not exist: ${f.href} (File ${f.id}) is referenced by the descriptor but not in the package`,
      {
        hint: 'the package is incomplete; export it again',
      },
    );
  }
}
