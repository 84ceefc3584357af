/**
 * NVMe commands: opcodes, the builders of the commands this driver issues,
 * and the encoding of a 64-byte submission queue entry (NVMe base
 * specification, "Submission Queue Entry - Command Format"):
 *
 *   bytes  0..3   CDW0: opcode, flags (FUSE, PSDT = 0: PRPs), command identifier
 *   bytes  4..7   NSID
 *   bytes  8..15  CDW2, CDW3
 *   bytes 16..23  MPTR (metadata pointer)
 *   bytes 24..39  DPTR: PRP entry 1, PRP entry 2
 *   bytes 40..63  CDW10 .. CDW15
 *
 * A command is plain data here; the queue pair gives it an identifier and
 * turns its `data` into PRP entries when it is submitted.
 */
import { put64 } from './prp';
import type { IoSegment } from './prp';
import { checkArray, checkInt, kindOf, toBigInt } from '../../validate';

const U16 = 0xffff;
const U32 = 0xffffffff;

/** writeSubmission's arguments that are not numbers, named: only called once one is found (off the hot path). */
function badEntryArguments(sq: unknown, w: unknown, values: readonly unknown[]): TypeError | RangeError {
  if (!(sq instanceof Uint32Array)) return new TypeError(`sq must be a Uint32Array, not ${kindOf(sq)}`);
  if (typeof w !== 'number') return new TypeError(`w must be a number, not ${kindOf(w)}`);
  if (!Number.isInteger(w) || w < 0 || w + 16 > sq.length)
    return new RangeError(`w must be the index of a 16-word entry inside sq (${sq.length} words), got ${w}`);
  const names = ['opcode', 'cid', 'nsid', 'prp1', 'prp2', 'cdw10', 'cdw11', 'cdw12', 'cdw13', 'cdw14', 'cdw15'];
  const i = values.findIndex((v) => typeof v !== 'number');
  return new TypeError(`${names[i]} must be a number, not ${kindOf(values[i])}`);
}

/** Admin command opcodes (NVMe base specification, "Admin Command Set"), for commands on queue 0. */
export const AdminOpcode = {
  /** Delete I/O Submission Queue. */
  DELETE_IO_SQ: 0x00,
  /** Create I/O Submission Queue. */
  CREATE_IO_SQ: 0x01,
  /** Get Log Page. */
  GET_LOG_PAGE: 0x02,
  /** Delete I/O Completion Queue. */
  DELETE_IO_CQ: 0x04,
  /** Create I/O Completion Queue. */
  CREATE_IO_CQ: 0x05,
  /** Identify: a 4 KiB data structure chosen by CNS ({@link IdentifyCns}). */
  IDENTIFY: 0x06,
  /** Abort a command. */
  ABORT: 0x08,
  /** Set Features. */
  SET_FEATURES: 0x09,
  /** Get Features. */
  GET_FEATURES: 0x0a,
  /** Asynchronous Event Request. */
  ASYNC_EVENT_REQUEST: 0x0c,
  /** Doorbell Buffer Config: shadow doorbell and EventIdx buffers, for emulated controllers. */
  DOORBELL_BUFFER_CONFIG: 0x7c,
} as const;

/** NVM command set I/O opcodes this driver issues. */
export const IoOpcode = {
  /** Flush: commit the volatile write cache. */
  FLUSH: 0x00,
  /** Write logical blocks. */
  WRITE: 0x01,
  /** Read logical blocks. */
  READ: 0x02,
  /** Write Zeroes: set logical blocks to zero without a data transfer. */
  WRITE_ZEROES: 0x08,
} as const;

/** Identify's Controller or Namespace Structure (CNS) values. */
export const IdentifyCns = {
  /** Identify Namespace: the namespace given by NSID. */
  NAMESPACE: 0x00,
  /** Identify Controller. */
  CONTROLLER: 0x01,
  /** The Active Namespace ID list: IDs greater than NSID, ascending. */
  ACTIVE_NAMESPACES: 0x02,
} as const;

