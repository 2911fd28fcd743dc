import { describe, expect, it } from 'vitest';
import { hostname, renameInHosts } from '../../fixups/hostname.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { applyAndReplan, kinds, writes } from './check.js';
import { DEBIAN_HOSTS, context, debianInspection, debianTree, rhelInspection, rhelTree, writeTree } from './guests.js';

describe('hostname', () => {
  it('applies only with --hostname', () => {
    expect(hostname.appliesTo({ hypervisor: 'kvm' })).toBe(false);
    expect(hostname.appliesTo({ hypervisor: 'kvm', hostname: 'x' })).toBe(true);
  });

  it('Debian 12: hostname, the 127.0.1.1 line and mailname; the rest of /etc/hosts stays', async () => {
    await withTmpDir('hn', async (root) => {
      await writeTree(root, debianTree());
      const opts = { hostname: 'web1.example.net' };
      const plan = await hostname.plan(context(root, debianInspection(), opts));
      expect(writes(plan)).toEqual({
        '/etc/hostname': 'web1.example.net\n',
        '/etc/hosts': DEBIAN_HOSTS.replace(
          '127.0.1.1\toldbox.example.org\toldbox',
          '127.0.1.1\tweb1.example.net\tweb1',
        ),
        '/etc/mailname': 'web1.example.net\n',
      });
      await applyAndReplan(root, hostname, debianInspection(), opts, plan, [
        '/etc/hostname',
        '/etc/hosts',
        '/etc/mailname',
      ]);
    });
  });

  it('RHEL: a 127.0.1.1 line is added when no line names the host; HOSTNAME= only when present', async () => {
    await withTmpDir('hn', async (root) => {
      const tree = rhelTree();
      await writeTree(root, tree);
      const plan = await hostname.plan(context(root, rhelInspection(), { hostname: 'db2' }));
      expect(kinds(plan)).toEqual(['write /etc/hostname', 'write /etc/hosts']);
      expect(writes(plan)['/etc/hosts']).toBe(
        '127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n127.0.1.1\tdb2\n::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n',
      );
      await applyAndReplan(root, hostname, rhelInspection(), { hostname: 'db2' }, plan, [
        '/etc/hostname',
        '/etc/hosts',
      ]);
    });
  });

  it('RHEL 6 style /etc/sysconfig/network HOSTNAME= is rewritten', async () => {
    await withTmpDir('hn', async (root) => {
      await writeTree(root, {
        '/etc/sysconfig/network': 'NETWORKING=yes\nHOSTNAME=old.example.com\n',
        '/etc/hosts': '127.0.0.1 localhost\n10.0.0.9 old.example.com old\n',
      });
      const plan = await hostname.plan(context(root, rhelInspection(), { hostname: 'new.example.com' }));
      expect(writes(plan)).toEqual({
        '/etc/hostname': 'new.example.com\n',
        '/etc/hosts': '127.0.0.1 localhost\n10.0.0.9 new.example.com new\n',
        '/etc/sysconfig/network': 'NETWORKING=yes\nHOSTNAME=new.example.com\n',
      });
    });
  });

  it('a short new name keeps the old domain in the FQDN places', async () => {
    await withTmpDir('hn', async (root) => {
      await writeTree(root, debianTree());
      const plan = await hostname.plan(context(root, debianInspection(), { hostname: 'web2' }));
      expect(writes(plan)).toEqual({
        '/etc/hostname': 'web2\n',
        '/etc/hosts': DEBIAN_HOSTS.replace(
          '127.0.1.1\toldbox.example.org\toldbox',
          '127.0.1.1\tweb2.example.org\tweb2',
        ),
        '/etc/mailname': 'web2.example.org\n',
      });
    });
  });

  it('hosts edits keep comments and drop duplicates', () => {
    expect(renameInHosts('127.0.1.1 old.lan old # mine\n', 'old', 'new')).toBe('127.0.1.1 new.lan new # mine\n');
    expect(renameInHosts('10.1.1.1 old.lan old-db\n', 'old.lan', 'new.example')).toBe('10.1.1.1 new.example old-db\n');
    expect(renameInHosts('127.0.1.1\told new\n', 'old', 'new')).toBe('127.0.1.1\tnew\n');
  });

  it('refuses an invalid name', async () => {
    await withTmpDir('hn', async (root) => {
      const e = await hostname
        .plan(context(root, debianInspection(), { hostname: 'bad_name!' }))
        .catch((x: unknown) => x);
      expect(isP2vError(e, 'USAGE')).toBe(true);
    });
  });
});
