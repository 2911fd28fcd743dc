/**
 * The two ways a streamOptimized VMDK is refused, shared by the reader and
 * the grain ledger: BAD_VMDK (malformed: fix the writer or convert) and
 * TRUNCATED (the input stopped early: send it again).
 */
import { P2vError } from '../../lib/errors.js';

const HINT_CORRUPT =
  'the VMDK is corrupt or not streamOptimized; re-export it, or convert it with qemu-img convert -O vmdk -o subformat=streamOptimized';
const HINT_CUT = 'the transfer was cut short; send the image again';

export function badVmdk(message: string, hint = HINT_CORRUPT): P2vError {
  return new P2vError('BAD_VMDK', message, { hint });
}

export function truncatedVmdk(message: string): P2vError {
  return new P2vError('TRUNCATED', message, { hint: HINT_CUT });
}
