/**
 * A page-bitmap model of IOVA space for the allocator's randomized tests: every
 * page is a hole (or reserved), free, or part of a numbered allocation. It is
 * deliberately naive (first fit tries every aligned page in turn) so that it
 * shares no logic with the allocator it checks.
 */
import assert from 'node:assert/strict';
import type { IovaAllocation, IovaRange } from '../../lib/iova-allocator';

/** The page size the models use. */
export const PAGE = 4096n;
/** A hole or a reserved page. */
export const HOLE = -1;
/** A free page; > 0 means allocated (by allocation number). */
export const FREE = 0;

/** Byte address of page `p`. */
export const pageAddr = (p: number): bigint => BigInt(p) * PAGE;

/** mulberry32: a tiny seeded PRNG, returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The state of `size` pages, each HOLE, FREE or an allocation number. */
export class PageModel {
  /** Each page's state: HOLE, FREE or an allocation number. */
  readonly pages: Int32Array;
  /** First page -> page count, of every live allocation. */
  readonly allocs = new Map<number, number>();
  #next = 1;

  /**
   * @param size - Pages in the model.
   * @param holes - `[from, to)` page ranges that are holes or reserved.
   */
  constructor(
    readonly size: number,
    holes: readonly (readonly [number, number])[],
  ) {
    this.pages = new Int32Array(size);
    for (const [from, to] of holes) this.pages.fill(HOLE, from, to);
  }

  /** Whether `count` pages from `first` are all free (and inside the model). */
  isFree(first: number, count: number): boolean {
    if (first < 0 || first + count > this.size) return false;
    for (let p = first; p < first + count; p++) if (this.pages[p] !== FREE) return false;
    return true;
  }

  /** Whether any of `count` pages from `first` is allocated. */
  isAllocated(first: number, count: number): boolean {
    for (let p = Math.max(first, 0); p < Math.min(first + count, this.size); p++) if (this.pages[p]! > 0) return true;
    return false;
  }

  /** First fit by address, page by page: independent of the allocator's block walk. */
  firstFit(count: number, alignPages: number, limit: bigint): number | undefined {
    for (let p = 0; BigInt(p + count) * PAGE <= limit && p + count <= this.size; p += alignPages) {
      if (this.isFree(p, count)) return p;
    }
    return undefined;
  }

  /** Marks `count` pages from `first` as one new allocation. */
  take(first: number, count: number): void {
    this.pages.fill(this.#next++, first, first + count);
    this.allocs.set(first, count);
  }

  /** Frees the allocation that starts at `first`. */
  release(first: number): void {
    this.pages.fill(FREE, first, first + this.allocs.get(first)!);
    this.allocs.delete(first);
  }

  /**
   * Checks a free of `count` pages at `first`, made by `call`: it must
   * succeed (and the model follows) when they are exactly one allocation,
   * and throw EINVAL otherwise.
   *
   * @returns Whether it freed.
   */
  checkFree(first: number, count: number, call: () => void, what: string): boolean {
    if (this.allocs.get(first) !== count) {
      assert.throws(call, { code: 'EINVAL' }, what);
      return false;
    }
    call();
    this.release(first);
    return true;
  }

  /**
   * Checks a reservation of `count` pages at `first`, made by `call`: EBUSY
   * when it overlaps an allocation, else the pages become holes.
   *
   * @returns Whether it reserved.
   */
  checkReserve(first: number, count: number, call: () => void, what: string): boolean {
    if (this.isAllocated(first, count)) {
      assert.throws(call, { code: 'EBUSY' }, what);
      return false;
    }
    call();
    this.pages.fill(HOLE, first, Math.min(first + count, this.size));
    return true;
  }

  /** Free pages, in bytes. */
  freeBytes(): bigint {
    return pageAddr(this.pages.filter((p) => p === FREE).length);
  }

  /** The free pages as the allocator lists its free blocks. */
  freeRanges(): IovaRange[] {
    const out: IovaRange[] = [];
    for (let p = 0; p < this.size; p++) {
      if (this.pages[p] !== FREE) continue;
      let q = p;
      while (q + 1 < this.size && this.pages[q + 1] === FREE) q++;
      out.push({ start: pageAddr(p), last: pageAddr(q + 1) - 1n });
      p = q;
    }
    return out;
  }

  /** Largest free block, counting only whole pages below `limit`, in bytes. */
  largestFree(limit: bigint): bigint {
    let best = 0n;
    for (const r of this.freeRanges()) {
      const top = r.last + 1n < limit ? r.last + 1n : limit - (limit % PAGE);
      if (top - r.start > best) best = top - r.start;
    }
    return best;
  }

  /** The live allocations as the allocator lists them. */
  allocations(): IovaAllocation[] {
    return [...this.allocs].sort(([x], [y]) => x - y).map(([first, count]) => ({ iova: pageAddr(first), length: pageAddr(count) }));
  }
}
