/**
 * DmaPool: page-aligned pieces carved out of ONE large DMA buffer. Pieces
 * allocated one after another lie one after another in the buffer, so a
 * phys_list of them is contiguous in memory and the library maps it with one
 * ioctl per contiguous run instead of one per fragment (the kernel pins,
 * records and syncs the IOTLB once per run). The pool can also be mapped
 * whole, once, and hand out the IOVA of each piece: no map call per piece.
 */
import type { AddressSpace, AllocationOptions } from './address-space';
import type { Access } from './iommu/backend';
import type { DmaMapping } from './dma-mapping';
import { DmaBuffer, DmaMemoryKind, HUGE_PAGE_SIZE, PAGE_SIZE } from './memory';
import type { CpuFragmentInput } from './phys-list';
import { VfioStateError } from './errors';
import { hex, kindOf, toBigInt, toLength } from './validate';

const KINDS: readonly DmaMemoryKind[] = ['anonymous', 'hugetlb', 'memfd'];

/** Options of {@link DmaPool.create}. */
export interface DmaPoolOptions {
  /** Where the pool's pages come from (default 'anonymous'); 'hugetlb' takes 2 MiB huge pages (fewer IOMMU entries). */
  kind?: DmaMemoryKind;
  /**
   * The granule of the pool in bytes: every piece starts at a multiple of it
   * and its length is rounded up to one. A power of two from
   * {@link PAGE_SIZE} (the default) up, dividing the pool's size.
   */
  chunk?: number | bigint;
  /**
   * For a 'memfd' pool: its pieces are fragments mapped through the memfd
   * (IOMMU_IOAS_MAP_FILE under iommufd; see {@link CpuFragmentInput.asFile}).
   * Consecutive pieces still coalesce: one map per run of file offsets.
   * Default false.
   */
  asFile?: boolean;
}

/** Options of {@link DmaPool.map}: where the pool goes in IOVA space and what devices may do with it. */
export interface DmaPoolMapOptions extends AllocationOptions {
  /** What devices may do (read and write by default). */
  access?: Partial<Access>;
}

/**
 * A piece of a {@link DmaPool}: `length` bytes of the pool's buffer from
 * `offset`, both multiples of the pool's chunk (so of the page size). It is
 * a {@link CpuFragmentInput} as it is: pass pieces to {@link PhysList.cpu}
 * directly; pieces allocated one after another map as one contiguous run.
 */
export class DmaPiece implements CpuFragmentInput, Disposable {
  private isFreed = false;

  /** @internal made by {@link DmaPool.allocate} */
  constructor(
    /** The pool it was carved from. */
    readonly pool: DmaPool,
    /** The pool's buffer, which the piece lies in. */
    readonly buffer: DmaBuffer,
    /** Byte offset in the buffer: a multiple of the pool's chunk. */
    readonly offset: number,
    /** Bytes: the size asked for, rounded up to the pool's chunk. */
    readonly length: number,
    /** Mapped through the pool's memfd (the pool's `asFile` option). */
    readonly asFile: boolean,
  ) {}

  /** Whether {@link DmaPiece.free} was called: the bytes may belong to another piece now. */
  get freed(): boolean {
    return this.isFreed;
  }

  /**
   * The piece's bytes: a Uint8Array over the pool's memory (zero-copy).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the piece was freed or the pool closed.
   */
  get bytes(): Uint8Array {
    this.check();
    return new Uint8Array(this.buffer.buffer, this.offset, this.length);
  }

  /**
   * The IOVA of the piece's first byte where the pool is mapped whole
   * ({@link DmaPool.map}), as a number for descriptors and registers.
   *
   * @param space - Which address space's mapping; optional when the pool is mapped in one only.
   * @throws TypeError when the pool is mapped in several address spaces and `space` is not given.
   * @throws {@link VfioStateError} `ERR_VFIO_NOT_MAPPED` when the pool is not
   *   mapped (in `space`); `ERR_VFIO_CLOSED` when the piece was freed.
   */
  dmaAddress(space?: AddressSpace): number {
    this.check();
    return this.pool.wholeMapping(space).dmaAddress + this.offset;
  }

