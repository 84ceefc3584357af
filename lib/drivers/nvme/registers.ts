/**
 * NVMe controller registers (BAR0, NVMe base specification section 3.1):
 * offsets, the fields of CAP, CC, CSTS and AQA, and the doorbells, whose
 * spacing is set by CAP.DSTRD. Every access is a 32-bit access (64-bit
 * registers as two halves, low first), which the specification allows
 * for every register and every controller.
 */
import { Region } from '../../region';
import { checkInstance, checkInt, kindOf, toBigInt } from '../../validate';

/** Register offsets in BAR0. */
export const NvmeReg = {
  /** Controller Capabilities (64-bit). */
  CAP: 0x00,
  /** Version. */
  VS: 0x08,
  /** Interrupt Mask Set (pin-based and MSI only). */
  INTMS: 0x0c,
  /** Interrupt Mask Clear. */
  INTMC: 0x10,
  /** Controller Configuration. */
  CC: 0x14,
  /** Controller Status. */
  CSTS: 0x1c,
  /** NVM Subsystem Reset. */
  NSSR: 0x20,
  /** Admin Queue Attributes: the admin queues' sizes. */
  AQA: 0x24,
  /** Admin Submission Queue base address (64-bit). */
  ASQ: 0x28,
  /** Admin Completion Queue base address (64-bit). */
  ACQ: 0x30,
  /** Submission queue 0 tail doorbell; the others follow at the CAP.DSTRD stride. */
  DOORBELLS: 0x1000,
} as const;

/** CC fields (offset 14h). */
export const CC = {
  EN: 1 << 0,
  CSS_SHIFT: 4,
  CSS_NVM: 0,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  AMS_ROUND_ROBIN: 0,
  SHN_SHIFT: 14,
  SHN_MASK: 3 << 14,
  SHN_NORMAL: 1 << 14,
  IOSQES_SHIFT: 16,
  IOCQES_SHIFT: 20,
} as const;

/** CSTS fields (offset 1Ch). */
export const CSTS = {
  RDY: 1 << 0,
  CFS: 1 << 1,
  SHST_SHIFT: 2,
  SHST_MASK: 3 << 2,
  SHST_COMPLETE: 2 << 2,
  NSSRO: 1 << 4,
  PP: 1 << 5,
} as const;

/** log2 of the queue entry sizes of the NVM command set: 64-byte SQ entries, 16-byte CQ entries. */
export const SQ_ENTRY_SHIFT = 6;
/** log2 of the completion queue entry size (16 bytes). */
export const CQ_ENTRY_SHIFT = 4;
/** Bytes of a submission queue entry. */
export const SQ_ENTRY_SIZE = 1 << SQ_ENTRY_SHIFT;
/** Bytes of a completion queue entry. */
export const CQ_ENTRY_SIZE = 1 << CQ_ENTRY_SHIFT;

/** CAP (offset 0), decoded. */
export interface Capabilities {
  /** The 64-bit register as read. */
  raw: bigint;
  /** Largest queue the controller takes, in entries (MQES is 0's based). */
  maxQueueEntries: number;
  /** Queues must be physically (here: IOVA-) contiguous. */
  contiguousQueuesRequired: boolean;
  /** Worst case for CSTS.RDY to follow CC.EN, from CAP.TO (500 ms units). */
  readyTimeoutMs: number;
  /** Bytes between doorbell registers: 4 << CAP.DSTRD. */
  doorbellStride: number;
  /** NSSRS: the NVM Subsystem Reset register is supported. */
  subsystemResetSupported: boolean;
  /** Command sets supported (CAP.CSS bit field; bit 0: the NVM command set). */
  commandSets: number;
  /** Smallest memory page size (CC.MPS) in bytes: MPSMIN. */
  minPageSize: number;
  /** Largest memory page size in bytes: MPSMAX. */
  maxPageSize: number;
  /** CMBS: the controller has a Controller Memory Buffer. */
  controllerMemoryBufferSupported: boolean;
}

const field = (v: bigint, shift: number, bits: number): number => Number((v >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n));

/** Decodes the CAP register's fields. */
export function decodeCapabilities(raw: bigint): Capabilities {
  if (typeof raw !== 'bigint') throw new TypeError(`raw must be a bigint (the 64-bit CAP register), not ${kindOf(raw)}`);
  return {
    raw,
    maxQueueEntries: field(raw, 0, 16) + 1,
    contiguousQueuesRequired: field(raw, 16, 1) === 1,
    readyTimeoutMs: field(raw, 24, 8) * 500,
    doorbellStride: 4 << field(raw, 32, 4),
    subsystemResetSupported: field(raw, 36, 1) === 1,
    commandSets: field(raw, 37, 8),
    minPageSize: 1 << (12 + field(raw, 48, 4)),
    maxPageSize: 2 ** (12 + field(raw, 52, 4)),
    controllerMemoryBufferSupported: field(raw, 57, 1) === 1,
  };
}

