/**
 * IOVA allocator for one DMA address space (a VFIO container or an iommufd IOAS).
 *
 * The kernel reports which I/O virtual addresses a device may use as a list of
 * inclusive ranges (`struct iommu_iova_range { start; last; }`); the gaps between
 * them are holes such as the x86 MSI window at 0xfee00000-0xfeefffff. This class
 * hands out page-aligned pieces of those ranges and takes them back.
 *
 * Two APIs over one state:
 *
 *  - The number API, for the library's hot path: {@link IovaAllocator.allocFast}
 *    returns an IOVA or -1 (nothing fits: no exception), {@link IovaAllocator.freeFast}
 *    gives it back, {@link IovaAllocator.allocAt} takes an exact IOVA. Byte
 *    addresses are JavaScript numbers, exact only below 2^53, so this API never
 *    hands out an IOVA range reaching past 2^53 ({@link IOVA_FAST_END}): its
 *    limit is clipped there. Sizes and alignments must be multiples of the page
 *    size (the caller rounds; a cheap check throws RangeError otherwise). A
 *    steady-state allocate + free allocates no objects and no bigints: the
 *    state is all typed arrays. (V8 itself boxes a number of 2^31 or more
 *    into a heap number when it crosses a call that was not inlined; IOVAs
 *    below 2 GiB, which first fit hands out first, never are.)
 *  - The bigint API ({@link IovaAllocator.allocate}, {@link IovaAllocator.free},
 *    {@link IovaAllocator.reserve}, ...), which validates everything, rounds
 *    lengths up to pages, reaches the whole 64-bit space, and is first fit by
 *    address: the lowest IOVA that is a multiple of the alignment, lies in one
 *    free block and ends at or below the limit, so its results are fully
 *    determined by the free space (and testable against a simple model).
 *
 * Inside, everything is counted in pages, as numbers: with 4 KiB pages the
 * last page of the 64-bit space is page 2^52 - 1, so page numbers are exact
 * integers over the whole space. (With page sizes below 2 KiB the space above
 * page 2^53 is not used.) The state is:
 *
 *  - free space: an {@link IovaFreeTree}, a treap of disjoint, coalesced blocks
 *    in typed arrays with the largest block size of each subtree, so first fit
 *    is O(log n) in the number of free blocks (a larger alignment can add
 *    visits to blocks that are big enough but not aligned enough);
 *  - live allocations and the cache: an {@link IovaLiveTable}, a hash table
 *    first page -> size, O(1) to add, find and remove, which also parks freed
 *    ranges of up to 32 pages on bounded per-size stacks, after the kernel's
 *    IOVA rcache (see that file).
 *
 * A fast allocation first takes a parked range of exactly its size that
 * satisfies its alignment and limit (O(1) when the most recently parked one
 * does; no hashing), then does first fit in the tree; when the tree has no
 * room and ranges are parked, they are drained back into the tree
 * (coalescing) and the search retried, so -1 means no free range fits. A
 * fast free looks the allocation up (one hash) and parks it (returns it to
 * the tree when its size is not cached or its stack is full). So `freeFast` +
 * `allocFast` of a cached size are O(1); anything else is O(log n). The
 * bigint API does not use the cache: `allocate` (without `at`) and `free` go
 * to the tree, and calls that look at free space (`allocate`, `reserve`,
 * `freeRanges`, `largestFree`) first drain the cache, since parked ranges are
 * free space. The cache holds at most 32 x 128 ranges.
 *
 * Bookkeeping: every live allocation, from either API, is in the table. Either
 * `free` or `freeFast` frees it; both check that the IOVA starts a live
 * allocation of that size (EINVAL otherwise: a parked range is not live, so a
 * double free is always caught and no IOVA is ever handed out twice), and
 * `allocations()` lists them all. Exact IOVAs (`at`) take a range that lies
 * wholly inside one free block (O(log n)); on failure the cache is drained and
 * the check repeated, so a parked range can be taken by address; only then is
 * the error worked out, scanning the table for an overlapping allocation
 * (EEXIST) in O(table size), as `reserve` does for EBUSY.
 *
 * Errors:
 *  - TypeError: an argument of the wrong type (bigint where the bigint API wants one).
 *  - RangeError: a malformed argument (negative, start > last, beyond 64 bits,
 *    zero length, an alignment or page size that is not a power of two, a size
 *    or IOVA of the number API that is not a multiple of the page size, ...).
 *  - IovaAllocatorError (an Error with a `code`) for requests that are well formed
 *    but cannot be honoured in the current state:
 *      ENOSPC         `allocate` found no free block that fits (`allocFast`
 *                     returns -1 instead; {@link IovaAllocator.noSpaceError}
 *                     makes the error for it);
 *      EEXIST         an exact IOVA overlaps an existing allocation;
 *      EADDRNOTAVAIL  an exact IOVA is not wholly usable free space (hole,
 *                     reserved range, outside the ranges, or above the limit);
 *      EINVAL         `free`/`freeFast` of something that is not exactly one allocation;
 *      EBUSY          `reserve` of a range that overlaps an allocation.
 */