  /** {@link DmaPiece.dmaAddress} as a bigint, as {@link DmaMapping.iova} is. */
  iova(space?: AddressSpace): bigint {
    return BigInt(this.dmaAddress(space));
  }

  /**
   * Gives the piece back to the pool, which may hand its bytes out again.
   * Mappings of it are not touched: unmap them first if a device must not
   * reach what the next owner writes. Idempotent.
   */
  free(): void {
    if (this.isFreed) return;
    this.isFreed = true;
    this.pool.release(this.offset, this.length);
  }

  /** {@link DmaPiece.free}, for `using`. */
  [Symbol.dispose](): void {
    this.free();
  }

  private check(): void {
    if (this.isFreed) throw new VfioStateError('the DmaPiece was freed', 'ERR_VFIO_CLOSED');
  }
}

/**
 * A pool of DMA memory: ONE {@link DmaBuffer} (anonymous, hugetlb or memfd,
 * allocated and pinned as one) out of which {@link DmaPool.allocate} carves
 * page-aligned {@link DmaPiece}s, first fit from the lowest address. Pieces
 * allocated in order from a fresh pool are therefore contiguous, and a
 * phys_list of them links with one map ioctl per contiguous run (one for
 * the whole list when nothing was freed in between).
 *
 * Two ways to give devices the pieces:
 *  - link lists of them ({@link PhysList.cpu} takes pieces as they are) into
 *    IOVA windows: one ioctl per run;
 *  - map the whole pool once ({@link DmaPool.map}) and use each piece's
 *    {@link DmaPiece.dmaAddress}: no system call per piece at all.
 *
 * Lifetime: as for any DmaBuffer, mappings of the pool's memory (whole, or
 * lists of pieces) hold it natively, so {@link DmaPool.close} never frees
 * memory a device can still reach: the pages go when the last mapping of
 * them is unmapped.
 *
 * @example
 * ```ts
 * using pool = DmaPool.create(4n << 20n, { kind: 'hugetlb' });
 * const pieces = Array.from({ length: 256 }, () => pool.allocate(8192));
 * using window = space.reserve(4n << 20n);
 * const m = window.link(PhysList.cpu(pieces)); // one map ioctl for 256 fragments
 * ```
 */
export class DmaPool implements Disposable {
  /** The one buffer the pieces are carved from. */
  readonly buffer: DmaBuffer;
  /** The pool's granule in bytes: pieces start at multiples of it and are rounded up to it. */
  readonly chunk: number;
  /** The pool's size in bytes. */
  readonly size: number;
  private readonly asFile: boolean;
  // Free space as sorted, disjoint, non-adjacent [start, end) byte ranges.
  private readonly starts: number[];
  private readonly ends: number[];
  private used = 0;
  private readonly mappings = new Map<AddressSpace, DmaMapping>();

  private constructor(buffer: DmaBuffer, chunk: number, asFile: boolean) {
    this.buffer = buffer;
    this.chunk = chunk;
    this.size = buffer.size;
    this.asFile = asFile;
    this.starts = [0];
    this.ends = [buffer.size];
  }

