/**
 * Validate descriptors with xmllint against the DMTF OVF 1.1.1 schema from
 * ../shared, plus our gnt:GanetiSection schema when the descriptor has one.
 */
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
export const SHARED = resolve(ROOT, '../shared');
export const DSP8023 = join(SHARED, 'reference/ovf-schemas/xo-ova-schema/dsp8023_1.1.1.xsd');
export const GANETI_XSD = join(ROOT, 'ovf/descriptor/schema/ganeti-section.xsd');
export const FIXTURES = join(SHARED, 'reference/peer-fixtures');

export interface Validation {
  ok: boolean;
  /** xmllint's complaints, without the schema-loading chatter. */
  errors: string;
}

/** A schema that pulls in DSP8023 and our GanetiSection declaration. */
async function driver(dir: string): Promise<string> {
  const path = join(dir, 'ovf-with-ganeti.xsd');
  await writeFile(
    path,
    `<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:ganeti-p2v:test:driver">
  <xs:import namespace="http://schemas.dmtf.org/ovf/envelope/1" schemaLocation="${DSP8023}"/>
  <xs:import namespace="http://ganeti" schemaLocation="${GANETI_XSD}"/>
</xs:schema>
`,
  );
  return path;
}

export async function validate(dir: string, name: string, xml: string, withGaneti: boolean): Promise<Validation> {
  const file = join(dir, name);
  await writeFile(file, xml);
  const schema = withGaneti ? await driver(dir) : DSP8023;
  const r = await execa('xmllint', ['--noout', '--nonet', '--schema', schema, file], { reject: false });
  const errors = r.stderr
    .split('\n')
    .filter((l) => !l.includes('Schemas parser warning') && !/ validates$/.test(l))
    .join('\n');
  return { ok: r.exitCode === 0, errors };
}
