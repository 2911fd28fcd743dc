export { openOverlay, type Overlay, type OverlayOptions } from './overlay.js';
export {
  exposeOverlay,
  attachPartition,
  mountGuest,
  type ExposedDisk,
  type AttachedPartition,
  type GuestMount,
} from './mount.js';
export { inspect } from './inspect.js';
export { formatInspection } from './inspect-format.js';
export { sparsify, checkSourceNotMountedRw, type SparsifyReport } from './sparsify.js';
export { openDiskContent } from './disk-content.js';
export { NbdClient } from './nbd/index.js';
export { runExport, type ExportOptions, type ExportReport } from './export.js';
export { openRemoteReceiver, parseSshTarget, type SshOptions } from './ssh-transport.js';