import { IovaFreeTree } from './iova-free-tree';
import { IovaLiveTable } from './iova-live-table';

/** An inclusive range of IOVAs, as the kernel reports them. */
export interface IovaRange {
  /** The first IOVA of the range. */
  start: bigint;
  /** The last IOVA of the range (inclusive: a range reaching the top of the space has `last` 2^64 - 1). */
  last: bigint;
}

/** A live allocation: `length` is the page-rounded size actually taken. */
export interface IovaAllocation {
  /** Its first IOVA. */
  iova: bigint;
  /** Bytes taken: the requested length rounded up to the page size. */
  length: bigint;
}

/** Options of the {@link IovaAllocator} constructor. */
export interface IovaAllocatorOptions {
  /** Granule of every allocation; a power of two. Default 4096n. */
  pageSize?: bigint;
  /** Ranges never to hand out, in addition to the holes between `ranges`. */
  reserved?: readonly IovaRange[];
}

/** Options of {@link IovaAllocator.allocate}. */
export interface IovaAllocateOptions {
  /** Alignment of the returned IOVA; a power of two >= pageSize. Default pageSize. */
  align?: bigint;
  /** Highest usable address + 1 (e.g. `1n << 32n` for a 32-bit DMA mask). Default 2^64. */
  limit?: bigint;
  /** Exact IOVA wanted; must be page aligned (and a multiple of `align` if given). */
  at?: bigint;
}

/**
 * Why an {@link IovaAllocatorError} was thrown: ENOSPC (nothing fits),
 * EEXIST (an exact IOVA overlaps an allocation), EADDRNOTAVAIL (an exact IOVA
 * is not usable free space), EINVAL (a free of something that is not one
 * allocation), EBUSY (a reserve over an allocation).
 */
export type IovaErrorCode = 'ENOSPC' | 'EEXIST' | 'EADDRNOTAVAIL' | 'EINVAL' | 'EBUSY';

/**
 * A well-formed request the allocator cannot honour in its current state
 * (malformed arguments are TypeError and RangeError instead).
 */
export class IovaAllocatorError extends Error {
  /** Why: see {@link IovaErrorCode}. */
  readonly code: IovaErrorCode;
  /**
   * Made by the allocator.
   *
   * @param code - Why.
   * @param message - What was asked, and what stood in the way.
   */
  constructor(code: IovaErrorCode, message: string) {
    if (typeof code !== 'string') throw new TypeError(`code must be a string (an errno name), got ${typeof code}`);
    if (typeof message !== 'string') throw new TypeError(`message must be a string, got ${typeof message}`);
    super(message);
    this.name = 'IovaAllocatorError';
    this.code = code;
  }
}

