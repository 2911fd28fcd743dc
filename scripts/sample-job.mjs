// The main job on the built-in sample: build a small physical-looking disk,
// run `p2v-export --ovf | p2v-import` exactly as a user would, and print a
// report whose byte counts are read back from the files on disk.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { execa } from 'execa';
import { buildSampleDisk } from '../dist/lib/sample-disk.js';

const root = resolve(new URL('..', import.meta.url).pathname);
const out = resolve(process.env.P2V_SAMPLE_DIR ?? join(root, 'sample-output'));
const t = () => performance.now() / 1000;

async function sha256(file) {
  const h = createHash('sha256');
  for await (const b of createReadStream(file)) h.update(b);
  return h.digest('hex');
}

async function walk(dir) {
  const files = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) files.push(...(await walk(p)));
    else files.push(p);
  }
  return files;
}

await rm(out, { recursive: true, force: true });
await mkdir(join(out, 'staging'), { recursive: true });
await mkdir(join(out, 'ganeti-export'), { recursive: true });

let t0 = t();
const sample = await buildSampleDisk({
  path: join(out, 'source.img'),
  sizeMiB: 512,
  swapMiB: 64,
  fillerMiB: 16,
  deletedFileMiB: 64,
  hostname: 'oldhost',
});
const buildSecs = t() - t0;
const before = await sha256(sample.path);

const bin = (n) => `node ${join(root, 'bin', n + '.js')}`;
const pipeline =
  `${bin('p2v-export')} --disk ${sample.path} --hypervisor kvm --hostname sample-vm --ip 192.0.2.50/24 --gateway 192.0.2.1 ` +
  `--cpus 1 --memory 512M --ovf --report ${out}/export-report.json` +
  ` | ${bin('p2v-import')} --staging ${out}/staging --ganeti-export ${out}/ganeti-export --ova ${out}/sample-vm.ova`;
console.log(`$ p2v-export … --ovf | p2v-import …\n`);
t0 = t();
const piped = await execa('bash', ['-o', 'pipefail', '-c', pipeline], { stdio: 'inherit', reject: false });
if (piped.exitCode !== 0) {
  console.error(`sample job: the pipeline failed (exit status ${piped.exitCode}); the messages above say why`);
  process.exit(1);
}
const pipeSecs = t() - t0;

const after = await sha256(sample.path);
if (after !== before) {
  console.error('sample job: the source disk changed: this must never happen');
  process.exit(1);
}
const report = JSON.parse(await readFile(join(out, 'export-report.json'), 'utf8'));

const lines = [];
lines.push('', '=== ganeti-p2v sample job ===');
lines.push(
  `source disk      ${relative(root, sample.path)}: ${sample.size} bytes, built in ${buildSecs.toFixed(1)} s; sha256 unchanged after export (${before.slice(0, 16)}…)`,
);
const os = report.inspection.os;
lines.push(
  `inspected        ${os ? `${os.prettyName}, root on disk ${os.root.disk} partition ${os.root.partition}, kernel ${os.kernels.map((k) => k.version).join(' ')}, ${os.initramfsTool}, ${os.bootloader}, ${os.networkConfig.join('/')}` : 'no OS'}`,
);
for (const p of report.inspection.disks[0].partitions)
  lines.push(
    `                 partition ${p.number}: ${p.fsType ?? '?'} ${p.fsUuid ?? ''} ${p.mountpoint ?? ''} (${p.size} bytes)`,
  );
for (const f of report.fixups) for (const s of f.summary) lines.push(`fixup            ${f.fixup}: ${s}`);
for (const d of report.disks)
  lines.push(`read             ${d.dataBytes} data bytes of ${d.capacity} (holes and free space skipped)`);
lines.push(`sent             ${report.bytesSent} bytes of OVA stream`);
lines.push(
  `steps            ${report.steps.map((s) => `${s.step} ${s.seconds.toFixed(1)}s`).join(', ')}; whole pipeline ${pipeSecs.toFixed(1)} s`,
);
lines.push('written:');
for (const f of (await walk(out)).sort()) {
  if (f === sample.path || f.endsWith('.json')) continue;
  const s = await stat(f);
  lines.push(
    `  ${relative(root, f).padEnd(56)} ${String(s.size).padStart(12)} bytes (${String(s.blocks * 512).padStart(11)} allocated)`,
  );
}
lines.push(
  '',
  `Import into Ganeti:  gnt-backup import -n NODE --src-node NODE --src-dir ${out}/ganeti-export/sample-vm -t file sample-vm`,
);
console.log(lines.join('\n'));
