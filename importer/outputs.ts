/**
 * The outputs one run can write from a committed staged import, in the
 * order the CLI lists them (Ganeti export, OVA, raw, qcow2, device). Each is built under a temporary name
 * and put in place only when complete.
 */
import { basename, join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { FORMAT_URI, type MachineDescription, type OvfFile } from '../ovf/types.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { copyRawInto, createDeviceSink, readRawChunks } from './disk-sink.js';
import { writeGanetiExport, type GanetiExportOptions } from './ganeti-export.js';
import { ensureDir, placeFile, placeRawDisk, tempNameFor } from './place.js';
import { convertRawToQcow2 } from './qemu-img.js';
import type { OutputSpec, StagedImport } from './types.js';

export interface OutputOptions extends GanetiExportOptions {
  logger: Logger;
}

function diskFileName(staged: StagedImport, index: number, ext: string): string {
  return `${staged.instanceName}-disk${index}.${ext}`;
}

export async function writeRaw(staged: StagedImport, dir: string): Promise<string[]> {
  await ensureDir(dir);
  const out: string[] = [];
  for (const d of staged.disks) {
    const final = join(dir, diskFileName(staged, d.index, 'raw'));
    const tmp = tempNameFor(final, staged.id);
    await placeRawDisk(d.path, d.capacity, tmp.path);
    await placeFile(tmp.path, final);
    tmp.forget();
    out.push(final);
  }
  return out;
}

export async function writeQcow2(staged: StagedImport, dir: string): Promise<string[]> {
  await ensureDir(dir);
  const out: string[] = [];
  for (const d of staged.disks) {
    const final = join(dir, diskFileName(staged, d.index, 'qcow2'));
    const tmp = tempNameFor(final, staged.id);
    await convertRawToQcow2(d.path, tmp.path);
    await placeFile(tmp.path, final);
    tmp.forget();
    out.push(final);
  }
  return out;
}

/** The received machine, re-described for streamOptimized disks named after the instance. */
export function machineForOva(staged: StagedImport, files: OvfFile[]): MachineDescription {
  const m = staged.machine;
  return {
    ...m,
    name: staged.instanceName,
    ganeti: m.ganeti ? { ...m.ganeti, name: staged.instanceName } : undefined,
    files,
    disks: staged.disks.map((d, i) => ({
      ...m.disks[d.index]!,
      fileRef: files[i]!.id,
      capacity: d.capacity,
      populatedSize: d.dataBytes,
      format: 'vmdk-streamOptimized',
      formatUri: FORMAT_URI.streamOptimized,
    })),
  };
}

export async function writeOvaFile(staged: StagedImport, file: string): Promise<string> {
  const final = file;
  await ensureDir(join(final, '..'));
  const tmp = tempNameFor(final, staged.id);
  const descriptorName = `${staged.instanceName}.ovf`;
  await writeOva({
    descriptorName,
    descriptor: (files: OvfFile[]) => buildDescriptor(machineForOva(staged, files)),
    files: staged.disks.map((d) => ({
      id: `file${d.index + 1}`,
      href: `${staged.instanceName}-disk${d.index + 1}.vmdk`,
      content: writeStreamOptimized({ capacity: d.capacity, chunks: readRawChunks(d.path, d.capacity) }),
    })),
    mode: 'file',
    output: tmp.path,
  });
  await placeFile(tmp.path, final);
  tmp.forget();
  return final;
}

export async function writeDevice(staged: StagedImport, device: string, logger: Logger): Promise<string> {
  const d = staged.disks[0]!;
  if (staged.disks.length > 1)
    logger.warn(`--device takes disk 0 only; ${staged.disks.length - 1} other disk(s) not written to ${device}`);
  if (d.direct) {
    logger.debug(`disk 0 was decoded onto ${device} as it arrived (${d.dataBytes} data bytes)`);
    return device;
  }
  await copyRawInto(d.path, d.capacity, await createDeviceSink(device, d.capacity));
  logger.debug(`wrote ${d.dataBytes} data bytes of disk 0 to ${device} (${basename(d.path)})`);
  return device;
}

export async function writeOutputs(
  staged: StagedImport,
  outputs: OutputSpec[],
  opts: OutputOptions,
): Promise<string[]> {
  const written: string[] = [];
  for (const o of outputs) {
    switch (o.kind) {
      case 'ganeti-export':
        written.push(await writeGanetiExport(staged, o.dir, opts));
        break;
      case 'raw':
        written.push(...(await writeRaw(staged, o.dir)));
        break;
      case 'qcow2':
        written.push(...(await writeQcow2(staged, o.dir)));
        break;
      case 'ova':
        written.push(await writeOvaFile(staged, o.file));
        break;
      case 'device':
        written.push(await writeDevice(staged, o.path, opts.logger));
        break;
    }
    opts.logger.debug(`wrote ${written[written.length - 1]}`);
  }
  return written;
}
