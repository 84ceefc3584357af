/**
 * IOVA allocator for one DMA address space (a VFIO container or an iommufd IOAS).
 *
 * The kernel reports which I/O virtual addresses a device may use as a list of
 * inclusive ranges (`struct iommu_iova_range { start; last; }`); the gaps between
 * them are holes such as the x86 MSI window at 0xfee00000-0xfeefffff. This class
 * hands out page-aligned pieces of those ranges and takes them back.
 *
 * Why bigint: IOVAs are 64-bit values and the usable ranges routinely reach the
 * top of the space (`last = 2^64 - 1`). A JavaScript number is exact only up to
 * 2^53, so every address, size, alignment and limit here is a `bigint`. Bigints
 * cannot overflow, which lets the code use exclusive ends: the end of a block that
 * reaches the top of the space is simply 2^64.
 *
 * Representation: free space is a sorted array of disjoint, non-adjacent blocks
 * `[start, end)`, page aligned at both ends; live allocations are a second sorted
 * array of the same shape. Lookups are binary searches; an insertion or removal is
 * one `splice` (a memmove), so thousands of blocks are cheap and nothing is O(n^2).
 *
 * First fit, here, means first by address: `allocate` walks the free blocks from
 * the lowest address up and returns the lowest IOVA that is a multiple of the
 * requested alignment, lies wholly inside one free block, and ends at or below
 * the limit. The result is therefore fully determined by the current free list,
 * which makes the allocator predictable (and testable against a simple model).
 *
 * Errors:
 *  - TypeError: an argument that should be a bigint is not.
 *  - RangeError: a malformed argument (negative, start > last, beyond 64 bits,
 *    zero length, an alignment or page size that is not a power of two, ...).
 *  - IovaAllocatorError (an Error with a `code`) for requests that are well formed
 *    but cannot be honoured in the current state:
 *      ENOSPC         `allocate` found no free block that fits;
 *      EEXIST         `allocate({ at })` overlaps an existing allocation;
 *      EADDRNOTAVAIL  `allocate({ at })` is not wholly usable free space (hole,
 *                     reserved range, outside the ranges, or above the limit);
 *      EINVAL         `free` of something that is not exactly one allocation;
 *      EBUSY          `reserve` of a range that overlaps an allocation.
 */

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

const DEFAULT_PAGE_SIZE = 4096n;

/** Half-open block `[start, end)`; used for both free blocks and allocations. */
interface Span {
  start: bigint;
  end: bigint;
}

/**
 * Hands out page-aligned IOVA ranges of one DMA address space and takes them
 * back: first fit by address (the lowest IOVA that is a multiple of the
 * alignment, lies in one free block and ends at or below the limit), so the
 * result is fully determined by the free list. Free blocks are kept sorted
 * and coalesced; every address and size is a bigint, since IOVAs are 64-bit.
 * {@link AddressSpace} uses one per address space; it is exported for
 * drivers and tests that manage IOVAs themselves.
 *
 * @example
 * ```ts
 * const a = new IovaAllocator([{ start: 0n, last: 0xfedfffffn }, { start: 0xfef00000n, last: (1n << 48n) - 1n }]);
 * const iova = a.allocate(8192n, { limit: 1n << 32n }); // 0x0
 * a.free(iova, 8192n);
 * ```
 */
export class IovaAllocator {
  /** The granule of every allocation, in bytes (a power of two). */
  readonly pageSize: bigint;
  /** Free blocks: sorted, disjoint, never adjacent (always coalesced), page aligned. */
  readonly #free: Span[] = [];
  /** Live allocations: sorted, disjoint, page aligned. */
  readonly #allocated: Span[] = [];
  #freeBytes = 0n;