/** ENOSPC from `allocate`: carries the request and what was available. */
export class IovaNoSpaceError extends IovaAllocatorError {
  /**
   * Made by {@link IovaAllocator.allocate}, with the request and what was free.
   *
   * @param length - The page-rounded length asked for, in bytes.
   * @param align - The alignment asked for.
   * @param limit - The exclusive upper bound asked for.
   * @param largestFree - Largest free block below `limit`, in bytes.
   * @param largestFreeAnywhere - Largest free block anywhere, in bytes.
   */
  constructor(
    /** The page-rounded length asked for, in bytes. */
    readonly length: bigint,
    /** The alignment asked for. */
    readonly align: bigint,
    /** The exclusive upper bound asked for. */
    readonly limit: bigint,
    /** Largest free block below `limit`, in bytes. */
    readonly largestFree: bigint,
    /** Largest free block anywhere, in bytes. */
    readonly largestFreeAnywhere: bigint,
  ) {
    checkBigint('length', length);
    checkBigint('align', align);
    checkBigint('limit', limit);
    checkBigint('largestFree', largestFree);
    checkBigint('largestFreeAnywhere', largestFreeAnywhere);
    super(
      'ENOSPC',
      `no free IOVA range for length ${hex(length)} (align ${hex(align)}, limit ${hex(limit)}): ` +
        `largest free block is ${hex(largestFree)} bytes below the limit, ` +
        `${hex(largestFreeAnywhere)} bytes anywhere`,
    );
    this.name = 'IovaNoSpaceError';
  }
}

/** One past the highest 64-bit IOVA. */
export const IOVA_SPACE_END = 1n << 64n;

/**
 * 2^53 (`Number.MAX_SAFE_INTEGER + 1`): the number API's clip. No IOVA range it
 * hands out reaches past this address, so every IOVA and every end it returns
 * is an exact JavaScript number. The bigint API is not clipped.
 */
export const IOVA_FAST_END = 2 ** 53;
/** The same, as a module constant (an `exports` property would be loaded on every call). */
const FAST_END = 2 ** 53;

const DEFAULT_PAGE_SIZE = 4096n;
/** 2^53 as a bigint: below it, bigints convert to numbers exactly. */
const SAFE_BIGINT = 1n << 53n;

/** Half-open block `[start, end)` in bytes, while the constructor merges ranges. */
interface Span {
  start: bigint;
  end: bigint;
}

/**
 * Hands out page-aligned IOVA ranges of one DMA address space and takes them
 * back. The number API ({@link IovaAllocator.allocFast}, {@link IovaAllocator.freeFast})
 * is O(1) for repeated sizes of up to 32 pages and O(log n) otherwise, below
 * 2^53; the bigint API ({@link IovaAllocator.allocate}, {@link IovaAllocator.free})
 * validates everything, reaches the whole 64-bit space and is first fit by
 * address (the lowest IOVA that is a multiple of the alignment, lies in one
 * free block and ends at or below the limit). Both share one state: see the
 * file header. {@link AddressSpace} uses one per address space; it is
 * exported for drivers and tests that manage IOVAs themselves.
 *
 * @example
 * ```ts
 * const a = new IovaAllocator([{ start: 0n, last: 0xfedfffffn }, { start: 0xfef00000n, last: (1n << 48n) - 1n }]);
 * const iova = a.allocate(8192n, { limit: 1n << 32n }); // 0x0
 * a.free(iova, 8192n);
 * const fast = a.allocFast(4096, 4096, 2 ** 32); // 0x0 again, or -1 if nothing fits
 * a.freeFast(fast, 4096);
 * ```
 */
export class IovaAllocator {
  /** The granule of every allocation, in bytes (a power of two). */
  readonly pageSize: bigint;
  /** pageSize as a number, and its inverse (a power of two, so exact). */
  readonly #page: number;
  readonly #perByte: number;
  /** End of the page space: min(2^64 / pageSize, 2^53) pages. */
  readonly #endPages: number;
  /** End of the number API's pages: the largest page count whose bytes stay within 2^53. */
  readonly #fastEndPages: number;
  readonly #tree = new IovaFreeTree();
  readonly #live = new IovaLiveTable();
  readonly #toTree = (page: number, size: number): void => this.#tree.insert(page, page + size);

