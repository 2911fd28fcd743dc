import { describe, expect, it } from 'vitest';
import { isModuleFile, moduleName, moduleNamesOf } from '../../guest/module-names.js';

describe('kernel module names: one rule for ramboot, inspection and the fixups', () => {
  it('strips the directory, .ko and its compression, and writes - as _', () => {
    expect(moduleName('kernel/fs/ext4/ext4.ko.xz')).toBe('ext4');
    expect(moduleName('kernel/drivers/xen/xen-blkfront.ko.zst')).toBe('xen_blkfront');
    expect(moduleName('virtio_blk.ko.gz')).toBe('virtio_blk');
    expect(moduleName('crc32c-intel')).toBe('crc32c_intel');
  });

  it('counts only module files among archive members and modules.dep paths', () => {
    expect(isModuleFile('usr/lib/modules/6.1.0/kernel/drivers/block/virtio_blk.ko')).toBe(true);
    expect(isModuleFile('lib/modules/6.1.0/modules.dep')).toBe(false);
    expect(isModuleFile('etc/.ko')).toBe(false);
    expect(isModuleFile('kernel/net/x.ko.bz2')).toBe(false);
    expect([
      ...moduleNamesOf([' kernel/drivers/net/virtio_net.ko.xz ', 'bin/busybox', 'kernel/drivers/xen/xen-netfront.ko']),
    ]).toEqual(['virtio_net', 'xen_netfront']);
  });
});
