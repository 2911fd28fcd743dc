import { describe, expect, it } from 'vitest';
import { diskLetters, parseDeviceSpec, parseGuestDisk, parseMapDevice } from '../../guest/device-names.js';
import { isP2vError } from '../../lib/errors.js';

const disk = (d: string, partition: number, kernel = true) => ({ kind: 'disk', disk: d, partition, kernel });

describe('guest device names', () => {
  it('parses every kernel disk family, with and without a partition', () => {
    expect(parseDeviceSpec('/dev/sda1')).toEqual(disk('sda', 1));
    expect(parseDeviceSpec('/dev/sdab12')).toEqual(disk('sdab', 12));
    expect(parseDeviceSpec('/dev/sdb')).toEqual(disk('sdb', 0));
    expect(parseDeviceSpec('/dev/hda3')).toEqual(disk('hda', 3));
    expect(parseDeviceSpec('/dev/vdc2')).toEqual(disk('vdc', 2));
    expect(parseDeviceSpec('/dev/xvdb')).toEqual(disk('xvdb', 0));
    expect(parseDeviceSpec('/dev/xvda1')).toEqual(disk('xvda', 1));
    expect(parseDeviceSpec('/dev/nvme0n1p3')).toEqual(disk('nvme0n1', 3));
    expect(parseDeviceSpec('/dev/nvme1n2')).toEqual(disk('nvme1n2', 0));
    expect(parseDeviceSpec('/dev/mmcblk0p1')).toEqual(disk('mmcblk0', 1));
    expect(parseDeviceSpec('/dev/mmcblk1')).toEqual(disk('mmcblk1', 0));
    expect(parseDeviceSpec('/dev/cciss/c0d0p2')).toEqual(disk('cciss/c0d0', 2));
    expect(parseDeviceSpec('/dev/cciss/c1d3')).toEqual(disk('cciss/c1d3', 0));
    expect(parseDeviceSpec('/dev/ida/c0d1p1')).toEqual(disk('ida/c0d1', 1));
    expect(parseDeviceSpec('/dev/rd/c0d0p5')).toEqual(disk('rd/c0d0', 5));
  });

  it('parses by-id and by-path links as disks, by-uuid/label/partuuid/partlabel and NAME= as identities', () => {
    expect(parseDeviceSpec('/dev/disk/by-id/ata-ST1000DM003_Z1D5-part2')).toEqual(
      disk('disk/by-id/ata-ST1000DM003_Z1D5', 2, false),
    );
    expect(parseDeviceSpec('/dev/disk/by-path/pci-0000:00:1f.2-ata-2')).toEqual(
      disk('disk/by-path/pci-0000:00:1f.2-ata-2', 0, false),
    );
    expect(parseDeviceSpec('UUID=3b1f8a36-7a55')).toEqual({ kind: 'identity', key: 'UUID', value: '3b1f8a36-7a55' });
    expect(parseDeviceSpec('LABEL="my root"')).toEqual({ kind: 'identity', key: 'LABEL', value: 'my root' });
    expect(parseDeviceSpec('PARTUUID=5d3c2b1a-01')).toEqual({
      kind: 'identity',
      key: 'PARTUUID',
      value: '5d3c2b1a-01',
    });
    expect(parseDeviceSpec('PARTLABEL=EFI')).toEqual({ kind: 'identity', key: 'PARTLABEL', value: 'EFI' });
    expect(parseDeviceSpec('/dev/disk/by-uuid/ab-cd')).toEqual({ kind: 'identity', key: 'UUID', value: 'ab-cd' });
    expect(parseDeviceSpec('/dev/disk/by-label/my\\x20root')).toEqual({
      kind: 'identity',
      key: 'LABEL',
      value: 'my root',
    });
    expect(parseDeviceSpec('/dev/disk/by-partuuid/pu-1')).toEqual({ kind: 'identity', key: 'PARTUUID', value: 'pu-1' });
    expect(parseDeviceSpec('/dev/disk/by-partlabel/data')).toEqual({
      kind: 'identity',
      key: 'PARTLABEL',
      value: 'data',
    });
  });

  it('keeps LVM, MD and removable drives apart, and knows what names no device', () => {
    for (const s of ['/dev/mapper/vg-root', '/dev/dm-0', '/dev/md0', '/dev/md/root', '/dev/vg0/lv_home'])
      expect(parseDeviceSpec(s)).toEqual({ kind: 'stable', why: 'lvm-md' });
    for (const s of ['/dev/sr0', '/dev/cdrom', '/dev/fd0'])
      expect(parseDeviceSpec(s)).toEqual({ kind: 'stable', why: 'removable' });
    for (const s of ['proc', 'tmpfs', 'nfs1:/export', '/swapfile', 'none', '/dev/loop0', '/dev/zram0'])
      expect(parseDeviceSpec(s)).toBeNull();
    expect([0, 25, 26, 27, 701].map(diskLetters)).toEqual(['a', 'z', 'aa', 'ab', 'zz']);
  });

  it('parses --map-device GUESTDISK=INDEX and refuses partitions and nonsense', () => {
    expect(parseMapDevice('/dev/sda=0')).toEqual({ guestDisk: 'sda', index: 0 });
    expect(parseMapDevice('nvme0n1=2')).toEqual({ guestDisk: 'nvme0n1', index: 2 });
    expect(parseMapDevice('/dev/cciss/c0d1=1')).toEqual({ guestDisk: 'cciss/c0d1', index: 1 });
    expect(parseMapDevice('/dev/disk/by-id/wwn-0x5000c500=1')).toEqual({
      guestDisk: 'disk/by-id/wwn-0x5000c500',
      index: 1,
    });
    expect(parseGuestDisk('hdb')).toBe('hdb');
    for (const bad of ['/dev/sda1=0', 'sda', 'sda=x', '/dev/mapper/vg-root=0', 'UUID=ab=0', '=1', '/dev/sda=-1']) {
      const e = (() => {
        try {
          parseMapDevice(bad);
        } catch (x) {
          return x;
        }
      })();
      expect(isP2vError(e, 'USAGE'), bad).toBe(true);
    }
    const e = (() => {
      try {
        parseMapDevice('/dev/nvme0n1p2=0');
      } catch (x) {
        return x as Error & { hint: string };
      }
    })();
    expect(e?.message).toBe('--map-device: /dev/nvme0n1p2 is a partition, not a disk');
    expect(e?.hint).toBe('name the whole disk, e.g. /dev/nvme0n1');
  });
});