/** Feature identifiers of Set/Get Features that this driver uses. */
export const FeatureId = {
  /** Number of Queues: I/O submission and completion queues requested and granted. */
  NUMBER_OF_QUEUES: 0x07,
} as const;

/** Every Identify data structure is 4 KiB. */
export const IDENTIFY_SIZE = 4096;

/** Read/Write CDW12: Force Unit Access. */
export const RW_FUA = 1 << 30;
/** Create I/O CQ/SQ CDW11: physically contiguous; interrupts enabled (CQ only). */
const QUEUE_CONTIGUOUS = 1 << 0;
const CQ_INTERRUPTS_ENABLED = 1 << 1;

/**
 * A command as plain data, before its queue gives it a command identifier
 * and turns `data` into PRP entries: what {@link NvmeController.adminCommand}
 * and {@link NvmeController.io} submit. The builders of this module make them.
 */
export interface NvmeCommand {
  /** For messages: 'Read', 'Identify', ... */
  name: string;
  /** The opcode ({@link AdminOpcode} on the admin queue, {@link IoOpcode} on I/O queues). */
  opcode: number;
  /** The namespace ID (default 0: none). */
  nsid?: number;
  /** Memory the command transfers from or to: becomes PRP1/PRP2 (and a PRP list). */
  data?: readonly IoSegment[];
  /** A raw PRP1 that is not a data transfer (the base of a queue being created). */
  prp1?: bigint;
  /** A raw PRP2 that is not a data transfer (the EventIdx buffer of Doorbell Buffer Config). */
  prp2?: bigint;
  /** Command dword 10: command specific (default 0). */
  cdw10?: number;
  /** Command dword 11: command specific (default 0). */
  cdw11?: number;
  /** Command dword 12: command specific (default 0). */
  cdw12?: number;
  /** Command dword 13: command specific (default 0). */
  cdw13?: number;
  /** Command dword 14: command specific (default 0). */
  cdw14?: number;
  /** Command dword 15: command specific (default 0). */
  cdw15?: number;
}

/**
 * Writes one 64-byte submission entry at word `w` of `sq` (the queue's
 * memory as 32-bit words): CDW0 from `opcode` and `cid` (no fusing, PRPs),
 * NSID, PRP1 and PRP2 (integers below 2^53, as two 32-bit halves) and
 * CDW10-15. CDW2, CDW3 and MPTR (words 2-5) are 0 in every command this
 * driver writes and the rings start zeroed, so they are left as they are.
 *
 * Made for emulated guests, where every floating-point operation is a call
 * into a software floating-point library: each value goes through `| 0`,
 * which keeps a small integer an integer (`x | 0` has the bits of `x` for
 * every integer below 2^32, so the Uint32Array stores the same value), and
 * a PRP's high half is computed only when it is not 0 (`put64` in prp.ts).
 */
export function writeSubmission(
  sq: Uint32Array,
  w: number,
  opcode: number,
  cid: number,
  nsid: number,
  prp1: number,
  prp2: number,
  cdw10: number,
  cdw11: number,
  cdw12: number,
  cdw13: number,
  cdw14: number,
  cdw15: number,
): void {
  // typeof checks only (the per-command path): what is not a number would meet JavaScript's own conversions.
  if (
    !(sq instanceof Uint32Array) ||
    typeof w !== 'number' ||
    !(w >= 0 && w + 16 <= sq.length) ||
    typeof opcode !== 'number' ||
    typeof cid !== 'number' ||
    typeof nsid !== 'number' ||
    typeof prp1 !== 'number' ||
    typeof prp2 !== 'number' ||
    typeof cdw10 !== 'number' ||
    typeof cdw11 !== 'number' ||
    typeof cdw12 !== 'number' ||
    typeof cdw13 !== 'number' ||
    typeof cdw14 !== 'number' ||
    typeof cdw15 !== 'number'
  )
    throw badEntryArguments(sq, w, [opcode, cid, nsid, prp1, prp2, cdw10, cdw11, cdw12, cdw13, cdw14, cdw15]);
  sq[w] = (opcode & 0xff) | (cid << 16);
  sq[w + 1] = nsid | 0;
  put64(sq, w + 6, prp1);
  put64(sq, w + 8, prp2);
  sq[w + 10] = cdw10 | 0;
  sq[w + 11] = cdw11 | 0;
  sq[w + 12] = cdw12 | 0;
  sq[w + 13] = cdw13 | 0;
  sq[w + 14] = cdw14 | 0;
  sq[w + 15] = cdw15 | 0;
}

