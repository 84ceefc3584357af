/**
 * A namespace of an NVMe controller: logical blocks read, written and
 * flushed through the controller's I/O queues. Data goes to and from the
 * library's DMA mappings (see prp.ts): a DmaMapping of a DmaBuffer or of a
 * PhysList, a slice of one, or IOVA segments. Every call is one command and
 * a Promise of its completion; many can be in flight at once.
 *
 * LBAs are not checked against the namespace size here: the controller is
 * the authority, and answers 'LBA Out of Range' (an NvmeStatusError).
 */
import { toBigInt } from '../../validate';
import * as cmds from './commands';
import { Completion } from './completion';
import { NamespaceIdentity } from './identify';
import { DataPointer, segmentsOf } from './prp';
import { SubmitOptions } from './queue-pair';

/** Options of one I/O command ({@link NvmeNamespace} calls, {@link NvmeController.io}). */
export interface IoOptions extends SubmitOptions {
  /** The I/O queue (1-based ID) to use; by default the controller picks one. */
  queue?: number;
  /** Force Unit Access: the write is durable when it completes, the read bypasses caches. */
  fua?: boolean;
}

/** What a namespace needs of its controller. */
export interface NamespaceHost {
  /** Submits an I/O command on one of its queues. */
  io(cmd: cmds.NvmeCommand, options?: IoOptions): Promise<Completion>;
  /** Largest transfer of one command (from MDTS). */
  readonly maxTransferBytes: number;
}

/** The NVM command set's largest block count per command (NLB is 16 bits, 0's based). */
const MAX_BLOCKS = 0x10000;

/**
 * A namespace of an NVMe controller: logical blocks read, written, flushed
 * and zeroed through the controller's I/O queues, to and from DMA mappings
 * ({@link DataPointer}). Every call is one command and a promise of its
 * completion; argument errors reject the promise too. LBAs are not checked
 * against the namespace's size: the controller answers 'LBA Out of Range'
 * (an {@link NvmeStatusError}). Get one from {@link NvmeController.namespace}.
 */
export class NvmeNamespace {
  /**
   * Made by the controller for each active namespace; see {@link NvmeController.namespace}.
   *
   * @param host - The controller whose I/O queues carry the commands.
   * @param nsid - The namespace ID.
   * @param identity - Its Identify Namespace data.
   */
  constructor(
    private readonly host: NamespaceHost,
    /** The namespace ID. */
    readonly nsid: number,
    /** Identify Namespace data: size, LBA formats, IDs. */
    readonly identity: NamespaceIdentity,
  ) {}

  /** Bytes per logical block. */
  get blockSize(): number {
    return this.identity.blockSize;
  }

  /** Logical blocks in the namespace (NSZE). */
  get blocks(): bigint {
    return this.identity.size;
  }

  /** The namespace's size in bytes (blocks times block size). */
  get bytes(): bigint {
    return this.identity.size * BigInt(this.identity.blockSize);
  }

  /** Most blocks one read or write can move. */
  get maxTransferBlocks(): number {
    return Math.min(MAX_BLOCKS, Math.floor(this.host.maxTransferBytes / this.blockSize));
  }

  /**
   * Reads `blocks` logical blocks from `lba` into `data`.
   *
   * @param lba - The first logical block.
   * @param blocks - How many: 1..maxTransferBlocks.
   * @param data - Where the bytes go: at least `blocks * blockSize` bytes of mapped memory.
   * @param options - Queue, FUA, time-out.
   * @returns The completion; rejects with RangeError or TypeError for bad arguments
   *   (a data pointer too small, unaligned, or unmapped) and {@link NvmeError} for a failed command.
   */
  read(lba: number | bigint, blocks: number, data: DataPointer, options: IoOptions = {}): Promise<Completion> {
    return this.transfer(cmds.IoOpcode.READ, lba, blocks, data, options);
  }

  /**
   * Writes `blocks` logical blocks at `lba` from `data` (durable at completion with `fua`).
   *
   * @returns The completion; rejects as {@link NvmeNamespace.read} does.
   */
  write(lba: number | bigint, blocks: number, data: DataPointer, options: IoOptions = {}): Promise<Completion> {
    return this.transfer(cmds.IoOpcode.WRITE, lba, blocks, data, options);
  }

  /** Makes what was written durable (commits the volatile write cache). */
  flush(options: IoOptions = {}): Promise<Completion> {
    return this.host.io(cmds.flush(this.nsid), options);
  }

  /**
   * Sets `blocks` logical blocks from `lba` to zero, moving no data.
   *
   * @param blocks - 1..65536.
   * @returns The completion; rejects with RangeError for a bad count, {@link NvmeError} for a failed command.
   */
  writeZeroes(lba: number | bigint, blocks: number, options: IoOptions = {}): Promise<Completion> {
    return this.guard(() => cmds.writeZeroes(this.nsid, toBigInt(lba, 'lba'), this.checkBlocks(blocks, MAX_BLOCKS, 'a command')), options);
  }

  private transfer(opcode: typeof cmds.IoOpcode.READ | typeof cmds.IoOpcode.WRITE, lba: number | bigint, blocks: number, data: DataPointer, options: IoOptions): Promise<Completion> {
    return this.guard(() => {
      const n = this.checkBlocks(blocks, this.maxTransferBlocks, `a transfer (${this.host.maxTransferBytes} bytes, from the controller's MDTS)`);
      return cmds.readWrite(opcode, this.nsid, toBigInt(lba, 'lba'), n, segmentsOf(data, n * this.blockSize), options.fua);
    }, options);
  }

  /** Argument errors become rejections, like every other failure of an I/O call. */
  private guard(build: () => cmds.NvmeCommand, options: IoOptions): Promise<Completion> {
    let cmd: cmds.NvmeCommand;
    try {
      cmd = build();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.host.io(cmd, options);
  }

  private checkBlocks(blocks: number, max: number, limit: string): number {
    if (!Number.isInteger(blocks) || blocks < 1 || blocks > max) {
      throw new RangeError(`blocks must be an integer in 1..${max}, the most ${limit} can cover, not ${blocks}`);
    }
    return blocks;
  }
}