/** CSTS, decoded. */
export interface ControllerStatus {
  /** The 32-bit register as read (all ones when the controller is gone from the bus). */
  raw: number;
  /** RDY: the controller is ready to process commands (follows CC.EN). */
  ready: boolean;
  /** Controller Fatal Status: the controller met an error it cannot report through a completion. */
  fatal: boolean;
  /** SHST = complete: a shutdown notification was processed. */
  shutdownComplete: boolean;
}

/** Decodes the CSTS register's fields. */
export function decodeStatus(raw: number): ControllerStatus {
  return {
    raw,
    ready: (raw & CSTS.RDY) !== 0,
    fatal: (raw & CSTS.CFS) !== 0,
    shutdownComplete: (raw & CSTS.SHST_MASK) === CSTS.SHST_COMPLETE,
  };
}

/** The register file of one controller, in its BAR0; every access is 32 bits wide. */
export class NvmeRegisters {
  /** CAP, read once when made (it does not change). */
  readonly cap: Capabilities;

  /**
   * Reads CAP.
   *
   * @param bar - BAR0 of the controller.
   */
  constructor(
    /** BAR0 of the controller. */
    readonly bar: Region,
  ) {
    checkInstance(bar, Region, 'bar');
    this.cap = decodeCapabilities(this.read64(NvmeReg.CAP));
  }

  private read64(offset: number): bigint {
    const lo = this.bar.read32(offset);
    const hi = this.bar.read32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  private write64(offset: number, value: bigint): void {
    this.bar.write32(offset, Number(value & 0xffffffffn));
    this.bar.write32(offset + 4, Number(value >> 32n));
  }

  /** VS: the specification version the controller implements. */
  get version(): {
    /** Major version number. */
    major: number;
    /** Minor version number. */
    minor: number;
    /** Tertiary version number. */
    tertiary: number;
  } {
    const vs = this.bar.read32(NvmeReg.VS);
    return { major: vs >>> 16, minor: (vs >>> 8) & 0xff, tertiary: vs & 0xff };
  }

  /** CC, Controller Configuration: EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES (the `CC` fields). */
  get cc(): number {
    return this.bar.read32(NvmeReg.CC);
  }

  /** Writes CC: setting EN enables the controller, clearing it resets it; SHN asks for a shutdown. */
  set cc(value: number) {
    checkInt(value, 'cc', 0, 0xffffffff);
    this.bar.write32(NvmeReg.CC, value >>> 0);
  }

  /** CSTS, Controller Status, read now and decoded. */
  get csts(): ControllerStatus {
    return decodeStatus(this.bar.read32(NvmeReg.CSTS));
  }

  /** AQA, ASQ, ACQ: where the admin queues are and how many entries they have. */
  setAdminQueues(sqIova: bigint, sqEntries: number, cqIova: bigint, cqEntries: number): void {
    const sq = toBigInt(sqIova, 'sqIova');
    checkInt(sqEntries, 'sqEntries', 2, 4096);
    const cq = toBigInt(cqIova, 'cqIova');
    checkInt(cqEntries, 'cqEntries', 2, 4096);
    this.bar.write32(NvmeReg.AQA, (((cqEntries - 1) << 16) | (sqEntries - 1)) >>> 0);
    this.write64(NvmeReg.ASQ, sq);
    this.write64(NvmeReg.ACQ, cq);
  }

  /** Masks every pin-based/MSI interrupt (not to be used once MSI-X is on). */
  maskInterrupts(): void {
    this.bar.write32(NvmeReg.INTMS, 0xffffffff);
  }

  /** Submission queue `qid`'s tail doorbell offset. */
  sqTailDoorbell(qid: number): number {
    checkInt(qid, 'qid', 0, 0xffff);
    return NvmeReg.DOORBELLS + 2 * qid * this.cap.doorbellStride;
  }

  /** Completion queue `qid`'s head doorbell offset. */
  cqHeadDoorbell(qid: number): number {
    checkInt(qid, 'qid', 0, 0xffff);
    return NvmeReg.DOORBELLS + (2 * qid + 1) * this.cap.doorbellStride;
  }

  /** Writes `value` (a queue's new tail or head) to the doorbell register at offset `doorbell`. */
  ring(doorbell: number, value: number): void {
    this.bar.write32(doorbell, value);
  }
}