/** Writes `cmd` as the 64-byte entry at word `w` of `sq`, with identifier `cid` and data pointer `prp1`, `prp2`. */
export function encodeCommand(sq: Uint32Array, w: number, cmd: NvmeCommand, cid: number, prp1: number, prp2: number): void {
  if (cmd === null || typeof cmd !== 'object') throw new TypeError(`cmd must be an NvmeCommand object, not ${kindOf(cmd)}`);
  writeSubmission(
    sq,
    w,
    cmd.opcode,
    cid,
    cmd.nsid ?? 0,
    prp1,
    prp2,
    cmd.cdw10 ?? 0,
    cmd.cdw11 ?? 0,
    cmd.cdw12 ?? 0,
    cmd.cdw13 ?? 0,
    cmd.cdw14 ?? 0,
    cmd.cdw15 ?? 0,
  );
}

/** Identify: the 4 KiB data structure `cns` ({@link IdentifyCns}) of namespace `nsid`, into `data` (4096 bytes). */
export function identify(cns: number, data: readonly IoSegment[], nsid = 0): NvmeCommand {
  checkInt(cns, 'cns', 0, 0xff);
  checkArray(data, 'data');
  checkInt(nsid, 'nsid', 0, U32);
  return { name: 'Identify', opcode: AdminOpcode.IDENTIFY, nsid, data, cdw10: cns };
}

/** Set Features, Number of Queues: asks for `count` I/O submission and completion queues. */
export function setNumberOfQueues(count: number): NvmeCommand {
  checkInt(count, 'count', 1, U16);
  const n = count - 1; // 0's based
  return {
    name: 'Set Features (Number of Queues)',
    opcode: AdminOpcode.SET_FEATURES,
    cdw10: FeatureId.NUMBER_OF_QUEUES,
    cdw11: (n << 16) | n,
  };
}

/** Create I/O Completion Queue at `iova` (contiguous); `vector` enables its interrupts on that MSI-X vector. */
export function createIoCq(qid: number, entries: number, iova: bigint, vector?: number): NvmeCommand {
  checkInt(qid, 'qid', 1, U16);
  checkInt(entries, 'entries', 2, U16 + 1);
  toBigInt(iova, 'iova');
  if (vector !== undefined) checkInt(vector, 'vector', 0, 2047);
  const irq = vector === undefined ? 0 : (vector << 16) | CQ_INTERRUPTS_ENABLED;
  return {
    name: 'Create I/O Completion Queue',
    opcode: AdminOpcode.CREATE_IO_CQ,
    prp1: iova,
    cdw10: ((entries - 1) << 16) | qid,
    cdw11: irq | QUEUE_CONTIGUOUS,
  };
}

/** Create I/O Submission Queue at `iova` (contiguous), completing into `cqid`, priority 0. */
export function createIoSq(qid: number, entries: number, iova: bigint, cqid: number): NvmeCommand {
  checkInt(qid, 'qid', 1, U16);
  checkInt(entries, 'entries', 2, U16 + 1);
  toBigInt(iova, 'iova');
  checkInt(cqid, 'cqid', 1, U16);
  return {
    name: 'Create I/O Submission Queue',
    opcode: AdminOpcode.CREATE_IO_SQ,
    prp1: iova,
    cdw10: ((entries - 1) << 16) | qid,
    cdw11: (cqid << 16) | QUEUE_CONTIGUOUS,
  };
}

