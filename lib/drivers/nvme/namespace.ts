/**
 * A namespace of an NVMe controller: logical blocks read, written and
 * flushed through the controller's I/O queues. Data goes to and from the
 * library's DMA mappings (see prp.ts): a DmaMapping of a DmaBuffer or of a
 * PhysList, a slice of one, or IOVA segments. Every call is one command;
 * many can be in flight at once. Two ways to submit:
 *
 *   - read, write, flush, writeZeroes: a Promise of the completion.
 *   - readInto, writeFrom: a callback, called once with (error, tag); no
 *     promise, closure or object per command -- the polled hot path.
 *
 * LBAs are not checked against the namespace size here: the controller is
 * the authority, and answers 'LBA Out of Range' (an NvmeStatusError).
 *
 * Peer-to-peer storage: the mapping may be of a PhysList.p2p() -- ranges of
 * another device's BAR, linked into an IOVA window -- and the controller then
 * reads blocks straight into that device's memory, or writes them from it,
 * with no bounce through CPU memory; PRPs are built over the P2P IOVAs as
 * over any others. A revoked P2P mapping is refused before any command is
 * written (VfioStateError ERR_VFIO_REVOKED); one revoked while commands are
 * in flight fails them with NvmeRevokedError.
 */
import { DmaMapping } from '../../dma-mapping';
import { checkFunction, checkInt, checkObject, kindOf, toBigInt } from '../../validate';
import * as cmds from './commands';
import { Completion } from './completion';
import { NvmeError } from './errors';
import { NamespaceIdentity } from './identify';
import { DataPointer, mappedAddress, rangesOf } from './prp';
import { IoCallback, QueuePair, SubmitOptions } from './queue-pair';

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
  /**
   * The I/O queue for one command: `queue` (a 1-based ID), or the next in turn.
   *
   * @throws RangeError for a queue that does not exist; VfioStateError `ERR_NVME_NOT_READY` without I/O queues.
   */
  ioQueue(queue?: number): QueuePair;
  /** The fatal error the controller is known to be in (no register read), or undefined. */
  readonly fatalSeen: NvmeError | undefined;
  /** Largest transfer of one command (from MDTS). */
  readonly maxTransferBytes: number;
}

/**
 * {@link NvmeNamespace.readInto} and {@link NvmeNamespace.writeFrom}: `blocks`
 * logical blocks from `lba`, into or out of `mapping` at byte `offset`, and
 * `callback(error, tag)` once when done. No promise and no object per
 * command: pass a `tag` to tell commands apart without a closure each, and
 * reuse one `options` object. The callback comes from the queue's reap,
 * never from inside the submitting call, and may submit the next command at
 * once (it goes out with the reap's one doorbell write).
 *
 * @param lba - The first logical block (a number below 2^53, or a bigint).
 * @param blocks - How many: 1..maxTransferBlocks.
 * @param mapping - The mapping the bytes go to or come from: CPU memory or a
 *   peer's BAR (a mapping of a PhysList.p2p()).
 * @param offset - Byte offset in `mapping`, dword aligned (with the mapping's IOVA).
 * @param callback - Called once: `error` undefined on success, else an
 *   {@link NvmeError} (status, ETIMEDOUT, ERR_NVME_FATAL, ERR_NVME_ABORTED, or an
 *   {@link NvmeRevokedError} ERR_NVME_REVOKED when a peer's mapping was revoked while the command was out).
 * @param tag - Handed to `callback`.
 * @param options - Queue, FUA, time-out.
 * @throws TypeError or RangeError for bad arguments; {@link VfioStateError}
 *   `ERR_VFIO_REVOKED` for a revoked mapping (nothing is submitted then).
 */
export type BlockTransfer = <T>(
  lba: number | bigint,
  blocks: number,
  mapping: DmaMapping,
  offset: number,
  callback: IoCallback<T>,
  tag?: T,
  options?: IoOptions,
) => void;

/** The NVM command set's largest block count per command (NLB is 16 bits, 0's based). */
const MAX_BLOCKS = 0x10000;

const TWO_32 = 2 ** 32;

/**
 * A namespace of an NVMe controller: logical blocks read, written, flushed
 * and zeroed through the controller's I/O queues, to and from DMA mappings
 * ({@link DataPointer}). Every call is one command; `read`, `write`, `flush`
 * and `writeZeroes` return a promise of its completion (argument errors
 * reject it too), `readInto` and `writeFrom` end through a callback and
 * allocate nothing per command (argument errors throw). LBAs are not checked
 * against the namespace's size: the controller answers 'LBA Out of Range'
 * (an {@link NvmeStatusError}). Get one from {@link NvmeController.namespace}.
 */
