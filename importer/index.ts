export * from './types.js';
export { main, buildCommand, DEFAULT_OS, DEFAULT_STAGING } from './cli.js';
export { importOva, type ImportRunOptions } from './import.js';
export { receiveOva, admitMachine, MACHINE_FILE, type Received } from './receive.js';
export {
  writeOutputs,
  writeRaw,
  writeQcow2,
  writeOvaFile,
  writeDevice,
  machineForOva,
  type OutputOptions,
} from './outputs.js';
export { writeGanetiExport, dumpName, type GanetiExportOptions } from './ganeti-export.js';
export { buildConfigIni, checkGanetiDefaults, iniValue, type ConfigIniInput } from './config-ini.js';
export { stageDisk, checkCapacityAgrees, rawDiskName, type StageDiskOptions } from './stage-disk.js';
export {
  createRawFileSink,
  createDeviceSink,
  copyRawInto,
  readRawChunks,
  writeSparseFile,
  targetSize,
  type DiskSink,
} from './disk-sink.js';
export { openStagingArea, newImportId, PARTIAL_SUFFIX, type StagingArea } from './staging.js';
export { checkDiskSize, checkFreeSpace, expectedStagingBytes } from './policy.js';
export { parseClientCommand, CLIENT_OPTIONS, type ClientRequest } from './forced-command.js';
export { isValidInstanceName, sanitiseInstanceName, checkInstanceName } from '../lib/instance-name.js';
export { chooseInstanceName } from './instance-name.js';
export { parseSize, describeSize, toMiBRoundedUp } from './size.js';
export { inspectImage, checkImage, convertToRaw, convertRawToQcow2, type QemuFormat } from './qemu-img.js';
export { placeFile, placeDir, placeRawDisk, openOutputPlace, openWorkDir } from './place.js';
export { peekHead, gunzip, isGzip, type ByteSource } from './byte-stream.js';
