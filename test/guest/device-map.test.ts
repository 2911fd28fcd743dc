import { describe, expect, it } from 'vitest';
import {
  buildDeviceMap,
  requireResolved,
  resolveDevice,
  type GuestReference,
  type MapDisk,
} from '../../guest/device-map.js';
import {
  crypttabReferences,
  fstabReferences,
  kernelArgReferences,
  parseFstab,
  resumeReferences,
} from '../../guest/references.js';
import { isP2vError, type P2vError } from '../../lib/errors.js';

/** A disk with partitions [number, fsType, uuid?]. */
function disk(index: number, parts: [number, string | undefined, string?][], extra: Partial<MapDisk> = {}): MapDisk {
  return {
    index,
    partitions: parts.map(([number, fsType, fsUuid]) => ({
      number,
      ...(fsType ? { fsType } : {}),
      ...(fsUuid ? { fsUuid } : {}),
      partUuid: `pu-${index}-${number}`,
    })),
    ...extra,
  };
}

const fstab = (text: string) => fstabReferences(parseFstab(text));
const grub = (args: string) => kernelArgReferences([{ file: '/boot/grub/grub.cfg', args }]);
const refusal = (f: () => void): P2vError => {
  try {
    f();
  } catch (e) {
    if (isP2vError(e)) return e;
    throw e;
  }
  throw new Error('not refused');
};
const pairs = (m: ReturnType<typeof buildDeviceMap>) => m.disks.map((d) => [d.guestDisk, d.index]);

