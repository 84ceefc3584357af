/**
 * The NVMe driver's errors. Every failure of a command is an NvmeError
 * with a `code`:
 *
 *   'ERR_NVME_STATUS'  the controller completed the command with an error
 *                      status (NvmeStatusError: statusCodeType, statusCode,
 *                      doNotRetry, more, and the status's name in the message)
 *   'ETIMEDOUT'        no completion within the command's time-out
 *   'ERR_NVME_FATAL'   the controller reports Controller Fatal Status (CSTS.CFS)
 *   'ERR_NVME_ABORTED' the driver gave the command up: its queue was deleted
 *                      or the controller reset or closed while it was in flight
 *   'ERR_NVME_REVOKED' the command's data mapping (peer memory under
 *                      iommufd) was revoked while it was in flight
 *                      (NvmeRevokedError: the mapping, and the status the
 *                      controller gave, if any)
 *
 * Status names are those of the NVMe base specification.
 */
import { DmaMapping } from '../../dma-mapping';
import { checkInstance, checkInt, checkObject, checkString, hex } from '../../validate';
import { decodeStatus, Status } from './completion';

/**
 * Why an NVMe command failed: `'ERR_NVME_STATUS'` (the controller completed
 * it with an error status: an {@link NvmeStatusError}), `'ETIMEDOUT'` (no
 * completion within its time-out; its identifier stays taken until it
 * completes or the controller is reset), `'ERR_NVME_FATAL'` (Controller Fatal
 * Status, or the controller is gone from the bus), `'ERR_NVME_ABORTED'` (the
 * driver gave it up: queue deleted, controller reset or closed),
 * `'ERR_NVME_REVOKED'` (its data mapping was revoked while it was in flight:
 * an {@link NvmeRevokedError}).
 */
export type NvmeErrorCode = 'ERR_NVME_STATUS' | 'ETIMEDOUT' | 'ERR_NVME_FATAL' | 'ERR_NVME_ABORTED' | 'ERR_NVME_REVOKED';

/** Status code types (SCT). */
export const StatusType = {
  /** Generic Command Status. */
  GENERIC: 0,
  /** Command Specific Status. */
  COMMAND_SPECIFIC: 1,
  /** Media and Data Integrity Errors. */
  MEDIA: 2,
  /** Path Related Status. */
  PATH: 3,
  /** Vendor Specific. */
  VENDOR: 7,
} as const;

const TYPE_NAMES: Record<number, string> = {
  0: 'Generic Command Status',
  1: 'Command Specific Status',
  2: 'Media and Data Integrity Errors',
  3: 'Path Related Status',
  7: 'Vendor Specific',
};

