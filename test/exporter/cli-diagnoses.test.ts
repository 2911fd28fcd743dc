// The first mistakes a user makes with p2v-export, each with its own one-line diagnosis and exit
// status, said before any work starts (the whole of stderr is the message: no "overlay…" line,
// so no nbdkit, FUSE or mount ever ran).
import { describe, expect, it } from 'vitest';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cliArgv } from '../helpers/cli.js';
import { needPrograms, needRoot } from '../helpers/programs.js';
import { withTmpDir } from '../helpers/tmp.js';

const DISK_HINT = 'p2v-export: hint: name a block device (/dev/sda) or a disk image file\n';
const NAME_HINT =
  'p2v-export: hint: use letters, digits and hyphens, with dots between labels (e.g. web1 or web1.example.org)\n';

async function exporter(args: string[], opts: { asNobody?: boolean; fds?: string } = {}) {
  const [node, script] = cliArgv('p2v-export');
  const argv = [node!, script!, ...args];
  const cmd = opts.asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv;
  const r = await execa(cmd[0]!, cmd.slice(1), { reject: false, stdin: 'ignore', stdout: 'pipe', timeout: 60_000 });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) + '\n' };
}

describe('p2v-export diagnoses', () => {
  it('says "must run as root" first, before any FUSE or nbdkit error', async () => {
    needRoot();
    await needPrograms('setpriv');
    await withTmpDir('diag', async (dir) => {
      const img = join(dir, 'disk.img');
      await writeFile(img, Buffer.alloc(1 << 20, 1));
      for (const args of [
        ['--disk', img, '--ovf'],
        ['--disk', img, '--inspect'],
      ]) {
        const r = await exporter(args, { asNobody: true });
        expect(r.stderr).toBe(
          'p2v-export: must run as root: p2v-export attaches loop devices, mounts the guest and serves it through FUSE (running as uid 65534)\n' +
            'p2v-export: hint: run it as root on the live system (sudo -i, or su -)\n',
        );
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
      }
      // --version and --help need no root.
      const v = await exporter(['--version'], { asNobody: true });
      expect(v.code).toBe(0);
      expect(v.stdout).toMatch(/^p2v-export \d+\.\d+\.\d+/);
    });
  });

  it('refuses a source that is not a block device or a non-empty file, naming what it is', async () => {
    needRoot();
    await needPrograms('mkfifo', 'losetup');
    await withTmpDir('diag', async (dir) => {
      const empty = join(dir, 'empty.img');
      await writeFile(empty, '');
      const fifo = join(dir, 'fifo');
      await execa('mkfifo', [fifo]);
      const sub = join(dir, 'sub');
      await mkdir(sub);
      const cases: [string, string, string][] = [
        [sub, `source disk ${sub} is a directory, not a block device or disk image\n`, DISK_HINT],
        ['/dev/null', 'source disk /dev/null is a character device, not a block device or disk image\n', DISK_HINT],
        [fifo, `source disk ${fifo} is a FIFO, not a block device or disk image\n`, DISK_HINT],
        [join(dir, 'gone.img'), `source disk ${join(dir, 'gone.img')} does not exist\n`, DISK_HINT],
        [
          empty,
          `source disk ${empty} is an empty file\n`,
          'p2v-export: hint: name a disk image with the disk in it (or the block device itself)\n',
        ],
      ];
      for (const [disk, message, hint] of cases) {
        const r = await exporter(['--disk', disk, '--ovf']);
        expect(r.stderr, disk).toBe(`p2v-export: ${message}${hint}`);
        expect(r.code, disk).toBe(2);
      }
      // A loop device with nothing attached is a block device of size 0. A node of
      // our own at a minor no test reaches (`losetup -f` would race with the
      // parallel tests that attach the first free loop device).
      const free = join(dir, 'loop-unattached');
      await execa('mknod', [free, 'b', '7', '250']);
      const r = await exporter(['--disk', free, '--ovf']);
      expect(r.stderr).toBe(
        `p2v-export: source disk ${free} is a block device of size 0 (no medium, or not attached)\n` +
          'p2v-export: hint: name the disk that holds the machine: lsblk lists them with their sizes\n',
      );
      expect(r.code).toBe(2);
    });
  });

  it('checks option values before any work, with the rules the fixups use', async () => {
    needRoot();
    await withTmpDir('diag', async (dir) => {
      const img = join(dir, 'disk.img');
      await writeFile(img, Buffer.alloc(1 << 20, 1));
      const cases: [string[], string][] = [
        [['--hostname', 'bad_name!'], `--hostname "bad_name!" is not a valid host name\n${NAME_HINT}`],
        [['--name', 'web 1'], `--name "web 1" is not a valid host name\n${NAME_HINT}`],
        [
          ['--hostname', '--ovf'],
          '--hostname needs a value, but the next word is "--ovf"\n' +
            'p2v-export: hint: if the value really starts with "-", write --hostname=--ovf\n',
        ],
        [
          ['-o', '--ovf'],
          '-o needs a value, but the next word is "--ovf"\n' +
            'p2v-export: hint: if the value really starts with "-", write --output=--ovf\n',
        ],
        [
          ['--ip', '192.0.2.7'],
          '--ip 192.0.2.7 is not ADDRESS/PREFIX\n' +
            'p2v-export: hint: write the address with its prefix length, e.g. --ip 192.0.2.10/24\n',
        ],
        [
          ['--ip', '192.0.2.7/24', '--gateway', 'router'],
          '--gateway router is not an IP address\n' +
            'p2v-export: hint: give the router address, e.g. --gateway 192.0.2.1\n',
        ],
        [
          ['--ip', '192.0.2.7/24', '--dns', 'ns1'],
          '--dns ns1 is not an IP address\np2v-export: hint: give one address per --dns\n',
        ],
        [
          ['--memory', '4'],
          '--memory 4 is out of range: give 32M to 16T\n' +
            'p2v-export: hint: sizes are bytes unless a unit follows, e.g. --memory 4G\n',
        ],
        [
          ['--memory', 'lots'],
          '--memory "lots" is not a size\n' +
            'p2v-export: hint: use a number with an optional K, M, G or T suffix (binary units)\n',
        ],
        [
          ['--chunk-size', '4k'],
          '--chunk-size 4k is out of range: give 1M to 1G\n' +
            'p2v-export: hint: sizes are bytes unless a unit follows, e.g. --chunk-size 64M\n',
        ],
        [
          ['--progress', 'json'],
          "option '--progress <mode>' argument 'json' is invalid. JSON progress has a descriptor of its own: use --progress-fd N\n" +
            'p2v-export: hint: see p2v-export --help\n',
        ],
        [
          ['--progress-fd', '2'],
          '--progress-fd 2 is standard error: JSON progress needs a descriptor of its own\n' +
            'p2v-export: hint: use --progress-fd 3 with 3>FILE (or 3>&1 to read it through a pipe when stdout is free)\n',
        ],
        [
          ['--progress-fd', '7'],
          '--progress-fd 7: descriptor 7 is not open\n' +
            'p2v-export: hint: open it in the shell that runs the command, e.g. --progress-fd 7 7>progress.jsonl\n',
        ],
      ];
      for (const [extra, expected] of cases) {
        const r = await exporter(['--disk', img, ...extra, '--ovf']);
        expect(r.stderr, extra.join(' ')).toBe(`p2v-export: ${expected}`);
        expect(r.code, extra.join(' ')).toBe(2);
      }
      // The = form takes a value that starts with a dash; the validator then judges it.
      const dash = await exporter(['--disk', img, '--hostname=-web', '--ovf']);
      expect(dash.stderr).toBe(`p2v-export: --hostname "-web" is not a valid host name\n${NAME_HINT}`);
      // "-" alone is a value: standard output.
      const stdout = await exporter(['--disk', join(dir, 'gone.img'), '-o', '-']);
      expect(stdout.stderr).toBe(`p2v-export: source disk ${join(dir, 'gone.img')} does not exist\n${DISK_HINT}`);
    });
  });

  it('-o refuses a stale FILE.partial and a directory unless told, and never writes through them', async () => {
    needRoot();
    await withTmpDir('diag', async (dir) => {
      const img = join(dir, 'disk.img');
      await writeFile(img, Buffer.alloc(1 << 20, 1));
      const ova = join(dir, 'm.ova');
      await writeFile(`${ova}.partial`, 'left over\n');
      const r = await exporter(['--disk', img, '-o', ova]);
      expect(r.stderr).toBe(
        `p2v-export: ${ova}.partial already exists (left by an interrupted export?)\n` +
          'p2v-export: hint: remove it, or add --force to replace it\n',
      );
      expect(r.code).toBe(2);
      expect(await readFile(`${ova}.partial`, 'utf8')).toBe('left over\n');
      const d = await exporter(['--disk', img, '-o', dir, '--force']);
      expect(d.stderr).toBe(
        `p2v-export: -o ${dir} is a directory\np2v-export: hint: name the OVA file to write, e.g. -o machine.ova\n`,
      );
      expect(d.code).toBe(2);
      const f = await exporter(['--disk', img, '--ovf', '--force']);
      expect(f.stderr).toBe(
        'p2v-export: --force goes with -o FILE\np2v-export: hint: it lets -o replace an existing file\n',
      );
      expect((await readdir(dir)).sort()).toEqual(['disk.img', 'm.ova.partial']);
    });
  });
});
