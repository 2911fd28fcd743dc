import { describe, expect, it } from 'vitest';
import { checkInstanceName, isValidInstanceName, sanitiseInstanceName } from '../../lib/instance-name.js';
import { instanceName } from '../../exporter/export.js';
import { chooseInstanceName } from '../../importer/instance-name.js';

describe('one instance-name rule for exporter and importer', () => {
  it('accepts Ganeti host names only', () => {
    for (const ok of ['web1', 'web1.example.org', 'a', 'a-b.c-d', 'x'.repeat(63)])
      expect(isValidInstanceName(ok)).toBe(true);
    for (const bad of ['', 'Web1', '-a', 'a-', 'a..b', '.a', 'a.', 'a_b', 'x'.repeat(64), `${'a.'.repeat(127)}ab`])
      expect(isValidInstanceName(bad)).toBe(false);
  });

  it('reduces untrusted names to valid ones', () => {
    expect(sanitiseInstanceName('Café.Example.ORG')).toBe('cafe.example.org');
    expect(sanitiseInstanceName('a.-b-.c')).toBe('a.b.c');
    expect(sanitiseInstanceName('..')).toBeUndefined();
    const long = Array.from({ length: 100 }, () => 'abc').join('.');
    const s = sanitiseInstanceName(long)!;
    expect(s.length).toBeLessThanOrEqual(253);
    expect(isValidInstanceName(s)).toBe(true);
  });

  it('the exporter names the OVF with the same rule, p2v-machine when nothing is left', () => {
    expect(instanceName('Web Server #1')).toBe('web-server-1');
    expect(instanceName('db1.Example.ORG')).toBe('db1.example.org');
    // what the exporter used to pass through and Ganeti would refuse
    expect(instanceName('a.-b')).toBe('a.b');
    expect(instanceName('x'.repeat(70))).toBe('x'.repeat(63));
    expect(instanceName(undefined)).toBe('p2v-machine');
    expect(instanceName('---')).toBe('p2v-machine');
    for (const raw of ['ÄÖÜ', '../etc', 'a..b', `${'-'.repeat(5)}x`])
      expect(isValidInstanceName(instanceName(raw))).toBe(true);
  });

  it('the importer checks --name and sanitises the stream’s names with it', () => {
    expect(checkInstanceName('web1')).toBe('web1');
    expect(() => checkInstanceName('Web 1')).toThrow(/invalid instance name "Web 1"/);
    expect(chooseInstanceName(undefined, [undefined, 'Web Server'])).toBe('web-server');
    expect(() => chooseInstanceName(undefined, ['###'])).toThrow(/names no usable instance name/);
  });
});