/** Status names by (SCT << 8) | SC; codes from 80h of types 0 and 1 are those of the NVM command set. */
const STATUS_NAMES: Record<number, string> = {
  0x000: 'Successful Completion',
  0x001: 'Invalid Command Opcode',
  0x002: 'Invalid Field in Command',
  0x003: 'Command ID Conflict',
  0x004: 'Data Transfer Error',
  0x005: 'Commands Aborted due to Power Loss Notification',
  0x006: 'Internal Error',
  0x007: 'Command Abort Requested',
  0x008: 'Command Aborted due to SQ Deletion',
  0x009: 'Command Aborted due to Failed Fused Command',
  0x00a: 'Command Aborted due to Missing Fused Command',
  0x00b: 'Invalid Namespace or Format',
  0x00c: 'Command Sequence Error',
  0x00d: 'Invalid SGL Segment Descriptor',
  0x00e: 'Invalid Number of SGL Descriptors',
  0x00f: 'Data SGL Length Invalid',
  0x010: 'Metadata SGL Length Invalid',
  0x011: 'SGL Descriptor Type Invalid',
  0x012: 'Invalid Use of Controller Memory Buffer',
  0x013: 'PRP Offset Invalid',
  0x014: 'Atomic Write Unit Exceeded',
  0x015: 'Operation Denied',
  0x016: 'SGL Offset Invalid',
  0x018: 'Host Identifier Inconsistent Format',
  0x019: 'Keep Alive Timer Expired',
  0x01a: 'Keep Alive Timeout Invalid',
  0x01b: 'Command Aborted due to Preempt and Abort',
  0x01c: 'Sanitize Failed',
  0x01d: 'Sanitize In Progress',
  0x01e: 'SGL Data Block Granularity Invalid',
  0x01f: 'Command Not Supported for Queue in CMB',
  0x020: 'Namespace is Write Protected',
  0x021: 'Command Interrupted',
  0x022: 'Transient Transport Error',
  0x080: 'LBA Out of Range',
  0x081: 'Capacity Exceeded',
  0x082: 'Namespace Not Ready',
  0x083: 'Reservation Conflict',
  0x084: 'Format In Progress',
  0x100: 'Completion Queue Invalid',
  0x101: 'Invalid Queue Identifier',
  0x102: 'Invalid Queue Size',
  0x103: 'Abort Command Limit Exceeded',
  0x105: 'Asynchronous Event Request Limit Exceeded',
  0x106: 'Invalid Firmware Slot',
  0x107: 'Invalid Firmware Image',
  0x108: 'Invalid Interrupt Vector',
  0x109: 'Invalid Log Page',
  0x10a: 'Invalid Format',
  0x10c: 'Invalid Queue Deletion',
  0x10d: 'Feature Identifier Not Saveable',
  0x10e: 'Feature Not Changeable',
  0x10f: 'Feature Not Namespace Specific',
  0x180: 'Conflicting Attributes',
  0x181: 'Invalid Protection Information',
  0x182: 'Attempted Write to Read Only Range',
  0x280: 'Write Fault',
  0x281: 'Unrecovered Read Error',
  0x282: 'End-to-end Guard Check Error',
  0x283: 'End-to-end Application Tag Check Error',
  0x284: 'End-to-end Reference Tag Check Error',
  0x285: 'Compare Failure',
  0x286: 'Access Denied',
  0x287: 'Deallocated or Unwritten Logical Block',
  0x300: 'Internal Path Error',
  0x301: 'Asymmetric Access Persistent Loss',
  0x302: 'Asymmetric Access Inaccessible',
  0x303: 'Asymmetric Access Transition',
  0x360: 'Controller Pathing Error',
  0x370: 'Host Pathing Error',
  0x371: 'Command Aborted By Host',
};

/** The specification's name of a status (type, code). */
export function statusName(type: number, code: number): string {
  checkInt(type, 'type', 0, 7);
  checkInt(code, 'code', 0, 0xff);
  return (
    STATUS_NAMES[(type << 8) | code] ?? `${TYPE_NAMES[type] ?? `status code type ${type}`}, code 0x${code.toString(16).padStart(2, '0')}`
  );
}

/** Which command, on which queue: carried by every command error. */
export interface CommandContext {
  /** The command's name, e.g. 'Read'. */
  command: string;
  /** Its opcode. */
  opcode: number;
  /** The queue ID (0: admin). */
  queue: number;
  /** Its command identifier, when it had one (undefined while it waited for a slot). */
  cid?: number;
}

/** A failed NVMe command, or a controller that failed: see {@link NvmeErrorCode}. */
export class NvmeError extends Error {
  /** The command's name, when the error is about one command. */
  readonly command?: string;
  /** The command's opcode. */
  readonly opcode?: number;
  /** The queue it was on (0: admin). */
  readonly queue?: number;
  /** Its command identifier. */
  readonly cid?: number;

  /**
   * Made by the driver.
   *
   * @param message - What happened.
   * @param code - Why: see {@link NvmeErrorCode}.
   * @param context - The command it is about, if any.
   */
  constructor(
    message: string,
    /** Why: see {@link NvmeErrorCode}. */
    readonly code: NvmeErrorCode,
    context?: CommandContext,
  ) {
    super(checkString(message, 'message'));
    checkString(code, 'code');
    if (context !== undefined) checkContext(context);
    this.name = 'NvmeError';
    if (context) Object.assign(this, context);
  }
}

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

/** A CommandContext as the errors' constructors take it: TypeError or RangeError naming the field otherwise. */
function checkContext(c: CommandContext): void {
  checkObject(c, 'context');
  checkString(c.command, 'context.command');
  checkInt(c.opcode, 'context.opcode', 0, 0xff);
  checkInt(c.queue, 'context.queue', 0, 0xffff);
  if (c.cid !== undefined) checkInt(c.cid, 'context.cid', 0, 0xffff);
}

/** For messages: 'Read (opcode 0x02) on queue 1, command 5'. */
export function describeCommand(c: CommandContext): string {
  return `${c.command} (opcode ${hex2(c.opcode)}) on queue ${c.queue}${c.cid === undefined ? '' : `, command ${c.cid}`}`;
}