  /**
   * @param ranges - The usable IOVA ranges, inclusive, as the kernel reports
   *   them (overlapping or touching ranges are merged; only whole pages are used).
   * @param options - `pageSize` (default 4096n) and `reserved` ranges never to hand out.
   * @throws TypeError when `ranges` or `reserved` is not an array of `{ start, last }` bigints.
   * @throws RangeError for a malformed range (start > last, beyond 64 bits) or a
   *   page size that is not a power of two.
   */
  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    checkOptions(options);
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    checkPowerOfTwo('pageSize', this.pageSize);
    if (!Array.isArray(ranges)) throw new TypeError('ranges must be an array of {start, last}');
    const reserved = options.reserved ?? [];
    if (!Array.isArray(reserved)) throw new TypeError('reserved must be an array of {start, last}');
    this.#page = Number(this.pageSize);
    this.#perByte = 1 / this.#page;
    const spacePages = IOVA_SPACE_END / this.pageSize;
    this.#endPages = Number(spacePages < SAFE_BIGINT ? spacePages : SAFE_BIGINT);
    this.#fastEndPages = Math.floor(FAST_END * this.#perByte);

    // Sort and merge overlapping or touching ranges, then keep only whole pages.
    // Adjacent merged ranges are separated by at least one unusable byte, whose
    // page is dropped from both sides, so the resulting blocks never touch.
    const spans = ranges.map((r, i) => rangeToSpan(`ranges[${i}]`, r)).sort((a, b) => compare(a.start, b.start));
    const merged: Span[] = [];
    for (const s of spans) {
      const prev = merged[merged.length - 1];
      if (prev !== undefined && s.start <= prev.end) {
        if (s.end > prev.end) prev.end = s.end;
      } else {
        merged.push({ ...s });
      }
    }
    for (const m of merged) {
      const start = this.#pagesUp(m.start);
      const end = this.#pagesDown(m.end);
      if (start < end) this.#tree.insert(start, end);
    }
    // Removing a reserved range widened to whole pages is the same as subtracting
    // it byte-wise and then trimming the remainder to pages.
    reserved.forEach((r, i) => {
      const { start, end } = rangeToSpan(`reserved[${i}]`, r);
      this.reserve(start, end - 1n);
    });
  }

  /**
   * Allocate `size` bytes and return the IOVA, below 2^53: the hot path's
   * allocation (see the file header). A range of up to 32 pages freed by
   * {@link IovaAllocator.freeFast} is handed out again first when it meets
   * `align` and `limit`; otherwise the lowest fitting IOVA.
   *
   * @param size - Bytes: a positive multiple of the page size (the caller rounds).
   * @param align - Alignment of the IOVA in bytes: a power of two, at least the
   *   page size (the default).
   * @param limit - The range ends at or below this address (exclusive bound,
   *   e.g. 2 ** 32 for a 32-bit DMA mask); clipped at 2^53 (`IOVA_FAST_END`), the default.
   * @returns The first IOVA, or -1 when no free range fits (after returning
   *   the cached ranges to free space and searching again).
   * @throws TypeError or RangeError for a malformed argument.
   */
  allocFast(size: number, align: number = this.#page, limit: number = FAST_END): number {
    const pages = this.#pagesOf('size', size);
    const alignPages = align === this.#page ? 1 : this.#alignPages(align);
    if (typeof limit !== 'number' || !(limit >= 0)) throw badNumber('limit', limit, 'a number >= 0');
    const limitPages = limit < FAST_END ? Math.floor(limit * this.#perByte) : this.#fastEndPages;
    let page = this.#live.unpark(pages, alignPages, limitPages);
    if (page < 0) {
      page = this.#tree.allocate(pages, alignPages, limitPages);
      if (page < 0) {
        if (this.#live.parkedPages === 0) return -1;
        this.#flush();
        page = this.#tree.allocate(pages, alignPages, limitPages);
        if (page < 0) return -1;
      }
      this.#live.add(page, pages);
    }
    return page * this.#page;
  }

  /**
   * Give back an allocation of either API: `iova` and `size` must be exactly
   * one live allocation. Ranges of up to 32 pages are parked for reuse by
   * {@link IovaAllocator.allocFast}, larger ones return to free space at once.
   *
   * @param iova - Its first IOVA.
   * @param size - Its size in bytes (a multiple of the page size).
   * @throws TypeError or RangeError for a malformed size.
   * @throws {@link IovaAllocatorError} EINVAL when `iova` does not start a live
   *   allocation of `size` bytes (a double free, part of one, free space),
   *   changing nothing.
   */
  freeFast(iova: number, size: number): void {
    const pages = this.#pagesOf('size', size);
    if (typeof iova !== 'number') throw badNumber('iova', iova, 'a number');
    const page = iova * this.#perByte;
    const live = this.#live;
    const slot = live.find(page);
    if (slot < 0 || live.sizeAt(slot) !== pages) {
      const [from, to] = [Math.floor(page), Math.ceil((iova + size) * this.#perByte)];
      throw this.#notOneAllocation(`freeFast(${hex(iova)}, ${hex(size)})`, iova, size, slot, from, to);
    }
    if (!live.park(slot, page, pages)) {
      live.removeAt(slot);
      this.#tree.insert(page, page + pages);
    }
  }

  /**
   * Allocate exactly `[iova, iova + size)`, below 2^53 (the number API's
   * counterpart of `allocate(size, { at })`). A range parked by
   * {@link IovaAllocator.freeFast} counts as free.
   *
   * @param iova - The IOVA wanted: a multiple of the page size.
   * @param size - Bytes: a positive multiple of the page size.
   * @param limit - The range must end at or below this address; clipped at
   *   2^53 (`IOVA_FAST_END`), the default.
   * @returns `iova`.
   * @throws TypeError or RangeError for a malformed argument.
   * @throws {@link IovaAllocatorError} EEXIST when it overlaps an allocation,
   *   EADDRNOTAVAIL when it is not wholly free usable space below the limit.
   */
  allocAt(iova: number, size: number, limit: number = FAST_END): number {
    const pages = this.#pagesOf('size', size);
    if (typeof iova !== 'number') throw badNumber('iova', iova, 'a number');
    const page = iova * this.#perByte;
    if (!(page >= 0 && page - Math.floor(page) === 0))
      throw badNumber('iova', iova, `a multiple of the page size ${hex(this.#page)}, >= 0`);
    if (typeof limit !== 'number' || !(limit >= 0)) throw badNumber('limit', limit, 'a number >= 0');
    const clipped = limit < FAST_END ? limit : FAST_END;
    this.#takeAt(page, pages, Math.floor(clipped * this.#perByte), iova, size, clipped);
    return iova;
  }

  /**
   * The ENOSPC error for an {@link IovaAllocator.allocFast} call that returned -1:
   * the request, the largest free block below its (clipped) limit and anywhere.
   *
   * @param size - As given to `allocFast`.
   * @param align - As given to `allocFast`.
   * @param limit - As given to `allocFast`.
   */
  noSpaceError(size: number, align: number = this.#page, limit: number = FAST_END): IovaNoSpaceError {
    this.#pagesOf('size', size);
    if (align !== this.#page) this.#alignPages(align);
    if (typeof limit !== 'number' || !(limit >= 0)) throw badNumber('limit', limit, 'a number >= 0');
    const clipped = BigInt(limit < FAST_END ? Math.floor(limit) : FAST_END);
    return new IovaNoSpaceError(BigInt(size), BigInt(align), clipped, this.largestFree(clipped), this.largestFree());
  }

  /**
   * Allocate `length` bytes (rounded up to the page size) and return the IOVA.
   * First fit by address; see the file header.
   *
   * @param length - Bytes, 1 .. 2^64.
   * @param options - `align`, `limit`, or an exact IOVA `at`.
   * @returns The first IOVA of the allocation.
   * @throws TypeError when an argument is not a bigint.
   * @throws RangeError for a malformed argument (zero length, an alignment that
   *   is not a power of two or is below the page size, a limit past 2^64).
   * @throws {@link IovaNoSpaceError} (ENOSPC) when nothing fits;
   *   {@link IovaAllocatorError} EEXIST or EADDRNOTAVAIL when `at` cannot be honoured.
   */
  allocate(length: bigint, options: IovaAllocateOptions = {}): bigint {
    checkOptions(options);
    const size = this.#roundLength('length', length);
    const align = options.align ?? this.pageSize;
    checkPowerOfTwo('align', align);
    if (align < this.pageSize) throw new RangeError(`align ${hex(align)} is smaller than pageSize ${hex(this.pageSize)}`);
    const limit = options.limit ?? IOVA_SPACE_END;
    checkLimit(limit);
    const pages = this.#pageCount(size);
    const limitPages = this.#pagesDown(limit);

    if (options.at !== undefined) {
      const at = options.at;
      checkAddress('at', at);
      if (at % align !== 0n) throw new RangeError(`at ${hex(at)} is not a multiple of ${hex(align)}`);
      this.#takeAt(this.#pageCount(at), pages, limitPages, at, size, limit);
      return at;
    }
    this.#flush();
    const page = this.#tree.allocate(pages, Number(align / this.pageSize), limitPages);
    if (page < 0) throw new IovaNoSpaceError(size, align, limit, this.largestFree(limit), this.largestFree());
    this.#live.add(page, pages);
    return BigInt(page) * this.pageSize;
  }

  /**
   * Return an allocation. `iova` and `length` must describe exactly one live
   * allocation (`length` as given to `allocate`; it is rounded up the same way).
   * The range returns to free space at once (it is not cached).
   *
   * @throws {@link IovaAllocatorError} EINVAL for anything else: a double free,
   *   part of an allocation, free space.
   */
  free(iova: bigint, length: bigint): void {
    checkAddress('iova', iova);
    const size = this.#roundLength('length', length);
    const page = iova % this.pageSize === 0n ? this.#pageCount(iova) : -1;
    const pages = this.#pageCount(size);
    const slot = page < 0 ? -1 : this.#live.find(page);
    if (slot < 0 || this.#live.sizeAt(slot) !== pages) {
      const [from, to] = [this.#pagesDown(iova), this.#pagesUp(iova + size)];
      throw this.#notOneAllocation(`free(${hex(iova)}, ${hex(length)})`, iova, size, slot, from, to);
    }
    this.#live.removeAt(slot);
    this.#tree.insert(page, page + pages);
  }

  /**
   * Remove the inclusive range `[start, last]`, widened to whole pages, from free
   * space for good. Parts outside the usable ranges are ignored.
   *
   * @throws {@link IovaAllocatorError} EBUSY, changing nothing, if it overlaps a live allocation.
   */
  reserve(start: bigint, last: bigint): void {
    const span = rangeToSpan('reserve', { start, last });
    const from = this.#pagesDown(span.start);
    const to = this.#pagesUp(span.end);
    this.#flush();
    const hit = this.#live.findOverlap(from, to);
    if (hit !== undefined) {
      throw new IovaAllocatorError('EBUSY', `reserve(${hex(start)}, ${hex(last)}): overlaps the allocation ${this.#rangeText(hit)}`);
    }
    this.#tree.remove(from, to);
  }

  /** Free blocks in address order, as inclusive ranges (cached ranges are returned to free space first). */
  freeRanges(): IovaRange[] {
    this.#flush();
    const out: IovaRange[] = [];
    this.#tree.forEach((start, end) => {
      out.push({ start: this.#bytes(start), last: this.#bytes(end) - 1n });
    });
    return out;
  }

  /** Live allocations of both APIs in address order, with their page-rounded lengths. */
  allocations(): IovaAllocation[] {
    return this.#live.sorted().map(([page, size]) => ({ iova: this.#bytes(page), length: this.#bytes(size) }));
  }

  /** Total free bytes, cached ranges included (excluding holes and reserved ranges). */
  get freeBytes(): bigint {
    return this.#bytes(this.#tree.pages + this.#live.parkedPages);
  }

  /** Size of the largest free block, counting only the part below `limit` (default 2^64). */
  largestFree(limit: bigint = IOVA_SPACE_END): bigint {
    checkLimit(limit);
    this.#flush();
    const limitPages = this.#pagesDown(limit);
    let best = 0;
    this.#tree.forEach((start, end) => {
      if (start >= limitPages) return false;
      const top = end < limitPages ? end : limitPages;
      if (top - start > best) best = top - start;
    });
    return this.#bytes(best);
  }

  /** Takes `[page, page + pages)` or throws EEXIST / EADDRNOTAVAIL (`at`, `size`, `limit` are for the message). */
  #takeAt(page: number, pages: number, limitPages: number, at: bigint | number, size: bigint | number, limit: bigint | number): void {
    if (this.#tryTakeAt(page, pages, limitPages)) return;
    if (this.#live.parkedPages !== 0) {
      this.#flush();
      if (this.#tryTakeAt(page, pages, limitPages)) return;
    }
    const what = typeof at === 'bigint' ? `allocate(${hex(size)}, { at: ${hex(at)} })` : `allocAt(${hex(at)}, ${hex(size)})`;
    const hit = this.#live.findOverlap(page, page + pages);
    if (hit !== undefined) throw new IovaAllocatorError('EEXIST', `${what}: overlaps the allocation ${this.#rangeText(hit)}`);
    if (pages > limitPages - page) throw new IovaAllocatorError('EADDRNOTAVAIL', `${what}: ends above the limit ${hex(limit)}`);
    throw new IovaAllocatorError('EADDRNOTAVAIL', `${what}: not wholly inside usable free space`);
  }

  #tryTakeAt(page: number, pages: number, limitPages: number): boolean {
    if (pages > limitPages - page || !this.#tree.takeAt(page, pages)) return false;
    this.#live.add(page, pages);
    return true;
  }

  /** The EINVAL of a free that names no live allocation of that size; `[from, to)` is the range in pages. */
  #notOneAllocation(
    call: string,
    iova: bigint | number,
    size: bigint | number,
    slot: number,
    from: number,
    to: number,
  ): IovaAllocatorError {
    if (slot >= 0 && this.#live.sizeAt(slot) > 0) {
      const actual = this.#bytes(this.#live.sizeAt(slot));
      return new IovaAllocatorError('EINVAL', `${call}: the allocation at ${hex(iova)} is ${hex(actual)} bytes, not ${hex(size)}`);
    }
    this.#flush();
    const why = this.#tree.overlaps(from, to) ? ' (range overlaps free space: double free?)' : '';
    return new IovaAllocatorError('EINVAL', `${call}: no allocation starts at ${hex(iova)}${why}`);
  }

  /** Returns every cached range to the tree. */
  #flush(): void {
    if (this.#live.parkedPages !== 0) this.#live.drain(this.#toTree);
  }

  #rangeText([page, size]: [number, number]): string {
    return `${hex(this.#bytes(page))}-${hex(this.#bytes(page + size) - 1n)}`;
  }

  #bytes(pages: number): bigint {
    const bytes = pages * this.#page;
    return bytes < FAST_END ? BigInt(bytes) : BigInt(pages) * this.pageSize;
  }

  /** Whole pages in `bytes` (a page multiple); Infinity past the page space, so that it never fits. */
  #pageCount(bytes: bigint): number {
    if (bytes < SAFE_BIGINT) return Number(bytes) * this.#perByte; // exact, and cheaper than a bigint division
    const pages = bytes / this.pageSize;
    return pages <= this.#endPages ? Number(pages) : Infinity;
  }

  /** Pages below `bytes`, rounded down, at most the end of the page space. */
  #pagesDown(bytes: bigint): number {
    if (bytes < SAFE_BIGINT) return Math.floor(Number(bytes) * this.#perByte);
    const pages = bytes / this.pageSize;
    return pages < this.#endPages ? Number(pages) : this.#endPages;
  }

  /** Pages below `bytes`, rounded up, at most the end of the page space. */
  #pagesUp(bytes: bigint): number {
    return this.#pagesDown(alignUp(bytes, this.pageSize));
  }

  #alignPages(align: number): number {
    if (typeof align !== 'number') throw badNumber('align', align, 'a number');
    const pages = align * this.#perByte;
    if (!(pages >= 1 && pages < Infinity) || pages !== 2 ** Math.round(Math.log2(pages))) {
      throw badNumber('align', align, `a power of two >= the page size ${hex(this.#page)}`);
    }
    return pages;
  }

  /** `bytes` in pages: a positive multiple of the page size, else TypeError or RangeError. */
  #pagesOf(name: string, bytes: number): number {
    if (typeof bytes !== 'number') throw badNumber(name, bytes, 'a number');
    const pages = bytes * this.#perByte;
    // Also false for NaN and Infinity (Infinity - Infinity is NaN).
    if (!(pages >= 1 && pages - Math.floor(pages) === 0))
      throw badNumber(name, bytes, `a multiple of the page size ${hex(this.#page)}, > 0`);
    return pages;
  }

  #roundLength(name: string, length: bigint): bigint {
    checkBigint(name, length);
    if (length <= 0n || length > IOVA_SPACE_END) throw new RangeError(`${name} ${hex(length)} is outside [1, 2^64]`);
    return alignUp(length, this.pageSize);
  }
}

