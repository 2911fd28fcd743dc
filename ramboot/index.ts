export { buildRamInitrd, initrdEntries, initScriptPath, isStaticElf, DEFAULT_MODULES } from './build.js';
export type { RamInitrdOptions, RamInitrdReport } from './build.js';
export { cpioArchive, newcHeader } from './cpio-writer.js';
export type { InitrdEntry, NewcFields } from './cpio-writer.js';
export { KernelModules, moduleName } from './kernel-modules.js';
export type { ModulePlan } from './kernel-modules.js';
