/**
 * The export report: the human summary printed at the end of an export, and
 * the JSON form (the ExportReport itself) that --report FILE writes. FILE is
 * created as -o creates its file: exclusively (never through a symlink, never
 * over another file), an existing FILE refused before any work unless --force.
 */
import { lstat } from 'node:fs/promises';
import { P2vError } from '../lib/errors.js';
import { formatBytes } from '../lib/units.js';
import type { ExportReport } from './export.js';
import { createExclusive, fileError } from './outputs/exclusive-file.js';

function exists(path: string): P2vError {
  return new P2vError('USAGE', `${path} already exists: not overwritten`, {
    hint: 'choose another name for --report, or add --force to replace it',
  });
}

/** Before any work: refuse a --report FILE that exists (unless `force`) or is a directory. */
export async function checkReportFile(path: string, force: boolean | undefined): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory())
    throw new P2vError('USAGE', `--report ${path} is a directory`, { hint: 'name the JSON file to write' });
  if (st && !force) throw exists(path);
}

/** Write the report as JSON to a file created exclusively (replacing the entry, not its target, with `force`). */
export async function writeReportFile(path: string, report: ExportReport, force: boolean | undefined): Promise<void> {
  const fh = await createExclusive(path, { force, exists: () => exists(path), option: '--report' });
  try {
    await fh.writeFile(JSON.stringify(report, null, 2) + '\n');
  } catch (e) {
    throw fileError(path, e, '--report');
  } finally {
    await fh.close();
  }
}

export function formatReport(r: ExportReport): string {
  const lines: string[] = ['', 'p2v-export report'];
  const os = r.inspection.os;
  lines.push(
    `  guest:     ${os ? `${os.prettyName} (root on disk ${os.root.disk} partition ${os.root.partition})` : 'no operating system found (data disks)'}`,
  );
  for (const d of r.disks) {
    lines.push(
      `  disk:      ${d.source}: ${formatBytes(d.capacity)}, ${formatBytes(d.dataBytes)} data read, ${formatBytes(d.vmdkBytes)} as VMDK`,
    );
  }
  for (const f of r.fit ?? [])
    lines.push(`  fitted:    ${f.lines[0]}`, ...f.lines.slice(1).map((l) => `           ${l}`));
  const changes = r.fixups.flatMap((f) => f.summary.map((s) => `${f.fixup}: ${s}`));
  if (r.boot?.firmware) lines.push(`  boots:     ${r.boot.reason}`);
  lines.push(`  fixups:    ${changes.length ? changes.length + ' change(s)' : 'none'}`);
  for (const c of changes) lines.push(`             - ${c}`);
  if (r.sparsify) for (const w of r.sparsify.warnings ?? []) lines.push(`  warning:   ${w}`);
  lines.push(`  sent:      ${r.bytesSent} bytes (${formatBytes(r.bytesSent)})${r.output ? ' to ' + r.output : ''}`);
  lines.push(`  steps:     ${r.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}s`).join(', ')}`);
  return lines.join('\n') + '\n';
}
