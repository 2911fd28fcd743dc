// One command-line runner (lib/cli.ts runCommand) for the four tools, run as installed: the same
// usage mistake gives the same two lines (`tool: message`, `tool: hint: see … --help`) and
// status 2 from each, help exits 0, and a subcommand's mistake points at that subcommand's help.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cliArgv } from '../helpers/cli.js';

type Tool = 'p2v-export' | 'p2v-import' | 'p2v-ramboot' | 'p2v-ganeti-os';
const TOOLS: Tool[] = ['p2v-export', 'p2v-import', 'p2v-ramboot', 'p2v-ganeti-os'];

async function cli(tool: Tool, args: string[]) {
  const [node, script] = cliArgv(tool);
  const r = await execa(node!, [script!, ...args], { reject: false, input: '' });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('the CLI runner', () => {
  it.each(TOOLS)('%s: an unknown option is one line, a hint to --help, status 2', async (tool) => {
    const r = await cli(tool, ['--no-such-option']);
    expect(r.stderr).toBe(`${tool}: unknown option '--no-such-option'\n${tool}: hint: see ${tool} --help`);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(2);
  });

  it.each(TOOLS)('%s: a missing option value is a usage error too', async (tool) => {
    // Each tool's first option that takes a value, given without one at the end of the line.
    const opt = { 'p2v-export': '--disk', 'p2v-import': '--staging', 'p2v-ramboot': '', 'p2v-ganeti-os': '' }[tool];
    const args = opt ? [opt] : tool === 'p2v-ramboot' ? ['build', '--kernel'] : ['install', '--os-dir'];
    const r = await cli(tool, args);
    const where = opt ? tool : `${tool} ${args[0]}`;
    expect(r.stderr).toMatch(
      new RegExp(`^${tool}: option '[^']+' argument missing\\n${tool}: hint: see ${where} --help$`),
    );
    expect(r.code).toBe(2);
  });

  it.each(['p2v-ramboot', 'p2v-ganeti-os'] as Tool[])(
    '%s: no command is a usage error with a hint; help of a command exits 0',
    async (tool) => {
      const none = await cli(tool, []);
      expect(none.stderr).toMatch(new RegExp(`^${tool}: no command given\\n${tool}: hint: \\S`));
      expect(none.code).toBe(2);
      const unknown = await cli(tool, ['frobnicate']);
      expect(unknown.stderr).toBe(`${tool}: unknown command 'frobnicate'\n${tool}: hint: see ${tool} --help`);
      expect(unknown.code).toBe(2);
      const help = await cli(tool, ['help', tool === 'p2v-ramboot' ? 'build' : 'install']);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/^Usage: /);
      expect(help.stderr).toBe('');
    },
  );

  it.each(TOOLS)('%s --help exits 0 with the help on stdout only', async (tool) => {
    const r = await cli(tool, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: ${tool} `));
    expect(r.stderr).toBe('');
  });
});
