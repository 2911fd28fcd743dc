/**
 * The outputs one run can write from a committed staged import, in the
 * order the CLI lists them (Ganeti export, OVA, raw, qcow2, device). Each is
 * built in a private work directory inside its output directory and put in
 * place only when complete (place.ts says how, and why that is race-free).
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Logger } from '../lib/log.js';
import { P2vError } from '../lib/errors.js';
import { buildDescriptor } from '../ovf/descriptor/index.js';
import { writeOva } from '../ovf/ova/index.js';
import { FORMAT_URI, type MachineDescription, type OvfFile } from '../ovf/types.js';
import { writeStreamOptimized } from '../ovf/vmdk/index.js';
import { copyRawInto, createDeviceSink, CREATE_NEW, readRawChunks } from './disk-sink.js';
import { fsError, fsStep, isErrno } from './fs-errors.js';
import { writeGanetiExport, type GanetiExportOptions } from './ganeti-export.js';
import { closeOutputPlaces, diskFileName, estimateOutputBytes, openOutputPlaces, outputDir } from './output-plan.js';
import {
  checkNameFree,
  placeFile,
  placeRawDisk,
  unplace,
  withWorkDir,
  type OutputPlace,
  type PlacedFile,
  type WorkDir,
} from './place.js';
import { convertRawToQcow2 } from './qemu-img.js';
import type { OutputSpec, StagedImport } from './types.js';

export interface OutputOptions extends GanetiExportOptions {
  logger: Logger;
  /** The output directories opened at start-up (openOutputPlaces); opened here when not given. */
  places?: Map<string, OutputPlace>;
}

/** What the staged disks hold, for the space figures of an error. */
function stagedBytes(staged: StagedImport): { data: number }[] {
  return staged.disks.map((d) => ({ data: d.dataBytes }));
}

/**
 * Build one file per disk in a work dir of `place`, then put them all in
 * place; if one cannot be placed, the ones already placed are taken back.
 */
async function writeDiskFiles(
  staged: StagedImport,
  place: OutputPlace,
  ext: string,
  needed: number,
  build: (work: WorkDir, d: StagedImport['disks'][number], name: string, shown: string) => Promise<void>,
): Promise<string[]> {
  const names = staged.disks.map((d) => diskFileName(staged.instanceName, d.index, ext));
  // Refuse a taken name before the work of building it.
  for (const n of names) await checkNameFree(place, n);
  return withWorkDir(place, needed, async (work) => {
    for (const [i, d] of staged.disks.entries()) await build(work, d, names[i]!, `${place.dir}/${names[i]!}`);
    const placed: PlacedFile[] = [];
    try {
      for (const n of names) placed.push(await placeFile(work, n, place, n));
    } catch (e) {
      for (const p of placed) await unplace(place, p);
      throw e;
    }
    await place.sync();
    return placed.map((p) => p.path);
  });
}

export async function writeRaw(staged: StagedImport, place: OutputPlace): Promise<string[]> {
  const needed = estimateOutputBytes({ kind: 'raw', dir: place.dir }, stagedBytes(staged), false);
  return writeDiskFiles(staged, place, 'raw', needed, (work, d, name, shown) =>
    placeRawDisk(d.path, d.capacity, work.at(name), { path: shown, place: place.dir }),
  );
}

export async function writeQcow2(staged: StagedImport, place: OutputPlace): Promise<string[]> {
  const needed = estimateOutputBytes({ kind: 'qcow2', dir: place.dir }, stagedBytes(staged), false);
  return writeDiskFiles(staged, place, 'qcow2', needed, async (work, d, name, shown) => {
    // Made here, exclusively; qemu-img only opens what we made.
    await fsStep({ path: shown, action: 'create' }, async () => (await open(work.at(name), CREATE_NEW, 0o644)).close());
    await convertRawToQcow2(d.path, work.fd, name, shown);
  });
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

export async function writeOvaFile(staged: StagedImport, place: OutputPlace, fileName: string): Promise<string> {
  const shown = `${place.dir}/${fileName}`;
  await checkNameFree(place, fileName);
  // The compressed size is not known before writing: no "needed" figure.
  return withWorkDir(place, undefined, async (work) => {
    const path = work.at(fileName);
    await fsStep({ path: shown, action: 'create' }, async () => (await open(path, CREATE_NEW, 0o644)).close());
    const descriptorName = `${staged.instanceName}.ovf`;
    try {
      // The writer reopens the file we made: inside our 0700 work dir, reached through its handle.
      await writeOva({
        descriptorName,
        descriptor: (files: OvfFile[]) => buildDescriptor(machineForOva(staged, files)),
        files: staged.disks.map((d) => ({
          id: `file${d.index + 1}`,
          href: `${staged.instanceName}-disk${d.index + 1}.vmdk`,
          content: writeStreamOptimized({ capacity: d.capacity, chunks: readRawChunks(d.path, d.capacity) }),
        })),
        mode: 'file',
        output: path,
      });
    } catch (e) {
      // The writer names the /proc path it was given; say it with the output's name.
      const cause = e instanceof P2vError && e.code === 'IO' && isErrno(e.cause) ? e.cause : e;
      throw fsError(cause, { path: shown, action: 'write' });
    }
    const placed = await placeFile(work, fileName, place, fileName);
    await place.sync();
    return placed.path;
  });
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
  const places = opts.places ?? (await openOutputPlaces(outputs));
  try {
    const written: string[] = [];
    for (const o of outputs) {
      const dir = outputDir(o);
      const place = dir === undefined ? undefined : places.get(dir);
      if (dir !== undefined && !place) throw new Error(`output directory ${dir} was not opened`);
      switch (o.kind) {
        case 'ganeti-export':
          written.push(await writeGanetiExport(staged, place!, opts));
          break;
        case 'raw':
          written.push(...(await writeRaw(staged, place!)));
          break;
        case 'qcow2':
          written.push(...(await writeQcow2(staged, place!)));
          break;
        case 'ova':
          written.push(await writeOvaFile(staged, place!, basename(o.file)));
          break;
        case 'device':
          written.push(await writeDevice(staged, o.path, opts.logger));
          break;
      }
      opts.logger.debug(`wrote ${written[written.length - 1]}`);
    }
    return written;
  } finally {
    if (!opts.places) await closeOutputPlaces(places);
  }
}
