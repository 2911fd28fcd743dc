import { describe, expect, it } from 'vitest';
import { buildDescriptor, OVF_VERSION, parseDescriptor } from '../../../ovf/descriptor/index.js';
import type { MachineDescription } from '../../../ovf/types.js';
import { MACHINES, oneDisk } from './machines.js';

/** What parsing our own descriptor must give back: the model, plus what the reader learns about the writer. */
function expected(m: MachineDescription, chunked: boolean): MachineDescription {
  return {
    ...m,
    files: m.files.map(({ chunkSize, ...f }) => (chunked && chunkSize !== undefined ? { ...f, chunkSize } : f)),
    producer: 'ganeti-p2v',
    ovfVersion: OVF_VERSION,
  };
}

describe('build → parse round trip', () => {
  for (const [label, m] of Object.entries(MACHINES)) {
    for (const chunked of [false, true]) {
      it(`gives back the model: ${label}${chunked ? ', chunked' : ''}`, () => {
        expect(parseDescriptor(buildDescriptor(m, { chunked, productVersion: '9.9.9' }))).toEqual(expected(m, chunked));
      });
    }
  }

  it('keeps an empty GanetiSection as an empty one', () => {
    const m: MachineDescription = { ...oneDisk, ganeti: {} };
    expect(parseDescriptor(buildDescriptor(m))).toEqual(expected(m, false));
  });

  it('drops a Ganeti instance name that only repeats the machine name', () => {
    const m: MachineDescription = { ...oneDisk, ganeti: { name: oneDisk.name, os: 'p2v-image+default' } };
    expect(parseDescriptor(buildDescriptor(m)).ganeti).toEqual({ os: 'p2v-image+default' });
  });
});