/** TypeError for a value that is not a number, RangeError for a number that is not `what`. */
function badNumber(name: string, value: unknown, what: string): Error {
  if (typeof value !== 'number') return new TypeError(`${name} must be a number, got ${typeof value}`);
  return new RangeError(`${name} ${value < 0 || !Number.isFinite(value) ? value : hex(value)} is not ${what}`);
}

function rangeToSpan(name: string, range: IovaRange): Span {
  if (typeof range !== 'object' || range === null) throw new TypeError(`${name} must be an object {start, last}`);
  checkAddress(`${name}.start`, range.start);
  checkAddress(`${name}.last`, range.last);
  if (range.start > range.last) throw new RangeError(`${name}: start ${hex(range.start)} > last ${hex(range.last)}`);
  return { start: range.start, end: range.last + 1n };
}

function checkOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
}

function checkBigint(name: string, value: unknown): asserts value is bigint {
  if (typeof value !== 'bigint') throw new TypeError(`${name} must be a bigint, got ${typeof value}`);
}

function checkAddress(name: string, value: unknown): asserts value is bigint {
  checkBigint(name, value);
  if (value < 0n || value >= IOVA_SPACE_END) throw new RangeError(`${name} ${hex(value)} is not a 64-bit address`);
}

function checkLimit(limit: unknown): asserts limit is bigint {
  checkBigint('limit', limit);
  if (limit < 0n || limit > IOVA_SPACE_END) throw new RangeError(`limit ${hex(limit)} is outside [0, 2^64]`);
}

function checkPowerOfTwo(name: string, value: unknown): asserts value is bigint {
  checkBigint(name, value);
  if (value <= 0n || (value & (value - 1n)) !== 0n || value > IOVA_SPACE_END) {
    throw new RangeError(`${name} ${hex(value)} is not a power of two in [1, 2^64]`);
  }
}

function alignUp(value: bigint, align: bigint): bigint {
  return ((value + align - 1n) / align) * align;
}

function compare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hex(value: bigint | number): string {
  return value < 0 ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
}
