/**
 * KernelModules: which module files an initramfs must carry, in the order
 * busybox `insmod` has to load them. The answer comes from the kernel's own
 * index files in /lib/modules/RELEASE, never from the running kernel:
 *
 *   modules.dep      "path.ko: dep1.ko dep2.ko" (dependencies, deepest last)
 *   modules.softdep  "softdep ext4 pre: crypto-crc32c" (ext4 asks the crypto
 *                    API for crc32c at mount time, which a modprobe-less
 *                    initramfs cannot satisfy on demand)
 *   modules.alias    "alias crypto-crc32c crc32c_generic" (softdep targets
 *                    are often aliases)
 *   modules.builtin  modules compiled into the kernel: nothing to carry
 *
 * Module names compare with '-' and '_' as the same character, as the kernel
 * does (guest/module-names.ts, the rule inspection uses too). The resolution is pure apart from reading those files.
 *
 *   const km = await KernelModules.load('/lib/modules', '6.1.0-56-amd64');
 *   const plan = km.resolve(['virtio_blk', 'ext4']);
 *   plan.files     // ['kernel/drivers/virtio/virtio.ko', …, 'kernel/fs/ext4/ext4.ko']
 *   plan.builtin   // names that need no file
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { moduleName } from '../guest/module-names.js';
import { P2vError } from '../lib/errors.js';

export interface ModulePlan {
  /** Module files relative to the release dir, each after its dependencies. */
  files: string[];
  /** Requested names that are built into the kernel. */
  builtin: string[];
  /**
   * Files reached only through soft dependencies (crc32c-intel for ext4…):
   * failing to load one is normal (a CPU without the instruction) and the
   * initramfs says nothing about it.
   */
  optional: string[];
}

export class KernelModules {
  private readonly deps = new Map<string, { path: string; deps: string[] }>();
  private readonly softPre = new Map<string, string[]>();
  private readonly aliases = new Map<string, string[]>();
  private readonly builtins = new Set<string>();

  private constructor(readonly releaseDir: string) {}

  /** Read the index files of `release` under `modulesDir` (usually /lib/modules). */
  static async load(modulesDir: string, release: string): Promise<KernelModules> {
    const dir = join(modulesDir, release);
    const km = new KernelModules(dir);
    let dep: string;
    try {
      dep = await readFile(join(dir, 'modules.dep'), 'utf8');
    } catch (e) {
      throw new P2vError(
        'IO',
        `no kernel modules for ${release} in ${modulesDir} (cannot read ${join(dir, 'modules.dep')})`,
        {
          hint: `install the kernel's package (apt-get install linux-image-${release}) or pass --modules-dir`,
          cause: e,
        },
      );
    }
    const optional = async (name: string) => readFile(join(dir, name), 'utf8').catch(() => '');
    km.parse(
      dep,
      await optional('modules.softdep'),
      await optional('modules.alias'),
      await optional('modules.builtin'),
    );
    return km;
  }

  /** Build from the files' text (for tests and for callers that have them). */
  static fromText(releaseDir: string, dep: string, softdep = '', alias = '', builtin = ''): KernelModules {
    const km = new KernelModules(releaseDir);
    km.parse(dep, softdep, alias, builtin);
    return km;
  }

  private parse(dep: string, softdep: string, alias: string, builtin: string): void {
    for (const line of dep.split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const path = line.slice(0, colon).trim();
      const deps = line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      this.deps.set(moduleName(path), { path, deps });
    }
    for (const line of softdep.split('\n')) {
      const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
      if (!m) continue;
      // "pre: a b post: c": only pre-dependencies must be loaded first.
      const pre = /pre:\s*(.*?)(?:\s+post:|$)/.exec(m[2]!);
      if (pre) this.softPre.set(moduleName(m[1]!), pre[1]!.split(/\s+/).filter(Boolean));
    }
    for (const line of alias.split('\n')) {
      const m = /^alias\s+(\S+)\s+(\S+)/.exec(line.trim());
      if (!m) continue;
      const list = this.aliases.get(m[1]!) ?? [];
      list.push(moduleName(m[2]!));
      this.aliases.set(m[1]!, list);
    }
    for (const line of builtin.split('\n')) if (line.trim()) this.builtins.add(moduleName(line.trim()));
  }

  has(name: string): boolean {
    const n = moduleName(name);
    return this.deps.has(n) || this.builtins.has(n);
  }

  /**
   * The files to load for `names`, dependencies first, each once. An unknown
   * name is an error (a typo must not give an initramfs that cannot find its
   * disk); an unknown soft dependency is skipped, as modprobe does.
   */
  resolve(names: readonly string[]): ModulePlan {
    const files: string[] = [];
    const builtin: string[] = [];
    const optional = new Set<string>();
    const done = new Set<string>();
    // `soft`: reached through a soft dependency, so loading it may fail.
    const visit = (name: string, required: boolean, chain: string[], soft = false): void => {
      const n = moduleName(name);
      if (done.has(n)) {
        if (!soft) {
          const e = this.deps.get(n);
          if (e) optional.delete(e.path);
        }
        return;
      }
      if (chain.includes(n)) return; // dependency cycle: modules.dep never has one, but never loop
      const entry = this.deps.get(n);
      if (!entry) {
        if (this.builtins.has(n)) {
          done.add(n);
          if (required) builtin.push(n);
          return;
        }
        const targets = this.aliases.get(name);
        if (targets) {
          for (const t of targets) visit(t, false, [...chain, n], true);
          done.add(n);
          return;
        }
        if (!required) return;
        throw new P2vError('USAGE', `kernel module ${name} is not in ${this.releaseDir}/modules.dep`, {
          hint: 'check the name with `modinfo -k RELEASE NAME`, or drop it from --add-module',
        });
      }
      for (const pre of this.softPre.get(n) ?? []) visit(pre, false, [...chain, n], true);
      // modules.dep lists the deepest dependency last: load from the end.
      for (const d of [...entry.deps].reverse()) visit(d, true, [...chain, n], soft);
      if (!done.has(n)) {
        done.add(n);
        files.push(entry.path);
        if (soft) optional.add(entry.path);
      }
    };
    for (const name of names) visit(name, true, []);
    return { files, builtin, optional: files.filter((f) => optional.has(f)) };
  }
}