describe('guest device map', () => {
  it('the name fstab mounts on / is the disk holding the root found, whatever the live names', () => {
    // Exported from /dev/loop0 or /dev/sdb: the live name is not an input at all.
    const disks = [
      disk(0, [
        [1, 'ext4', 'root-uuid'],
        [2, 'swap'],
      ]),
    ];
    const map = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: [
        ...fstab('/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n'),
        ...grub('root=/dev/sda1 ro'),
      ],
    });
    expect(pairs(map)).toEqual([['sda', 0]]);
    expect(map.disks[0]!.evidence).toMatch(/\/etc\/fstab: \/dev\/sda1 on \/: the root filesystem inspection found/);
    expect(map.undecided).toEqual([]);
    expect(map.conflicts).toEqual([]);
    requireResolved(map);
    expect(resolveDevice(map, disks, '/dev/sda2')).toEqual({ disk: 0, partition: 2 });
    expect(resolveDevice(map, disks, 'UUID=ROOT-UUID')).toEqual({ disk: 0, partition: 1 });
    expect(resolveDevice(map, disks, 'PARTUUID=pu-0-2')).toEqual({ disk: 0, partition: 2 });
    expect(resolveDevice(map, disks, '/dev/sda7')).toBe('/dev/sda7 names a partition that does not exist on disk 0');
    expect(resolveDevice(map, disks, '/dev/mapper/vg-root')).toMatch(/LVM/);
  });

  it('maps every family the same way: nvme, cciss, mmcblk, hd, xvd', () => {
    for (const [name, part] of [
      ['nvme0n1', 'nvme0n1p'],
      ['cciss/c0d0', 'cciss/c0d0p'],
      ['mmcblk0', 'mmcblk0p'],
      ['hda', 'hda'],
      ['xvda', 'xvda'],
    ]) {
      const map = buildDeviceMap({
        disks: [
          disk(0, [
            [1, 'ext4'],
            [2, 'ext4'],
          ]),
          disk(1, [[1, 'ext4']]),
        ],
        root: { disk: 1, partition: 1 },
        references: fstab(`/dev/${part}1 / ext4 defaults 0 1\n`),
      });
      expect(pairs(map), name).toEqual([[name, 1]]);
    }
  });

  it('decides by fit: the only disk whose partitions and types agree, then the rest by elimination', () => {
    const disks = [
      disk(0, [
        [1, 'xfs', 'r'],
        [2, 'swap'],
      ]),
      disk(1, [[1, 'ext4']]),
      disk(2, [
        [1, 'xfs'],
        [2, 'ext4'],
      ]),
    ];
    const map = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: fstab(
        'UUID=r / xfs defaults 0 0\n/dev/sda2 none swap sw 0 0\n/dev/sdc2 /srv ext4 defaults 0 2\n/dev/sdb1 /data ext4 defaults 0 2\n',
      ),
    });
    // sda: only disk 0 has a swap partition 2; sdc: only disk 2 has an ext4 partition 2; sdb: disk 1 is left.
    expect(pairs(map)).toEqual([
      ['sda', 0],
      ['sdb', 1],
      ['sdc', 2],
    ]);
    expect(map.disks.find((d) => d.guestDisk === 'sdc')!.evidence).toBe(
      'the only exported disk that fits /etc/fstab: /dev/sdc2 on /srv',
    );
  });

  it('a partition fstab mounts elsewhere by UUID is not the one a device name means', () => {
    const map = buildDeviceMap({
      disks: [
        disk(0, [
          [1, 'ext4', 'r'],
          [2, 'ext4'],
        ]),
        disk(1, [[1, 'ext4']]),
      ],
      root: { disk: 0, partition: 1 },
      references: fstab('UUID=r / ext4 defaults 0 1\n/dev/sdb1 /home ext4 defaults 0 2\n'),
    });
    expect(pairs(map)).toEqual([['sdb', 1]]);
  });

  it('refuses two exported disks that both fit, names the name, and accepts --map-device', () => {
    const disks = [
      disk(0, [
        [1, 'ext4'],
        [2, 'ext4', 'r'],
      ]),
      disk(1, [[1, 'ext4']]),
    ];
    const references = fstab(
      'UUID=r / ext4 defaults 0 1\n/dev/sda1 /srv/a ext4 defaults 0 2\n/dev/sdb1 /srv/b ext4 defaults 0 2\n',
    );
    const map = buildDeviceMap({ disks, root: { disk: 0, partition: 2 }, references });
    expect(map.disks).toEqual([]);
    expect(map.undecided).toEqual([
      { guestDisk: 'sda', candidates: [0, 1], references: ['/etc/fstab: /dev/sda1 on /srv/a'], matters: true },
      { guestDisk: 'sdb', candidates: [0, 1], references: ['/etc/fstab: /dev/sdb1 on /srv/b'], matters: true },
    ]);
    const e = refusal(() => requireResolved(map));
    expect(e.code).toBe('INSPECTION');
    expect(e.message).toBe(
      'cannot tell which exported disk the guest calls /dev/sda (/etc/fstab: /dev/sda1 on /srv/a): disks 0 and 1 both fit, ' +
        'nor /dev/sdb (/etc/fstab: /dev/sdb1 on /srv/b): disks 0 and 1 both fit',
    );
    expect(e.hint).toMatch(/^say it with --map-device \/dev\/sda=0 --map-device \/dev\/sdb=0 \(the number is/);
    const mapped = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 2 },
      references,
      explicit: [{ guestDisk: 'sda', index: 0 }],
    });
    expect(pairs(mapped)).toEqual([
      ['sda', 0],
      ['sdb', 1],
    ]);
    expect(mapped.disks[0]!.evidence).toBe('--map-device');
    requireResolved(mapped);
  });

  it('records contradictions: a --map-device that does not fit, a / that is not the root, two names on one disk', () => {
    const disks = [
      disk(0, [
        [1, 'ext4', 'r'],
        [2, 'swap'],
      ]),
      disk(1, [[1, 'ext4']]),
    ];
    const refs = fstab('/dev/sda1 / ext4 defaults 0 1\n/dev/sda2 none swap sw 0 0\n');
    const wrong = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: refs,
      explicit: [{ guestDisk: 'sda', index: 1 }],
    });
    expect(wrong.conflicts).toEqual([
      '/dev/sda is disk 1 (--map-device), yet /etc/fstab: /dev/sda1 on / names the root, which is on disk 0 partition 1',
      '--map-device says /dev/sda is disk 1, but /etc/fstab: /dev/sda1 on /: the root filesystem inspection found is on disk 0',
    ]);
    expect(refusal(() => requireResolved(wrong)).message).toMatch(/^the guest's device names contradict each other: /);

    const notRoot = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: fstab('/dev/sda2 / ext4 defaults 0 1\n'),
    });
    expect(notRoot.conflicts).toEqual([
      '/dev/sda is disk 0 (/etc/fstab: /dev/sda2 on /: the root filesystem inspection found), yet /etc/fstab: /dev/sda2 on / names the root, which is on disk 0 partition 1',
    ]);

    const twice = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: fstab('/dev/sda1 / ext4 defaults 0 1\n/dev/sdb2 none swap sw 0 0\n'),
      explicit: [{ guestDisk: 'sdb', index: 0 }],
    });
    expect(twice.conflicts).toContain('/dev/sda and /dev/sdb are two disks of the guest, but both would be disk 0');

    expect(
      refusal(() =>
        buildDeviceMap({
          disks,
          root: { disk: 0, partition: 1 },
          references: [],
          explicit: [{ guestDisk: 'sda', index: 2 }],
        }),
      ).message,
    ).toBe('--map-device /dev/sda=2: there is no disk 2 (2 exported)');
  });

  it('noauto/nofail names never decide by fit and never stop the export', () => {
    const map = buildDeviceMap({
      disks: [
        disk(0, [
          [1, 'ext4', 'r'],
          [5, 'ext4'],
        ]),
      ],
      root: { disk: 0, partition: 1 },
      references: fstab(
        'UUID=r / ext4 defaults 0 1\n/dev/sdb5 /media/usb auto noauto,user 0 0\n/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n',
      ),
    });
    expect(map.disks).toEqual([]);
    expect(map.undecided).toEqual([
      { guestDisk: 'sdb', candidates: [0], references: ['/etc/fstab: /dev/sdb5 on /media/usb'], matters: false },
    ]);
    requireResolved(map);
  });

  it('uses root=, resume=, RESUME= and crypttab as evidence, types checked', () => {
    const disks = [
      disk(0, [
        [1, 'ext4', 'r'],
        [2, 'swap'],
        [3, 'crypto_LUKS'],
      ]),
    ];
    const refs: GuestReference[] = [
      ...fstab('UUID=r / ext4 defaults 0 1\n'),
      ...grub('BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro resume=/dev/sda2'),
      ...resumeReferences('RESUME=/dev/sda2\n'),
      ...crypttabReferences('# name dev\nsecret /dev/sda3 none luks\n'),
    ];
    expect(refs.map((r) => r.use)).toEqual(['mount', 'root', 'resume', 'resume', 'crypt']);
    const map = buildDeviceMap({ disks, root: { disk: 0, partition: 1 }, references: refs });
    expect(pairs(map)).toEqual([['sda', 0]]);
    expect(map.conflicts).toEqual([]);
    // resume= pointing at a non-swap partition contradicts the root evidence.
    const bad = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: [...refs, ...grub('root=/dev/sda1 resume=/dev/sda3')],
    });
    expect(bad.conflicts).toEqual([
      '/dev/sda is disk 0 (/boot/grub/grub.cfg: /dev/sda1: the root filesystem inspection found), yet /boot/grub/grub.cfg: /dev/sda3, but disk 0 partition 3 holds crypto_LUKS',
    ]);
    // A swap file's resume= (resume_offset=) names the filesystem: no type check.
    expect(grub('resume=/dev/sda1 resume_offset=34816').map((r) => r.use)).toEqual(['device']);
  });

  it('ties a by-id link to the disk the live system has the same link for', () => {
    const disks = [
      disk(0, [[1, 'ext4', 'r']]),
      disk(
        1,
        [
          [1, 'xfs'],
          [2, 'xfs'],
        ],
        { hardwareLinks: ['disk/by-id/ata-WDC_WD10EZEX_WD-1234'] },
      ),
    ];
    const map = buildDeviceMap({
      disks,
      root: { disk: 0, partition: 1 },
      references: fstab(
        'UUID=r / ext4 defaults 0 1\n/dev/disk/by-id/ata-WDC_WD10EZEX_WD-1234-part2 /srv xfs defaults 0 2\n',
      ),
    });
    expect(pairs(map)).toEqual([['disk/by-id/ata-WDC_WD10EZEX_WD-1234', 1]]);
    expect(resolveDevice(map, disks, '/dev/disk/by-id/ata-WDC_WD10EZEX_WD-1234-part2')).toEqual({
      disk: 1,
      partition: 2,
    });
  });

  it('a disk name whose partitions fit no exported disk stops the export with the way out', () => {
    const map = buildDeviceMap({
      disks: [disk(0, [[1, 'ext4', 'r']])],
      root: { disk: 0, partition: 1 },
      references: fstab('UUID=r / ext4 defaults 0 1\n/dev/sdb1 /data xfs defaults 0 2\n'),
    });
    const e = refusal(() => requireResolved(map));
    expect(e.message).toBe(
      'cannot tell which exported disk the guest calls /dev/sdb (/etc/fstab: /dev/sdb1 on /data): no exported disk fits',
    );
    expect(e.hint).toMatch(/--map-device \/dev\/sdb=N .*or export the missing disk too/);
  });
});
