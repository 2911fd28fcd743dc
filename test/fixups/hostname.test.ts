import { describe, expect, it } from 'vitest';
import { hostname, renameInHosts } from '../../fixups/hostname.js';
import { isP2vError } from '../../lib/errors.js';
import { withTmpDir } from '../helpers/tmp.js';
import { applyAndReplan, kinds, writes } from './check.js';
import { DEBIAN_HOSTS, context, debianInspection, debianTree, rhelInspection, rhelTree, writeTree } from './guests.js';

describe('hostname', () => {
  it('applies with --hostname, --ip or --dhcp', () => {
    expect(hostname.appliesTo({ hypervisor: 'kvm' })).toBe(false);
    expect(hostname.appliesTo({ hypervisor: 'kvm', hostname: 'x' })).toBe(true);
    expect(hostname.appliesTo({ hypervisor: 'kvm', ip: '10.0.0.5/24' })).toBe(true);
    expect(hostname.appliesTo({ hypervisor: 'kvm', dhcp: true })).toBe(true);
  });

  it('the host line moves to the new --ip with the new name; other hosts and localhost lines stay true', async () => {
    await withTmpDir('hn', async (root) => {
      const hosts =
        '127.0.0.1\tlocalhost\n192.0.2.10\toldbox.example.org\toldbox\twww # web\n192.0.2.11\tdb.example.org db\n::1\tlocalhost ip6-localhost\n';
      await writeTree(root, { ...debianTree(), '/etc/hosts': hosts });
      const opts = { hostname: 'web1.example.net', ip: '10.0.0.5/24' };
      const plan = await hostname.plan(context(root, debianInspection(), opts));
      expect(writes(plan)['/etc/hosts']).toBe(
        '127.0.0.1\tlocalhost\n10.0.0.5\tweb1.example.net\tweb1\twww # web\n192.0.2.11\tdb.example.org db\n::1\tlocalhost ip6-localhost\n',
      );
      expect(plan.summary).toContain('/etc/hosts: host name web1.example.net at 10.0.0.5');
      await applyAndReplan(root, hostname, debianInspection(), opts, plan, [
        '/etc/hostname',
        '/etc/hosts',
        '/etc/mailname',
      ]);
    });
  });

  it('--ip alone moves the host line and touches nothing else; --dhcp moves it to 127.0.1.1', async () => {
    await withTmpDir('hn', async (root) => {
      const hosts = '127.0.0.1 localhost\n127.0.1.1 oldbox.example.org oldbox\n192.0.2.10 oldbox.example.org oldbox\n';
      await writeTree(root, { ...debianTree(), '/etc/hosts': hosts });
      const ip = await hostname.plan(context(root, debianInspection(), { ip: '2001:db8::5/64' }));
      expect(kinds(ip)).toEqual(['write /etc/hosts']);
      // Both lines named this machine at its own addresses: they are one line at the new address now.
      expect(writes(ip)['/etc/hosts']).toBe('127.0.0.1 localhost\n2001:db8::5 oldbox.example.org oldbox\n');
      const dhcp = await hostname.plan(context(root, debianInspection(), { dhcp: true, hostname: 'n1' }));
      expect(writes(dhcp)['/etc/hosts']).toBe('127.0.0.1 localhost\n127.0.1.1 n1.example.org n1\n');
      // Without a new address the old one is still true: renamed in place.
      const same = await hostname.plan(context(root, debianInspection(), { hostname: 'n1' }));
      expect(writes(same)['/etc/hosts']).toBe(
        '127.0.0.1 localhost\n127.0.1.1 n1.example.org n1\n192.0.2.10 n1.example.org n1\n',
      );
    });
  });

  it('adds the host at the --ip address when no line names it', () => {
    expect(
      renameInHosts('127.0.0.1 localhost\n', 'old', 'new.example.org', { kind: 'static', address: '10.0.0.5' }),
    ).toBe('127.0.0.1 localhost\n10.0.0.5\tnew.example.org new\n');
    expect(renameInHosts('127.0.0.1 localhost old\n', 'old', 'new', { kind: 'static', address: '10.0.0.5' })).toBe(
      '127.0.0.1 localhost new\n',
    );
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