export class NvmeNamespace {
  /** Most blocks one read or write can move. */
  readonly maxTransferBlocks: number;
  /** Bytes per logical block (a field: read on every command). */
  private readonly blockBytes: number;
  // CDW10 and CDW11 of the last LBA split (no object per command).
  private lbaLow = 0;
  private lbaHigh = 0;

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
  ) {
    checkObject(host, 'host');
    checkFunction(host.io, 'host.io');
    checkFunction(host.ioQueue, 'host.ioQueue');
    checkInt(host.maxTransferBytes, 'host.maxTransferBytes', 1);
    checkInt(nsid, 'nsid', 1, 0xffffffff);
    checkObject(identity, 'identity');
    checkInt(identity.blockSize, 'identity.blockSize', 1, 2 ** 31);
    if (typeof identity.size !== 'bigint') throw new TypeError(`identity.size must be a bigint, not ${kindOf(identity.size)}`);
    this.maxTransferBlocks = Math.min(MAX_BLOCKS, Math.floor(host.maxTransferBytes / identity.blockSize));
    this.blockBytes = identity.blockSize;
  }

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

  /**
   * Reads `blocks` logical blocks from `lba` into `data`.
   *
   * @param lba - The first logical block.
   * @param blocks - How many: 1..maxTransferBlocks.
   * @param data - Where the bytes go: at least `blocks * blockSize` bytes of
   *   mapped memory: CPU memory, or a peer device's BAR (a mapping of a
   *   PhysList.p2p(), one or many fragments: peer-to-peer, no CPU copy).
   * @param options - Queue, FUA, time-out.
   * @returns The completion; rejects with RangeError or TypeError for bad arguments
   *   (a data pointer too small, unaligned, or unmapped), {@link VfioStateError}
   *   `ERR_VFIO_REVOKED` for a revoked P2P mapping (nothing is sent), and
   *   {@link NvmeError} for a failed command ({@link NvmeRevokedError} when the
   *   mapping was revoked while the command was in flight).
   */
  read(lba: number | bigint, blocks: number, data: DataPointer, options: IoOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object') return Promise.reject(badOptions(options));
    return this.transferAsync(cmds.IoOpcode.READ, lba, blocks, data, options);
  }

  /**
   * Writes `blocks` logical blocks at `lba` from `data` (durable at completion with `fua`).
   *
   * @returns The completion; rejects as {@link NvmeNamespace.read} does.
   */
  write(lba: number | bigint, blocks: number, data: DataPointer, options: IoOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object') return Promise.reject(badOptions(options));
    return this.transferAsync(cmds.IoOpcode.WRITE, lba, blocks, data, options);
  }

  /**
   * Reads `blocks` logical blocks from `lba` into `mapping` at byte `offset`,
   * and calls `callback(error, tag)` once when done: the lean path (see
   * {@link BlockTransfer}), with no promise and no object per command.
   *
   * @throws TypeError or RangeError for bad arguments (nothing is submitted then).
   */
  readonly readInto: BlockTransfer = (lba, blocks, mapping, offset, callback, tag, options) =>
    this.transfer(cmds.IoOpcode.READ, 'Read', lba, blocks, mapping, offset, callback as IoCallback, tag, options);

  /**
   * Writes `blocks` logical blocks at `lba` from `mapping` at byte `offset`,
   * and calls `callback(error, tag)` once when done: as {@link NvmeNamespace.readInto}.
   *
   * @throws TypeError or RangeError for bad arguments (nothing is submitted then).
   */
  readonly writeFrom: BlockTransfer = (lba, blocks, mapping, offset, callback, tag, options) =>
    this.transfer(cmds.IoOpcode.WRITE, 'Write', lba, blocks, mapping, offset, callback as IoCallback, tag, options);

  /** Makes what was written durable (commits the volatile write cache). */
  flush(options: IoOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object') return Promise.reject(badOptions(options));
    return this.host.io(cmds.flush(this.nsid), options);
  }

  /**
   * Sets `blocks` logical blocks from `lba` to zero, moving no data.
   *
   * @param blocks - 1..65536.
   * @returns The completion; rejects with RangeError for a bad count, {@link NvmeError} for a failed command.
   */
  writeZeroes(lba: number | bigint, blocks: number, options: IoOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object') return Promise.reject(badOptions(options));
    try {
      return this.host.io(cmds.writeZeroes(this.nsid, toBigInt(lba, 'lba'), this.checkBlocks(blocks, MAX_BLOCKS, 'a command')), options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private transfer(
    opcode: number,
    name: string,
    lba: number | bigint,
    blocks: number,
    mapping: DmaMapping,
    offset: number,
    callback: IoCallback,
    tag: unknown,
    options: IoOptions | undefined,
  ): void {
    if (typeof callback !== 'function') throw new TypeError('callback must be a function');
    const bytes = this.transferBlocks(blocks) * this.blockBytes;
    const address = mappedAddress(mapping, offset, bytes);
    this.splitLba(lba);
    const cdw12 = (blocks - 1) | (options?.fua === true ? cmds.RW_FUA : 0);
    const fatal = this.host.fatalSeen;
    if (fatal) {
      process.nextTick(callback, fatal, tag, 0);
      return;
    }
    this.host
      .ioQueue(options?.queue)
      .transfer(opcode, name, this.nsid, this.lbaLow, this.lbaHigh, cdw12, address, bytes, callback, tag, options, mapping);
  }

  private transferAsync(
    opcode: typeof cmds.IoOpcode.READ | typeof cmds.IoOpcode.WRITE,
    lba: number | bigint,
    blocks: number,
    data: DataPointer,
    options: IoOptions,
  ): Promise<Completion> {
    try {
      const bytes = this.transferBlocks(blocks) * this.identity.blockSize;
      if (Array.isArray(data)) {
        // IOVA segments: the general path
        const segments = rangesOf(data, bytes).map((r) => ({ iova: BigInt(r.address), length: r.length }));
        return this.host.io(cmds.readWrite(opcode, this.nsid, toBigInt(lba, 'lba'), blocks, segments, options.fua), options);
      }
      const slice = data instanceof DmaMapping ? undefined : (data as { mapping: DmaMapping; offset?: number | bigint });
      const mapping = slice ? slice.mapping : (data as DmaMapping);
      const offset =
        slice?.offset === undefined ? 0 : typeof slice.offset === 'number' ? slice.offset : Number(toBigInt(slice.offset, 'offset'));
      const address = mappedAddress(mapping, offset, bytes);
      this.splitLba(lba);
      const cdw12 = (blocks - 1) | (options.fua === true ? cmds.RW_FUA : 0);
      const fatal = this.host.fatalSeen;
      if (fatal) return Promise.reject(fatal);
      const name = opcode === cmds.IoOpcode.READ ? 'Read' : 'Write';
      return this.host.ioQueue(options.queue).transferAsync({
        opcode,
        name,
        nsid: this.nsid,
        cdw10: this.lbaLow,
        cdw11: this.lbaHigh,
        cdw12,
        address,
        length: bytes,
        options,
        mapping,
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * `lba` into lbaLow and lbaHigh (CDW10, CDW11), each as `x | 0` (the same
   * 32 bits, and always a small integer: the fields never hold a float).
   */
  private splitLba(lba: number | bigint): void {
    if (typeof lba === 'number' && lba >>> 0 === lba) {
      // an integer in 0..2^32-1 (the common case): no division
      this.lbaLow = lba | 0;
      this.lbaHigh = 0;
      return;
    }
    if (typeof lba === 'number' && lba >= 0 && lba <= Number.MAX_SAFE_INTEGER && Math.floor(lba) === lba) {
      const low = lba >>> 0;
      this.lbaLow = low | 0;
      this.lbaHigh = ((lba - low) / TWO_32) | 0;
      return;
    }
    const big = toBigInt(lba, 'lba'); // throws for what is no LBA
    this.lbaLow = Number(big & 0xffffffffn) | 0;
    this.lbaHigh = Number(big >> 32n) | 0;
  }

  private transferBlocks(blocks: number): number {
    if (typeof blocks === 'number' && blocks >>> 0 === blocks && blocks >= 1 && blocks <= this.maxTransferBlocks) return blocks;
    throw badBlocks(blocks, this.maxTransferBlocks, `a transfer (${this.host.maxTransferBytes} bytes, from the controller's MDTS)`);
  }

  private checkBlocks(blocks: number, max: number, limit: string): number {
    if (typeof blocks === 'number' && blocks >= 1 && blocks <= max && Math.floor(blocks) === blocks) return blocks;
    throw badBlocks(blocks, max, limit);
  }
}

function badBlocks(blocks: unknown, max: number, limit: string): RangeError | TypeError {
  if (typeof blocks !== 'number') return new TypeError(`blocks must be a number, not ${kindOf(blocks)}`);
  return new RangeError(`blocks must be an integer in 1..${max}, the most ${limit} can cover, not ${blocks}`);
}

function badOptions(options: unknown): TypeError {
  return new TypeError(`options must be an object, not ${kindOf(options)}`);
}