  /**
   * @param ranges - The usable IOVA ranges, inclusive, as the kernel reports
   *   them (overlapping or touching ranges are merged; only whole pages are used).
   * @param options - `pageSize` (default 4096n) and `reserved` ranges never to hand out.
   * @throws TypeError when `ranges` or `reserved` is not an array of `{ start, last }` bigints.
   * @throws RangeError for a malformed range (start > last, beyond 64 bits) or a
   *   page size that is not a power of two.
   */
  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    this.pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    checkPowerOfTwo('pageSize', this.pageSize);
    if (!Array.isArray(ranges)) throw new TypeError('ranges must be an array of {start, last}');
    const reserved = options.reserved ?? [];
    if (!Array.isArray(reserved)) throw new TypeError('reserved must be an array of {start, last}');

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
      const start = alignUp(m.start, this.pageSize);
      const end = alignDown(m.end, this.pageSize);
      if (start < end) {
        this.#free.push({ start, end });
        this.#freeBytes += end - start;
      }
    }
    // Removing a reserved range widened to whole pages is the same as subtracting
    // it byte-wise and then trimming the remainder to pages.
    reserved.forEach((r, i) => {
      const { start, end } = rangeToSpan(`reserved[${i}]`, r);
      this.reserve(start, end - 1n);
    });
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
    const size = this.#roundLength('length', length);
    const align = options.align ?? this.pageSize;
    checkPowerOfTwo('align', align);
    if (align < this.pageSize) throw new RangeError(`align ${hex(align)} is smaller than pageSize ${hex(this.pageSize)}`);
    const limit = options.limit ?? IOVA_SPACE_END;
    checkLimit(limit);

    const iova = options.at === undefined ? this.#findFirstFit(size, align, limit) : this.#checkFixed(options.at, size, align, limit);
    this.#takeFree(iova, iova + size);
    this.#allocated.splice(firstStartAbove(this.#allocated, iova), 0, { start: iova, end: iova + size });
    return iova;
  }

  /**
   * Return an allocation. `iova` and `length` must describe exactly one live
   * allocation (`length` as given to `allocate`; it is rounded up the same way).
   *
   * @throws {@link IovaAllocatorError} EINVAL for anything else: a double free,
   *   part of an allocation, free space.
   */
  free(iova: bigint, length: bigint): void {
    checkAddress('iova', iova);
    const size = this.#roundLength('length', length);
    const index = firstStartAbove(this.#allocated, iova) - 1;
    const found = this.#allocated[index];
    if (found === undefined || found.start !== iova) {
      const why = overlapIndex(this.#free, iova, iova + size) >= 0 ? ' (range overlaps free space: double free?)' : '';
      throw new IovaAllocatorError('EINVAL', `free(${hex(iova)}, ${hex(length)}): no allocation starts at ${hex(iova)}${why}`);
    }
    if (found.end - found.start !== size) {
      throw new IovaAllocatorError(
        'EINVAL',
        `free(${hex(iova)}, ${hex(length)}): the allocation at ${hex(iova)} is ${hex(found.end - found.start)} bytes, not ${hex(size)}`,
      );
    }
    this.#allocated.splice(index, 1);
    this.#insertFree(found.start, found.end);
  }

  /**
   * Remove the inclusive range `[start, last]`, widened to whole pages, from free
   * space for good. Parts outside the usable ranges are ignored.
   *
   * @throws {@link IovaAllocatorError} EBUSY, changing nothing, if it overlaps a live allocation.
   */
  reserve(start: bigint, last: bigint): void {
    const span = rangeToSpan('reserve', { start, last });
    const from = alignDown(span.start, this.pageSize);
    const to = alignUp(span.end, this.pageSize);
    const hit = this.#allocated[overlapIndex(this.#allocated, from, to)];
    if (hit !== undefined) {
      throw new IovaAllocatorError(
        'EBUSY',
        `reserve(${hex(start)}, ${hex(last)}): overlaps the allocation ${hex(hit.start)}-${hex(hit.end - 1n)}`,
      );
    }
    this.#takeFree(from, to);
  }

  /** Free blocks in address order, as inclusive ranges. */
  freeRanges(): IovaRange[] {
    return this.#free.map(({ start, end }) => ({ start, last: end - 1n }));
  }

  /** Live allocations in address order, with their page-rounded lengths. */
  allocations(): IovaAllocation[] {
    return this.#allocated.map(({ start, end }) => ({ iova: start, length: end - start }));
  }

  /** Total free bytes (excluding holes and reserved ranges). */
  get freeBytes(): bigint {
    return this.#freeBytes;
  }

  /** Size of the largest free block, counting only the part below `limit` (default 2^64). */
  largestFree(limit: bigint = IOVA_SPACE_END): bigint {
    checkLimit(limit);
    let best = 0n;
    for (const { start, end } of this.#free) {
      if (start >= limit) break;
      const top = end < limit ? end : alignDown(limit, this.pageSize);
      if (top - start > best) best = top - start;
    }
    return best;
  }

  #roundLength(name: string, length: bigint): bigint {
    checkBigint(name, length);
    if (length <= 0n || length > IOVA_SPACE_END) throw new RangeError(`${name} ${hex(length)} is outside [1, 2^64]`);
    return alignUp(length, this.pageSize);
  }

  #findFirstFit(size: bigint, align: bigint, limit: bigint): bigint {
    for (const { start, end } of this.#free) {
      if (start >= limit) break;
      const iova = alignUp(start, align);
      const top = end < limit ? end : limit;
      if (iova + size <= top) return iova;
    }
    throw new IovaNoSpaceError(size, align, limit, this.largestFree(limit), this.largestFree());
  }

  /** Validate `allocate({ at })`; returns `at` if `[at, at + size)` is wholly free and below `limit`. */
  #checkFixed(at: bigint, size: bigint, align: bigint, limit: bigint): bigint {
    checkAddress('at', at);
    if (at % align !== 0n) throw new RangeError(`at ${hex(at)} is not a multiple of ${hex(align)}`);
    const end = at + size;
    const what = `allocate(${hex(size)}, { at: ${hex(at)} })`;
    const hit = this.#allocated[overlapIndex(this.#allocated, at, end)];
    if (hit !== undefined) {
      throw new IovaAllocatorError('EEXIST', `${what}: overlaps the allocation ${hex(hit.start)}-${hex(hit.end - 1n)}`);
    }
    if (end > limit) throw new IovaAllocatorError('EADDRNOTAVAIL', `${what}: ends above the limit ${hex(limit)}`);
    const block = this.#free[firstStartAbove(this.#free, at) - 1];
    if (block === undefined || end > block.end) {
      throw new IovaAllocatorError('EADDRNOTAVAIL', `${what}: not wholly inside usable free space`);
    }
    return at;
  }

  /** Remove `[from, to)` from the free blocks; parts that are not free are ignored. */
  #takeFree(from: bigint, to: bigint): void {
    if (from >= to) return;
    const free = this.#free;
    let first = firstStartAbove(free, from) - 1;
    if (first < 0 || free[first]!.end <= from) first++;
    let past = first;
    while (past < free.length && free[past]!.start < to) {
      this.#freeBytes -= free[past]!.end - free[past]!.start;
      past++;
    }
    if (past === first) return;
    const pieces: Span[] = [];
    const head = free[first]!;
    const tail = free[past - 1]!;
    if (head.start < from) pieces.push({ start: head.start, end: from });
    if (tail.end > to) pieces.push({ start: to, end: tail.end });
    for (const p of pieces) this.#freeBytes += p.end - p.start;
    free.splice(first, past - first, ...pieces);
  }

  /** Add `[start, end)`, which must not be free already, coalescing with its neighbours. */
  #insertFree(start: bigint, end: bigint): void {
    const free = this.#free;
    const next = firstStartAbove(free, start);
    const before = free[next - 1];
    const after = free[next];
    if ((before !== undefined && before.end > start) || (after !== undefined && after.start < end)) {
      throw new Error(`IovaAllocator internal error: ${hex(start)}-${hex(end - 1n)} is already partly free`);
    }
    const mergeBefore = before !== undefined && before.end === start;
    const mergeAfter = after !== undefined && after.start === end;
    const merged = { start: mergeBefore ? before.start : start, end: mergeAfter ? after.end : end };
    const from = mergeBefore ? next - 1 : next;
    free.splice(from, Number(mergeBefore) + Number(mergeAfter), merged);
    this.#freeBytes += end - start;
  }
}

/** Index of the first span whose start is > `value` (spans sorted by start). */
function firstStartAbove(spans: readonly Span[], value: bigint): number {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (spans[mid]!.start <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Index of a span overlapping `[start, end)`, or -1. Spans are sorted and
 * disjoint, so their ends are sorted too: only the last span starting before
 * `end` can reach past `start`.
 */
function overlapIndex(spans: readonly Span[], start: bigint, end: bigint): number {
  const i = firstStartAbove(spans, end - 1n) - 1;
  return i >= 0 && spans[i]!.end > start ? i : -1;
}

function rangeToSpan(name: string, range: IovaRange): Span {
  if (typeof range !== 'object' || range === null) throw new TypeError(`${name} must be an object {start, last}`);
  checkAddress(`${name}.start`, range.start);
  checkAddress(`${name}.last`, range.last);
  if (range.start > range.last) throw new RangeError(`${name}: start ${hex(range.start)} > last ${hex(range.last)}`);
  return { start: range.start, end: range.last + 1n };
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

function alignDown(value: bigint, align: bigint): bigint {
  return value - (value % align);
}

function compare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hex(value: bigint): string {
  return value < 0n ? `-0x${(-value).toString(16)}` : `0x${value.toString(16)}`;
}
