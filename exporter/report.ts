/** The human summary printed at the end of an export (the JSON form is the ExportReport itself). */
import { formatBytes } from '../lib/progress.js';
import type { ExportReport } from './export.js';

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
  const changes = r.fixups.flatMap((f) => f.summary.map((s) => `${f.fixup}: ${s}`));
  lines.push(`  fixups:    ${changes.length ? changes.length + ' change(s)' : 'none'}`);
  for (const c of changes) lines.push(`             - ${c}`);
  if (r.sparsify) for (const w of r.sparsify.warnings ?? []) lines.push(`  warning:   ${w}`);
  lines.push(`  sent:      ${r.bytesSent} bytes (${formatBytes(r.bytesSent)})${r.output ? ' to ' + r.output : ''}`);
  lines.push(`  steps:     ${r.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}s`).join(', ')}`);
  return lines.join('\n') + '\n';
}
