/**
 * Handshake: fixed newstyle negotiation up to transmission. We ask for
 * structured replies, the "base:allocation" meta context and NBD_OPT_GO with
 * NBD_INFO_BLOCK_SIZE; a server without NBD_OPT_GO gets NBD_OPT_EXPORT_NAME,
 * one without structured replies simply gives us no block status.
 */
import { P2vError } from '../../lib/errors.js';
import type { HandshakeReader } from './handshake-reader.js';
import * as P from './protocol.js';
import type { NbdExportInfo } from './types.js';

function protocolError(message: string): P2vError {
  return new P2vError('NBD', message, {
    hint: 'check that the socket is served by an NBD server (nbdkit) and not something else',
  });
}

interface OptionReply {
  type: number;
  payload: Buffer;
}

async function readOptionReply(reader: HandshakeReader, option: number): Promise<OptionReply> {
  const h = P.decodeOptionReplyHeader(await reader.read(20));
  if (h.option !== option)
    throw protocolError(`NBD server answered option ${h.option} while we asked for option ${option}`);
  if (h.length > P.MAX_OPTION_REPLY)
    throw protocolError(`NBD server sent an oversized option reply (${h.length} bytes)`);
  const payload = h.length > 0 ? await reader.read(h.length) : Buffer.alloc(0);
  return { type: h.type, payload };
}

function optionFailure(what: string, reply: OptionReply): P2vError {
  const text = P.optionErrorText(reply.type);
  const detail = reply.payload.length ? `: ${reply.payload.toString('utf8')}` : '';
  return new P2vError('NBD', `NBD server refused ${what}: ${text}${detail}`, {
    hint: 'check the export name and the nbdkit command line (TLS, filters)',
  });
}

/**
 * Negotiate with the server on `reader` / `write` until transmission starts.
 * On return the connection is in the transmission phase.
 */
export async function negotiate(
  reader: HandshakeReader,
  write: (b: Buffer) => void,
  exportName: string,
): Promise<NbdExportInfo> {
  const hello = await reader.read(18);
  if (hello.readBigUInt64BE(0) !== P.NBDMAGIC)
    throw protocolError('the server did not greet us as an NBD server (no NBDMAGIC)');
  const style = hello.readBigUInt64BE(8);
  if (style === P.OLDSTYLE_MAGIC) {
    throw new P2vError('NBD', 'NBD server speaks only the old-style handshake', {
      hint: 'run nbdkit without --oldstyle',
    });
  }
  if (style !== P.IHAVEOPT) throw protocolError('NBD server sent an unknown handshake style');
  const serverFlags = hello.readUInt16BE(16);
  const fixed = (serverFlags & P.FLAG_FIXED_NEWSTYLE) !== 0;
  const noZeroes = (serverFlags & P.FLAG_NO_ZEROES) !== 0;
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE((fixed ? P.FLAG_FIXED_NEWSTYLE : 0) | (noZeroes ? P.FLAG_NO_ZEROES : 0));
  write(clientFlags);

  // Plain (unfixed) newstyle servers may drop the connection on any option
  // they do not know: ask them for nothing but the export.
  if (!fixed) return exportNameOnly(reader, write, exportName, noZeroes, false, undefined);

  write(P.encodeOption(P.OPT_STRUCTURED_REPLY));
  const sr = await readOptionReply(reader, P.OPT_STRUCTURED_REPLY);
  if (sr.type !== P.REP_ACK && !P.isOptionError(sr.type))
    throw protocolError(`NBD server sent reply type ${sr.type} to the structured reply option`);
  const structuredReplies = sr.type === P.REP_ACK;

  let allocationContext: number | undefined;
  if (structuredReplies) {
    write(P.encodeOption(P.OPT_SET_META_CONTEXT, P.encodeMetaContext(exportName, [P.ALLOCATION_CONTEXT])));
    for (;;) {
      const r = await readOptionReply(reader, P.OPT_SET_META_CONTEXT);
      if (r.type === P.REP_META_CONTEXT) {
        const ctx = P.decodeMetaContext(r.payload);
        if (ctx.name === P.ALLOCATION_CONTEXT) allocationContext = ctx.id;
        continue;
      }
      // ACK ends the list; an error just means no block status.
      if (r.type === P.REP_ACK || P.isOptionError(r.type)) break;
      throw protocolError(`NBD server sent reply type ${r.type} to the meta context option`);
    }
  }

  write(P.encodeOption(P.OPT_GO, P.encodeGo(exportName, [P.INFO_BLOCK_SIZE])));
  let size: number | undefined;
  let flags = 0;
  let blockSizes: NbdExportInfo['blockSizes'];
  for (;;) {
    const r = await readOptionReply(reader, P.OPT_GO);
    if (r.type === P.REP_INFO) {
      const item = P.decodeInfo(r.payload);
      if (item.kind === 'export') {
        size = item.size;
        flags = item.flags;
      } else if (item.kind === 'block-size') {
        blockSizes = { min: item.min, preferred: item.preferred, max: item.max };
      }
      continue;
    }
    if (r.type === P.REP_ACK) break;
    if (r.type === P.REP_ERR_UNSUP)
      return exportNameOnly(reader, write, exportName, noZeroes, structuredReplies, allocationContext);
    if (P.isOptionError(r.type)) throw optionFailure(`export "${exportName}"`, r);
    throw protocolError(`NBD server sent reply type ${r.type} to NBD_OPT_GO`);
  }
  if (size === undefined) throw protocolError('NBD server accepted the export without telling its size');
  return {
    size,
    flags,
    structuredReplies,
    ...(blockSizes ? { blockSizes } : {}),
    ...(allocationContext !== undefined ? { allocationContext } : {}),
  };
}

async function exportNameOnly(
  reader: HandshakeReader,
  write: (b: Buffer) => void,
  exportName: string,
  noZeroes: boolean,
  structuredReplies: boolean,
  allocationContext: number | undefined,
): Promise<NbdExportInfo> {
  write(P.encodeOption(P.OPT_EXPORT_NAME, Buffer.from(exportName, 'utf8')));
  const r = await reader.read(noZeroes ? 10 : 134);
  const { size, flags } = P.decodeExportNameReply(r);
  return { size, flags, structuredReplies, ...(allocationContext !== undefined ? { allocationContext } : {}) };
}