  /**
   * Allocates the pool's memory: one DmaBuffer of `size` bytes, zeroed and
   * populated.
   *
   * @param size - Bytes: a non-zero multiple of the page size (of
   *   {@link HUGE_PAGE_SIZE} for 'hugetlb') and of `chunk`.
   * @param options - `kind` (default 'anonymous'), `chunk` (default the page
   *   size), `asFile` (memfd pools).
   * @throws TypeError for an unknown `kind`, a `size` or `chunk` that is not a
   *   number or bigint, or `asFile` asked of a pool that is not 'memfd'.
   * @throws RangeError when `size` is 0 or not such a multiple, or `chunk` is
   *   not a power of two of at least the page size.
   * @throws {@link VfioError} from the allocation, as {@link DmaBuffer.allocate}
   *   (ENOMEM for 'hugetlb' without enough free huge pages).
   */
  static create(size: number | bigint, options: DmaPoolOptions = {}): DmaPool {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    const kind = options.kind ?? 'anonymous';
    if (!KINDS.includes(kind))
      throw new TypeError(`kind must be one of ${KINDS.join(', ')}, not ${typeof kind === 'string' ? `'${kind}'` : kindOf(kind)}`);
    const bytes = toLength(size, 'size', kind === 'hugetlb' ? HUGE_PAGE_SIZE : PAGE_SIZE);
    if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`size (${hex(bytes)}) is past 2^53`);
    const chunk = options.chunk === undefined ? PAGE_SIZE : toBigInt(options.chunk, 'chunk');
    if (chunk < PAGE_SIZE || (chunk & (chunk - 1n)) !== 0n) {
      throw new RangeError(`chunk (${hex(chunk)}) must be a power of two of at least the page size (${hex(PAGE_SIZE)})`);
    }
    if (bytes % chunk !== 0n) throw new RangeError(`size (${hex(bytes)}) must be a multiple of chunk (${hex(chunk)})`);
    const asFile = options.asFile ?? false;
    if (typeof asFile !== 'boolean') throw new TypeError('asFile must be a boolean');
    if (asFile && kind !== 'memfd') throw new TypeError(`asFile needs a 'memfd' pool, not '${kind}'`);
    return new DmaPool(DmaBuffer.allocate(bytes, { kind }), Number(chunk), asFile);
  }

  /** Where the pool's pages come from. */
  get kind(): DmaMemoryKind {
    return this.buffer.kind;
  }

  /** Bytes held by live pieces. */
  get allocated(): number {
    return this.used;
  }

  /** Bytes free for new pieces (possibly in several ranges). */
  get available(): number {
    return this.size - this.used;
  }

  /** The largest piece {@link DmaPool.allocate} can give now, in bytes. */
  get largestAvailable(): number {
    let best = 0;
    for (let i = 0; i < this.starts.length; i++) best = Math.max(best, this.ends[i] - this.starts[i]);
    return best;
  }

  /** Whether {@link DmaPool.close} was called. */
  get closed(): boolean {
    return this.buffer.closed;
  }

  /**
   * A piece of at least `bytes` bytes (rounded up to the chunk), at the
   * lowest offset where it fits: pieces allocated one after another from
   * free space lie one after another.
   *
   * @param bytes - At least 1.
   * @throws TypeError when `bytes` is not a number or bigint.
   * @throws RangeError when `bytes` is 0 or more than the pool's size.
   * @throws {@link VfioStateError} `ERR_VFIO_POOL_FULL` when no free range is
   *   large enough (the message says how much is free); `ERR_VFIO_CLOSED`
   *   when the pool is closed.
   */
  allocate(bytes: number | bigint): DmaPiece {
    const want = typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes > 0 ? bytes : Number(toBigInt(bytes, 'bytes'));
    if (want === 0) throw new RangeError('bytes must not be 0');
    if (want > this.size) throw new RangeError(`bytes (${want}) is more than the pool's ${this.size}`);
    if (this.closed) throw new VfioStateError('the DmaPool is closed', 'ERR_VFIO_CLOSED');
    const length = Math.ceil(want / this.chunk) * this.chunk;
    const { starts, ends } = this;
    for (let i = 0; i < starts.length; i++) {
      const start = starts[i];
      if (ends[i] - start < length) continue;
      if (ends[i] - start === length) {
        starts.splice(i, 1);
        ends.splice(i, 1);
      } else {
        starts[i] = start + length;
      }
      this.used += length;
      return new DmaPiece(this, this.buffer, start, length, this.asFile);
    }
    throw new VfioStateError(
      `the DmaPool has no ${length} free contiguous bytes (${this.available} of ${this.size} free, the largest range ${this.largestAvailable})`,
      'ERR_VFIO_POOL_FULL',
    );
  }

  /**
   * Gives `piece` back: {@link DmaPiece.free}.
   *
   * @throws TypeError when `piece` is not a piece of this pool.
   */
  free(piece: DmaPiece): void {
    if (!(piece instanceof DmaPiece) || piece.pool !== this) throw new TypeError('piece must be a DmaPiece of this pool');
    piece.free();
  }

  /** @internal a piece's bytes go back to the free ranges, merged with their neighbours */
  release(offset: number, length: number): void {
    const { starts, ends } = this;
    const end = offset + length;
    // The first free range after the piece.
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    const joinsBefore = lo > 0 && ends[lo - 1] === offset;
    const joinsAfter = lo < starts.length && starts[lo] === end;
    if (joinsBefore && joinsAfter) {
      ends[lo - 1] = ends[lo];
      starts.splice(lo, 1);
      ends.splice(lo, 1);
    } else if (joinsBefore) {
      ends[lo - 1] = end;
    } else if (joinsAfter) {
      starts[lo] = offset;
    } else {
      starts.splice(lo, 0, offset);
      ends.splice(lo, 0, end);
    }
    this.used -= length;
  }

  /**
   * Maps the whole pool into `space` with one map call, so that every piece
   * has an IOVA at once ({@link DmaPiece.dmaAddress}) and handing pieces to a
   * device needs no system call. A 'hugetlb' pool is placed at a 2 MiB
   * aligned IOVA unless `align` says otherwise, so the IOMMU can use huge
   * pages. One such mapping per address space; it is an ordinary
   * {@link DmaMapping} (unmap it, or close the address space, to undo it).
   *
   * @param space - The address space.
   * @param options - IOVA constraints (`align`, `limit`, `iova`) and `access`.
   * @throws {@link VfioStateError} `ERR_VFIO_BUSY` when the pool is already
   *   mapped whole in `space`, `ERR_VFIO_CLOSED` when the pool is closed.
   * @throws Everything {@link AddressSpace.map} throws.
   */
  map(space: AddressSpace, options: DmaPoolMapOptions = {}): DmaMapping {
    // (duck-typed: address-space.ts is imported for its types only)
    const duck = space as { map?: unknown; mapPhysList?: unknown } | null;
    if (duck === null || typeof duck !== 'object' || typeof duck.map !== 'function' || typeof duck.mapPhysList !== 'function')
      throw new TypeError(`space must be an AddressSpace, not ${kindOf(space)}`);
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    if (this.mappings.has(space)) throw new VfioStateError('the DmaPool is already mapped in this address space', 'ERR_VFIO_BUSY');
    if (this.closed) throw new VfioStateError('the DmaPool is closed', 'ERR_VFIO_CLOSED');
    const align = options.align ?? (this.kind === 'hugetlb' ? HUGE_PAGE_SIZE : undefined);
    const mapping = space.map(this.buffer, { ...options, align, offset: 0, length: this.size });
    this.mappings.set(space, mapping);
    mapping.once('unmapped', () => this.mappings.delete(space));
    return mapping;
  }

  /** The live mapping of the whole pool in `space` ({@link DmaPool.map}), if any. */
  mappingIn(space: AddressSpace): DmaMapping | undefined {
    return this.mappings.get(space);
  }

  /** @internal the whole-pool mapping a piece's IOVA comes from */
  wholeMapping(space?: AddressSpace): DmaMapping {
    if (space !== undefined) {
      const m = this.mappings.get(space);
      if (m === undefined)
        throw new VfioStateError('the DmaPool is not mapped in this address space: DmaPool.map() first', 'ERR_VFIO_NOT_MAPPED');
      return m;
    }
    if (this.mappings.size === 1) return this.mappings.values().next().value as DmaMapping;
    if (this.mappings.size === 0) throw new VfioStateError('the DmaPool is not mapped: DmaPool.map() first', 'ERR_VFIO_NOT_MAPPED');
    throw new TypeError(`the DmaPool is mapped in ${this.mappings.size} address spaces: space must say which`);
  }

  /**
   * Closes the pool's buffer: pieces can no longer be read or written from
   * JavaScript and nothing more can be allocated. Mappings of the memory
   * keep it (a device never reaches freed memory); it is freed when the last
   * is unmapped. Idempotent.
   */
  close(): void {
    this.buffer.close();
  }

  /** {@link DmaPool.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
