/**
 * referencedFiles: the files an OVA's descriptor names, checked before any of
 * them is read: each href a safe relative name (no URL, no "..", no absolute
 * path), none of the names an OVA keeps for itself (.ovf, .mf, .cert), none
 * twice. Keyed by href, the member name each must arrive under.
 */
import { P2vError } from '../../lib/errors.js';
import type { OvfFile } from '../types.js';
import { HINT_HOSTILE, isSafeName } from './member-reader.js';

export function referencedFiles(descriptorName: string, references: OvfFile[]): Map<string, OvfFile> {
  const files = new Map<string, OvfFile>();
  for (const f of references) {
    if (!isSafeName(f.href) || /^[a-z][a-z0-9+.-]*:/i.test(f.href)) {
      throw new P2vError(
        'BAD_OVF',
        `descriptor ${descriptorName} references an unsafe or external file: ${JSON.stringify(f.href)}`,
        { hint: HINT_HOSTILE },
      );
    }
    if (/\.(ovf|mf|cert)$/i.test(f.href)) {
      throw new P2vError(
        'BAD_OVF',
        `descriptor ${descriptorName} references ${f.href}, a name an OVA keeps for descriptors, manifests and certificates`,
        { hint: HINT_HOSTILE },
      );
    }
    if (files.has(f.href)) {
      throw new P2vError('BAD_OVF', `descriptor ${descriptorName} references ${f.href} twice`, { hint: HINT_HOSTILE });
    }
    files.set(f.href, f);
  }
  return files;
}
