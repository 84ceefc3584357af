/**
 * The 16-byte completion queue entry (NVMe base specification, "Common
 * Completion Queue Entry"):
 *
 *   DW0      command specific result
 *   DW1      command specific
 *   DW2      SQ head pointer (15:0), SQ identifier (31:16)
 *   DW3      command identifier (15:0), phase tag (16), status (31:17)
 *
 * The status field: status code SC (7:0), status code type SCT (10:8),
 * command retry delay CRD (12:11), More (13), Do Not Retry (14) -- here
 * counted from bit 17 of DW3, after the phase tag.
 */

/** A completion queue entry, decoded: what an NVMe command's promise resolves to. */
export interface Completion {
  /** DW0: the command's result (Set Features returns what was granted here). */
  result: number;
  /** DW1: command specific (most commands leave it 0). */
  dw1: number;
  /** Where the controller's head of the submission queue is now. */
  sqHead: number;
  /** The submission queue the command came from. */
  sqId: number;
  /** The command identifier the queue gave the command. */
  cid: number;
  /** The 15-bit status field (0: success). */
  status: number;
}

/** The 15-bit status field of a completion, decoded. */
export interface Status {
  /** Status Code Type: 0 generic, 1 command specific, 2 media and data integrity, 3 path related, 7 vendor. */
  type: number;
  /** Status Code, within its type. */
  code: number;
  /** Command Retry Delay selector. */
  retryDelay: number;
  /** More status information is in the Error Information log page. */
  more: boolean;
  /** Do Not Retry: the same command would fail again. */
  doNotRetry: boolean;
}

/** The phase tag in DW3 of a completion entry: the controller flips it on each pass through the queue. */
export function phaseOf(dw3: number): number {
  return (dw3 >>> 16) & 1;
}

/** Decodes the 16-byte completion entry at word `w` of `cq` (the queue's memory as 32-bit words). */
export function decodeCompletion(cq: Uint32Array, w: number): Completion {
  const dw2 = cq[w + 2];
  const dw3 = cq[w + 3];
  return {
    result: cq[w],
    dw1: cq[w + 1],
    sqHead: dw2 & 0xffff,
    sqId: dw2 >>> 16,
    cid: dw3 & 0xffff,
    status: dw3 >>> 17,
  };
}

/** Decodes a completion's 15-bit status field. */
export function decodeStatus(status: number): Status {
  return {
    code: status & 0xff,
    type: (status >>> 8) & 0x7,
    retryDelay: (status >>> 11) & 0x3,
    more: (status & (1 << 13)) !== 0,
    doNotRetry: (status & (1 << 14)) !== 0,
  };
}