/**
 * A completion with an error status: the controller carried the command
 * out, or refused it, and says why (the message names the status as the
 * specification does, e.g. 'LBA Out of Range').
 */
export class NvmeStatusError extends NvmeError {
  /** Always 'ERR_NVME_STATUS'. */
  declare readonly code: 'ERR_NVME_STATUS';
  /** SCT: 0 generic, 1 command specific, 2 media and data integrity, 3 path related. */
  readonly statusCodeType: number;
  /** SC, within its type (80h 'LBA Out of Range' of type 0, for instance). */
  readonly statusCode: number;
  /** The specification's name of the status, e.g. 'Invalid Field in Command'. */
  readonly statusName: string;
  /** DNR: the same command would fail again. */
  readonly doNotRetry: boolean;
  /** M: more information is in the Error Information log page. */
  readonly more: boolean;
  /** The raw 15-bit status field. */
  readonly status: number;
  /** DW0 of the completion. */
  readonly result: number;

  /**
   * Made from a completion entry whose status is not 0.
   *
   * @param status - The completion's 15-bit status field.
   * @param result - The completion's DW0.
   * @param context - The command.
   */
  constructor(status: number, result: number, context: CommandContext) {
    checkInt(status, 'status', 0, 0xffff);
    checkInt(result, 'result', 0, 0xffffffff);
    checkContext(context);
    const s: Status = decodeStatus(status);
    const name = statusName(s.type, s.code);
    const flags = [s.doNotRetry ? 'do not retry' : '', s.more ? 'more in the error log' : ''].filter(Boolean).join(', ');
    super(
      `${describeCommand(context)} failed: ${name} (SCT ${s.type} ${TYPE_NAMES[s.type] ?? 'reserved'}, SC ${hex2(s.code)})${flags ? `; ${flags}` : ''}`,
      'ERR_NVME_STATUS',
      context,
    );
    this.name = 'NvmeStatusError';
    this.statusCodeType = s.type;
    this.statusCode = s.code;
    this.statusName = name;
    this.doNotRetry = s.doNotRetry;
    this.more = s.more;
    this.status = status;
    this.result = result;
  }
}

/** For messages: 'the mapping at IOVA 0x100000 (0x2000 bytes)'. */
export function describeMapping(m: DmaMapping): string {
  return `the mapping at IOVA ${hex(m.dmaAddress)} (${hex(m.byteLength)} bytes)`;
}

/**
 * A command whose data mapping was revoked while the controller held it: the
 * peer memory behind it (a P2PProvider's dma-buf under iommufd) went
 * away because the exporting device was reset or stopped decoding its
 * memory, and iommufd removed the IOMMU entries. Whatever the controller
 * answered, the data did not reliably reach its memory (reads) or come from
 * it (writes: the blocks written may hold anything), so the command counts
 * as failed. Unmap the mapping, link the list again (fresh dma-bufs) and
 * repeat the command.
 */
export class NvmeRevokedError extends NvmeError {
  /** Always 'ERR_NVME_REVOKED'. */
  declare readonly code: 'ERR_NVME_REVOKED';
  /** The revoked mapping the command's data was in ({@link DmaMapping.revoked} is true). */
  readonly mapping: DmaMapping;
  /** The error status the controller completed the command with, if it gave one (also the error's `cause`). */
  readonly statusError?: NvmeStatusError;

  /**
   * Made by the driver when a command's completion (or its failure) comes after its mapping was revoked.
   *
   * @param context - The command.
   * @param mapping - Its data mapping, revoked.
   * @param statusError - What the controller answered, when it was an error status.
   */
  constructor(context: CommandContext, mapping: DmaMapping, statusError?: NvmeStatusError) {
    checkContext(context);
    checkInstance(mapping, DmaMapping, 'mapping');
    if (statusError !== undefined) checkInstance(statusError, NvmeStatusError, 'statusError');
    super(
      `${describeCommand(context)}: its data buffer, ${describeMapping(mapping)}, was revoked while the command was in flight ` +
        `(the peer device exporting that memory was reset or stopped decoding it), so the data did not reliably move` +
        `${statusError ? `; the controller answered ${statusError.statusName}` : ''}: unmap the mapping, link its list again and repeat the command`,
      'ERR_NVME_REVOKED',
      context,
    );
    this.name = 'NvmeRevokedError';
    this.mapping = mapping;
    if (statusError) {
      this.statusError = statusError;
      this.cause = statusError;
    }
  }
}
