/**
 * The fixup runner: plans every fixup that applies, in a fixed order, against
 * one view of the guest (so fixups that touch the same file compose), prints
 * the plan as unified diffs for --dry-run, applies it, and summarises it for
 * the OVF AnnotationSection.
 *
 * Applying writes files in place, so a changed file keeps its mode, owner,
 * ACLs and SELinux label; a new file gets the planned mode and root ownership.
 * Each write first checks that the file still holds what was planned from.
 * Chroot commands run with /proc, /sys and /dev mounted into the guest, and
 * those mounts are undone (also on error or signal) before apply returns.
 */
import {
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
  chmod,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { P2vError } from '../lib/errors.js';
import { withCleanup, type ExitAction, type ExitHandle } from '../lib/exit-actions.js';
import { quoteArgv, run } from '../lib/run.js';
import { blockDevices } from './block-devices.js';
import { decodeText, resolveGuestPath } from '../guest/files.js';
import { GuestFiles } from './guest-files.js';
import { hostname } from './hostname.js';
import { initramfsDrivers } from './initramfs-drivers.js';
import { ipConfig } from './ip-config.js';
import { networkIdentity } from './network-identity.js';
import { serialConsole } from './serial-console.js';
import { selinuxRelabel } from './selinux-relabel.js';
import { runHook, siteHooks } from './site-hooks.js';
import { espOf, uefiFallback } from './uefi-fallback.js';
import { biosBoot } from './bios-boot.js';
import { createHash } from 'node:crypto';
import { runText } from '../lib/run.js';
import { printable } from '../lib/text.js';
import type { Change, Fixup, FixupContext, FixupInput, HypervisorProfile, PlannedFixup } from './types.js';

/**
 * In order: configuration first, then the initramfs rebuild (which copies
 * fstab, resume and modules settings into the image), the SELinux relabel
 * request once every created file is known, site hooks last so they see and
 * may amend everything.
 */
export const FIXUPS: readonly Fixup[] = [
  blockDevices,
  serialConsole,
  networkIdentity,
  hostname,
  ipConfig,
  uefiFallback,
  biosBoot,
  initramfsDrivers,
  selinuxRelabel,
  siteHooks,
];

export interface FixupReport {
  hypervisor: HypervisorProfile;
  /** The fixups applied, with what each changed. */
  fixups: PlannedFixup[];
  /** Number of changes applied. */
  changes: number;
}

/** Plan the fixups that apply to ctx.options; only those with changes are returned. */
export async function planFixups(input: FixupInput, fixups: readonly Fixup[] = FIXUPS): Promise<PlannedFixup[]> {
  // One view for the whole run, on the context: each plan sees the ones before it.
  const files = new GuestFiles(input.root);
  const ctx: FixupContext = { ...input, files };
  const out: PlannedFixup[] = [];
  for (const f of fixups) {
    if (!f.appliesTo(ctx.options)) continue;
    const p = await f.plan(ctx);
    for (const c of p.changes) await files.record(c);
    if (p.changes.length > 0) out.push(p);
  }
  return out;
}

const changedSincePlan = (path: string) =>
  new P2vError('FIXUP', `${path} in the guest changed after the fixups were planned`, {
    hint: 'nothing else may write to the guest during the export: run it again',
  });

async function currentText(host: string): Promise<ReturnType<typeof decodeText> | null> {
  try {
    if (!(await stat(host)).isFile()) return null;
    return decodeText(await readFile(host));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function applyWrite(root: string, c: Extract<Change, { kind: 'write' }>): Promise<string> {
  const host = await resolveGuestPath(root, c.path);
  const current = await currentText(host);
  if ((current?.text ?? null) !== c.before) throw changedSincePlan(c.path);
  if (current !== null) {
    await writeFile(host, c.after, current.encoding);
    return `changed ${c.path}`;
  }
  await mkdir(dirname(host), { recursive: true, mode: 0o755 });
  const mode = c.mode ?? 0o644;
  await writeFile(host, c.after, { mode, flag: 'wx' });
  await chmod(host, mode);
  return `created ${c.path}`;
}

async function applyRemove(root: string, c: Extract<Change, { kind: 'remove' }>): Promise<string> {
  const host = await resolveGuestPath(root, c.path, false);
  const st = await lstat(host).catch(() => null);
  if (!st?.isFile() || decodeText(await readFile(host)).text !== c.before) throw changedSincePlan(c.path);
  await unlink(host);
  return `removed ${c.path}`;
}

async function applySymlink(root: string, c: Extract<Change, { kind: 'symlink' }>): Promise<string> {
  const host = await resolveGuestPath(root, c.path, false);
  const st = await lstat(host).catch(() => null);
  if (st) {
    if (st.isSymbolicLink() && (await readlink(host)) === c.target) return `kept ${c.path} -> ${c.target}`;
    throw changedSincePlan(c.path);
  }
  await mkdir(dirname(host), { recursive: true, mode: 0o755 });
  await symlink(c.target, host);
  return `linked ${c.path} -> ${c.target}`;
}

type Scope = { onExit: (label: string, action: ExitAction) => ExitHandle };

/** Mount /proc, /sys and /dev into the guest for chroot commands, once per apply. */
async function mountApi(root: string, scope: Scope): Promise<void> {
  const mounts: [string, string[]][] = [
    ['/proc', ['-t', 'proc', 'proc']],
    ['/sys', ['-t', 'sysfs', 'sysfs']],
    ['/dev', ['--bind', '/dev']],
  ];
  for (const [guest, args] of mounts) {
    const host = await resolveGuestPath(root, guest);
    await mkdir(host, { recursive: true, mode: 0o755 });
    await run('mount', [...args, host], { what: `mounting ${guest} in the guest` });
    scope.onExit(`umount ${host}`, async () => {
      await run('umount', [host], { what: `unmounting ${guest} from the guest` }).catch(() =>
        run('umount', ['-l', host], { what: `unmounting ${guest} from the guest` }),
      );
    });
  }
}

async function applyChroot(ctx: FixupInput, c: Extract<Change, { kind: 'chroot' }>): Promise<string> {
  const r = await run('chroot', [ctx.root, ...c.argv], {
    what: `${c.reason}: rebuilding it in the guest`,
    // The host's environment (TMPDIR, locale, PATH) means nothing inside the guest.
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', LC_ALL: 'C', HOME: '/root', TERM: 'dumb' },
    extendEnv: false,
    all: true,
  });
  for (const line of String(r.all ?? '').split('\n')) if (line.trim()) ctx.log.debug(`  | ${line}`);
  return `ran in the guest: ${quoteArgv(c.argv)} (${c.reason})`;
}

async function applyEspCopy(ctx: FixupInput, c: Extract<Change, { kind: 'esp-copy' }>): Promise<string> {
  const esp = espOf(ctx);
  const data = await esp.read(c.from);
  if (data === null || createHash('sha256').update(data).digest('hex') !== c.sha256) throw changedSincePlan(c.from);
  await esp.write(c.to, data);
  return `ESP: copied ${printable(c.from)} -> ${printable(c.to)}`;
}

/**
 * GRUB's boot.img and core.img from guest dir `c.dir` onto exported disk
 * `c.disk`, by the guest's grub-bios-setup in a chroot. The disk is a loop
 * device over the whole overlay file ((hd0) in the device map; GRUB reads
 * the partition table itself), and the filesystem holding `c.dir` is the
 * loop device it is mounted from ((hd1)): grub-bios-setup insists on naming
 * that one too.
 */
async function applyBiosSetup(ctx: FixupInput, c: Extract<Change, { kind: 'bios-setup' }>, scope: Scope) {
  const file = ctx.diskFiles?.[c.disk];
  const room = ctx.inspection.boot?.biosBoot?.size;
  if (!file || room === undefined)
    throw new P2vError('FIXUP', 'bios-boot: the boot disk is not reachable', {
      hint: 'this is a bug: the supervisor must pass the exported disks as files',
    });
  const dir = await resolveGuestPath(ctx.root, c.dir);
  const core = await stat(join(dir, 'core.img'));
  if (core.size > room)
    throw new P2vError(
      'FIXUP',
      `bios-boot: GRUB's core image is ${core.size} bytes and its place on disk ${c.disk} holds ${room}`,
      { hint: 'export with --boot uefi, or make room for GRUB on the source (a 1 MiB BIOS boot partition)' },
    );
  const disk = await runText('losetup', ['--find', '--show', file], { what: `attaching disk ${c.disk} for GRUB` });
  const detach = scope.onExit(`detach ${disk}`, () => run('losetup', ['-d', disk]).then(() => undefined));
  const fsDevice = await runText('findmnt', ['-n', '-o', 'SOURCE', '--target', dir], {
    what: `finding the device of ${c.dir}`,
  });
  const map = join(dir, 'p2v-device.map');
  await rm(map, { force: true });
  // 'wx': a file we make, never one a link in the guest points at.
  await writeFile(map, `(hd0) ${disk}\n(hd1) ${fsDevice}\n`, { flag: 'wx', mode: 0o644 });
  try {
    await applyChroot(ctx, {
      kind: 'chroot',
      argv: [c.setup, '-d', c.dir, '-m', `${c.dir}/p2v-device.map`, disk],
      reason: c.reason,
    });
  } finally {
    await rm(map, { force: true });
    await detach.run();
  }
  return `installed GRUB for BIOS on disk ${c.disk} (${c.reason})`;
}

interface ApplyState {
  apiMounted: boolean;
  inspectionFile: string | undefined;
}

/** Apply one change; returns the line to log. */
async function applyChange(
  ctx: FixupInput,
  p: PlannedFixup,
  c: Change,
  scope: Scope,
  state: ApplyState,
): Promise<string> {
  switch (c.kind) {
    case 'write':
      return await applyWrite(ctx.root, c);
    case 'remove':
      return await applyRemove(ctx.root, c);
    case 'symlink':
      return await applySymlink(ctx.root, c);
    case 'chroot':
      if (!state.apiMounted) {
        await mountApi(ctx.root, scope);
        state.apiMounted = true;
      }
      return await applyChroot(ctx, c);
    case 'esp-copy':
      return await applyEspCopy(ctx, c);
    case 'bios-setup':
      if (!state.apiMounted) {
        await mountApi(ctx.root, scope);
        state.apiMounted = true;
      }
      return await applyBiosSetup(ctx, c, scope);
    case 'hook':
      if (state.inspectionFile === undefined) {
        const dir = await mkdtemp(join(tmpdir(), 'p2v-hooks-'));
        scope.onExit(`rm -r ${dir}`, () => rm(dir, { recursive: true, force: true }));
        state.inspectionFile = join(dir, 'inspection.json');
        await writeFile(state.inspectionFile, JSON.stringify(ctx.inspection, null, 2) + '\n', { mode: 0o600 });
      }
      ctx.log.info(`${p.fixup}: running ${c.path}`);
      await runHook(
        c.path,
        { P2V_GUEST_ROOT: ctx.root, P2V_INSPECTION: state.inspectionFile, P2V_HYPERVISOR: ctx.options.hypervisor },
        ctx.log,
      );
      return `ran ${basename(c.path)}`;
  }
}

/** Apply planned fixups to the guest. Every change is logged with one line. */
export async function applyFixups(ctx: FixupInput, planned: readonly PlannedFixup[]): Promise<FixupReport> {
  let count = 0;
  await withCleanup(async (scope) => {
    const state: ApplyState = { apiMounted: false, inspectionFile: undefined };
    for (const p of planned) {
      for (const c of p.changes) {
        let line: string;
        try {
          line = await applyChange(ctx, p, c, scope, state);
        } catch (e) {
          if (e instanceof P2vError) throw e;
          const where = 'path' in c ? ` to ${c.path}` : '';
          throw new P2vError('IO', `${p.fixup}: cannot apply a change${where}: ${(e as Error).message}`, {
            hint: 'check that the guest filesystem is mounted read-write and has free space',
            cause: e,
          });
        }
        ctx.log.info(`${p.fixup}: ${line}`);
        count++;
      }
    }
  });
  return { hypervisor: ctx.options.hypervisor, fixups: [...planned], changes: count };
}

function patch(oldName: string, newName: string, before: string, after: string, newHeader?: string): string {
  const p = createTwoFilesPatch(oldName, newName, before, after, undefined, newHeader, { context: 3 });
  return p
    .split('\n')
    .filter((l) => !l.startsWith('Index: ') && !/^=+$/.test(l))
    .join('\n');
}

/** --dry-run output: a unified diff per file change, one line per command. */
export function renderDryRun(planned: readonly PlannedFixup[]): string {
  const out: string[] = [];
  for (const p of planned) {
    out.push(`# ${p.fixup}`);
    for (const c of p.changes) {
      switch (c.kind) {
        case 'write':
          if (c.before === null) {
            const mode = `new file, mode ${(c.mode ?? 0o644).toString(8).padStart(4, '0')}`;
            out.push(patch('/dev/null', c.path, '', c.after, mode).trimEnd());
          } else {
            out.push(patch(c.path, c.path, c.before, c.after).trimEnd());
          }
          break;
        case 'remove':
          out.push(patch(c.path, '/dev/null', c.before, '').trimEnd());
          break;
        case 'symlink':
          out.push(`symlink ${c.path} -> ${c.target}`);
          break;
        case 'chroot':
          out.push(`chroot: ${quoteArgv(c.argv)}  # ${c.reason}`);
          break;
        case 'hook':
          out.push(`hook: ${c.path}  # ${c.reason}`);
          break;
        case 'esp-copy':
          out.push(`ESP: copy ${printable(c.from)} -> ${printable(c.to)}  # ${c.reason}`);
          break;
        case 'bios-setup':
          out.push(`bios-setup: ${c.setup} on disk ${c.disk} from ${c.dir}  # ${c.reason}`);
          break;
      }
    }
  }
  return out.length > 0 ? out.join('\n') + '\n' : 'no fixups to apply\n';
}

/** Most lines an annotation lists before summarising the rest. */
const ANNOTATION_LINES = 40;

/** Short text for the OVF AnnotationSection: what the fixups changed. */
export function annotationFor(report: FixupReport | readonly PlannedFixup[]): string {
  const fixups = 'fixups' in report ? report.fixups : report;
  const all = fixups.flatMap((f) => f.summary.map((s) => `${f.fixup}: ${s}`));
  if (all.length === 0) return 'Exported by ganeti-p2v without guest changes.';
  const head =
    'hypervisor' in report
      ? `Exported by ganeti-p2v for ${report.hypervisor}; guest changes:`
      : 'Exported by ganeti-p2v; guest changes:';
  const shown = all.slice(0, ANNOTATION_LINES);
  if (all.length > shown.length) shown.push(`… and ${all.length - shown.length} more`);
  return [head, ...shown].join('\n');
}
