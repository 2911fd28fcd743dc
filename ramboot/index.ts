export { buildRamInitrd, initrdEntries, initScriptPath, isStaticElf, DEFAULT_MODULES } from './build.js';
export type { RamInitrdOptions, RamInitrdReport } from './build.js';
export { cpioArchive } from './cpio-writer.js';
export type { InitrdEntry } from './cpio-writer.js';
export { KernelModules } from './kernel-modules.js';
export type { ModulePlan } from './kernel-modules.js';
export { bundleReceiver, productionPackages, DEFAULT_RECEIVER_DIR } from './receiver.js';
export type { ReceiverBundleOptions, ReceiverBundleReport } from './receiver.js';
