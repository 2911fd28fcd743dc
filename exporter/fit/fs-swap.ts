/**
 * Linux swap in the fit: it holds nothing worth keeping, so it is made anew
 * at its new size with the UUID and label the guest's fstab (or resume=)
 * names it by.
 *
 *   minimumSwap(oldSize): number
 *   recreateSwap(device, { uuid?, label?, pageSize? }): Promise<void>
 */
import { P2vError } from '../../lib/errors.js';
import { run } from '../../lib/run.js';
import { MiB, needFsProgram, roundDownTo } from './fs-common.js';

/** The size a swap partition may shrink to when room is short: its own size, at most 256 MiB. */
export const MINIMUM_SWAP_CAP = 256 * MiB;

/**
 * min(old size, 256 MiB), whole MiB: enough for a small VM not to be killed by
 * the OOM killer at once, and the guest can add a swap file later. (Hibernation
 * to swap does not survive a P2V anyway: the image it would resume is gone.)
 */
export function minimumSwap(oldSize: number): number {
  return Math.min(MINIMUM_SWAP_CAP, Math.max(MiB, roundDownTo(oldSize, MiB)));
}

export interface SwapIdentity {
  uuid?: string;
  label?: string;
  /** mkswap -p: only for a guest whose page size is not this host's (e.g. 64 KiB arm64/ppc64). */
  pageSize?: number;
}

/** UUID and LABEL of the swap signature on `device` (blkid -p reads the device itself, not a cache). */
export async function readSwapIdentity(device: string): Promise<{ uuid?: string; label?: string }> {
  await needFsProgram('blkid');
  const r = await run('blkid', ['-p', '-o', 'export', device], { allowFailure: true, what: `reading ${device}` });
  const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(String(r.stdout ?? ''))?.[1];
  return { uuid: get('UUID'), label: get('LABEL') };
}

/**
 * mkswap over the whole of `device`. UUID and label default to what blkid
 * reads on the device now (when it still holds the old swap signature).
 */
export async function recreateSwap(device: string, id: SwapIdentity = {}): Promise<void> {
  await needFsProgram('mkswap');
  const found = id.uuid === undefined || id.label === undefined ? await readSwapIdentity(device) : {};
  const uuid = id.uuid ?? found.uuid;
  const label = id.label ?? found.label;
  if (!uuid)
    throw new P2vError('FIXUP', `no swap UUID to keep for ${device}`, {
      hint: 'this is a bug: the caller must read the old swap UUID before the device is reused',
    });
  await run(
    'mkswap',
    ['-U', uuid, ...(label ? ['-L', label] : []), ...(id.pageSize ? ['-p', String(id.pageSize)] : []), device],
    { what: `making swap on ${device}` },
  );
}
