/**
 * File hrefs name members of the OVA (or files beside the .ovf). One that
 * could point anywhere else is refused before anything opens it.
 */
import { P2vError } from '../../lib/errors.js';

/** Why `href` is unsafe, or undefined when it is a plain relative name. */
export function unsafeHrefReason(href: string): string | undefined {
  if (href === '') return 'it is empty';
  // Control characters (NUL above all) would be cut or mangled by C tools later on.
  if (/[\u0000-\u001f\u007f]/.test(href)) return 'it contains a control character';
  if (href.includes('\\')) return 'it contains a backslash';
  if (/^[a-z][a-z0-9+.-]*:/i.test(href)) return 'it is a URL, not a file in the package';
  if (href.startsWith('/')) return 'it is an absolute path';
  if (href.split('/').some((seg) => seg === '..')) return 'it climbs out of the package with ".."';
  if (href.endsWith('/')) return 'it names a directory';
  return undefined;
}

/** Throws BAD_OVF naming the href when it is not a safe relative name. */
export function assertSafeHref(href: string, fileId?: string): void {
  const reason = unsafeHrefReason(href);
  if (reason === undefined) return;
  const what = fileId === undefined ? 'a File' : `File ${fileId}`;
  throw new P2vError('BAD_OVF', `unsafe href "${href}" on ${what} in the OVF descriptor: ${reason}`, {
    hint: 'a descriptor may only reference files inside its own package, by relative name',
  });
}