/** Delete I/O Submission Queue `qid` (delete it before its completion queue). */
export function deleteIoSq(qid: number): NvmeCommand {
  checkInt(qid, 'qid', 1, U16);
  return { name: 'Delete I/O Submission Queue', opcode: AdminOpcode.DELETE_IO_SQ, cdw10: qid };
}

/** Delete I/O Completion Queue `qid`. */
export function deleteIoCq(qid: number): NvmeCommand {
  checkInt(qid, 'qid', 1, U16);
  return { name: 'Delete I/O Completion Queue', opcode: AdminOpcode.DELETE_IO_CQ, cdw10: qid };
}

/**
 * Doorbell Buffer Config: from now on the I/O queues' SQ tails and CQ heads
 * are written to the page at `shadow` first (laid out as the doorbell
 * registers are), and a doorbell register is written only when the value
 * passes the EventIdx the controller keeps in the page at `eventIdx`. Both
 * page aligned. For emulated controllers (OACS bit 8), whose doorbell
 * registers are expensive to write.
 */
export function doorbellBufferConfig(shadow: bigint, eventIdx: bigint): NvmeCommand {
  toBigInt(shadow, 'shadow');
  toBigInt(eventIdx, 'eventIdx');
  return { name: 'Doorbell Buffer Config', opcode: AdminOpcode.DOORBELL_BUFFER_CONFIG, prp1: shadow, prp2: eventIdx };
}

/** Asynchronous Event Request: completes only when the controller has an event to report. */
export function asyncEventRequest(): NvmeCommand {
  return { name: 'Asynchronous Event Request', opcode: AdminOpcode.ASYNC_EVENT_REQUEST };
}

/** CDW10-12 of the commands that address a block range: starting LBA (64 bits), NLB (0's based). */
function blockRange(lba: bigint, blocks: number): Pick<NvmeCommand, 'cdw10' | 'cdw11' | 'cdw12'> {
  const at = toBigInt(lba, 'lba');
  checkInt(blocks, 'blocks', 1, U16 + 1);
  return { cdw10: Number(at & 0xffffffffn), cdw11: Number(at >> 32n), cdw12: (blocks - 1) & 0xffff };
}

/** Read or Write of `blocks` logical blocks from `lba`. */
export function readWrite(
  opcode: typeof IoOpcode.READ | typeof IoOpcode.WRITE,
  nsid: number,
  lba: bigint,
  blocks: number,
  data: readonly IoSegment[],
  fua = false,
): NvmeCommand {
  if (opcode !== IoOpcode.READ && opcode !== IoOpcode.WRITE)
    throw new RangeError(
      `opcode must be IoOpcode.READ (2) or IoOpcode.WRITE (1), got ${typeof opcode === 'number' ? opcode : kindOf(opcode)}`,
    );
  checkInt(nsid, 'nsid', 1, U32);
  checkArray(data, 'data');
  if (typeof fua !== 'boolean') throw new TypeError(`fua must be a boolean, not ${kindOf(fua)}`);
  const range = blockRange(lba, blocks);
  return { name: opcode === IoOpcode.READ ? 'Read' : 'Write', opcode, nsid, data, ...range, cdw12: range.cdw12! | (fua ? RW_FUA : 0) };
}

/** Flush: make what was written to namespace `nsid` durable. */
export function flush(nsid: number): NvmeCommand {
  checkInt(nsid, 'nsid', 1, U32);
  return { name: 'Flush', opcode: IoOpcode.FLUSH, nsid };
}

/** Write Zeroes of `blocks` logical blocks from `lba` (no data moves). */
export function writeZeroes(nsid: number, lba: bigint, blocks: number): NvmeCommand {
  checkInt(nsid, 'nsid', 1, U32);
  return { name: 'Write Zeroes', opcode: IoOpcode.WRITE_ZEROES, nsid, ...blockRange(lba, blocks) };
}
