/**
 * The live allocations of an {@link IovaAllocator}, and its cache of freed
 * ranges, in one open-addressing hash table: first page -> size in pages.
 *
 * The table: linear probing; each slot is two Float64Array entries, the key
 * and the size side by side (16 bytes: never split across cache lines). A removed entry leaves a
 * tombstone, so removing costs one store, and an insert takes the first
 * tombstone or empty slot on its probe path. When keys and tombstones fill
 * half the slots the table is rebuilt without tombstones (doubled when the
 * keys alone fill a quarter), into a spare array kept for the purpose, so
 * the table allocates nothing once it has grown to the working set. Page
 * numbers are integers below 2^53; the hash folds their high 32 bits into
 * the low ones and takes the top bits of a Fibonacci multiply, which spreads
 * runs of consecutive pages over the whole table.
 *
 * The cache, after the Linux kernel's IOVA "rcache" (drivers/iommu/iova.c):
 * a freed range of up to {@link IOVA_CACHE_MAX_PAGES} pages is not returned
 * to the free tree but parked: its entry stays in the table, marked parked,
 * and its first page and slot number go on a stack for its exact size. The
 * next request of that size takes it back from the stack in O(1), without
 * hashing, searching or splitting anything. Differences from the kernel's: one stack
 * per exact size (the kernel has one per power of two and rounds requests up
 * to it, wasting IOVA space), no per-CPU magazines (JavaScript runs one
 * thread), and alignment is checked as well as the limit. Like the kernel's
 * `iova_magazine_pop`, a request scans its stack from the most recently
 * parked entry down for one that ends at or below its limit (and here, is
 * aligned as asked) and swaps it out; only when none qualifies does the
 * allocator go to the tree. Each stack holds at most {@link IOVA_CACHE_DEPTH}
 * entries; a free finding its stack full goes to the tree. When the tree has
 * no room the allocator drains the stacks back into it (coalescing) and
 * searches again, as the kernel's `alloc_iova_fast` flushes its rcaches and
 * retries.
 *
 * A parked entry's size field holds -1 - (its position on the stacks), so a
 * free of a parked range (a double free) does not find a live size, and a
 * rebuild that moves the entry can update the stack; the stack's swap-pop
 * updates the entry it moves likewise. Nothing on this path keeps counters: the parked pages are
 * summed over the stack depths when asked for.
 *
 * Why the page is on the stack too: a free followed by an allocation is a
 * chain of loads and stores through memory, each store-to-load hop costing
 * some 5 cycles; with the page on the stack, the allocation does not wait for
 * the free's hash lookup to reach the stack first.
 *
 * Internal to the library (its IovaAllocator), not part of its API.
 */

/** Largest size, in pages, that is cached; larger ranges always go back to the tree. */
export const IOVA_CACHE_MAX_PAGES = 32;

/** Parked ranges per size (one kernel magazine holds 127). */
export const IOVA_CACHE_DEPTH = 128;

// The same as module constants: TurboFan folds these, not `exports` properties.
const MAX_PAGES = IOVA_CACHE_MAX_PAGES;
const DEPTH = IOVA_CACHE_DEPTH;

const EMPTY = -1;
const TOMBSTONE = -2;
/** 2^-32: multiplying by it is exact and cheaper than dividing by 2^32. */
const PER_2_32 = 1 / 4294967296;

/** Live and parked allocations by first page; see the file header. */
export class IovaLiveTable {
  /** Slot i: its key (page, EMPTY or TOMBSTONE) at 2i, its size (or parked mark) at 2i + 1. */
  #slots: Float64Array;
  /** Where the next rebuild goes; same length as #slots. */
  #spare: Float64Array;
  /** Number of slots - 1 (a power of two - 1). */
  #mask: number;
  /** 32 - log2(slots): the hash is the top bits of a 32-bit product. */
  #shift: number;
  /** Live and parked entries. */
  #keys = 0;
  /** Keys plus tombstones: the table is rebuilt before this passes half the slots. */
  #used = 0;
  /** Parked entries, DEPTH per size: entry k's first page at 2k, its slot at 2k + 1. */
  readonly #parked = new Float64Array(2 * MAX_PAGES * DEPTH);
  /** Entries on each stack. */
  readonly #depths = new Int32Array(MAX_PAGES);

  /** @param capacity - Initial number of slots, a power of two >= 16. */
  constructor(capacity = 1024) {
    this.#slots = new Float64Array(2 * capacity).fill(EMPTY);
    this.#spare = new Float64Array(2 * capacity);
    this.#mask = capacity - 1;
    this.#shift = 32 - Math.log2(capacity);
  }

  /** Number of live allocations. */
  get count(): number {
    let parked = 0;
    for (let c = 0; c < MAX_PAGES; c++) parked += this.#depths[c];
    return this.#keys - parked;
  }

  /** Total pages of the parked ranges. */
  get parkedPages(): number {
    let pages = 0;
    for (let c = 0; c < MAX_PAGES; c++) pages += this.#depths[c] * (c + 1);
    return pages;
  }

  /** Slot of the live or parked entry starting at `page`, or -1. */
  find(page: number): number {
    if (!(page >= 0)) return -1; // never match EMPTY or TOMBSTONE, nor loop on NaN
    const slots = this.#slots;
    const mask = this.#mask;
    for (let i = this.#home(page); ; i = (i + 1) & mask) {
      const key = slots[2 * i];
      if (key === page) return i;
      if (key === EMPTY) return -1;
    }
  }

  /** Size in pages of the live allocation in `slot` (from {@link IovaLiveTable.find}); negative when it is parked. */
  sizeAt(slot: number): number {
    return this.#slots[2 * slot + 1];
  }

  /** Records a live allocation; `page` must not be in the table already. */
  add(page: number, size: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = this.#home(page);
    while (slots[2 * i] >= 0) i = (i + 1) & mask;
    if (slots[2 * i] === EMPTY) {
      if ((this.#used + 1) * 2 > mask + 1) {
        this.#rebuild();
        this.add(page, size);
        return;
      }
      this.#used++;
    }
    slots[2 * i] = page;
    slots[2 * i + 1] = size;
    this.#keys++;
  }

  /** Forgets the live allocation in `slot`. */
  removeAt(slot: number): void {
    this.#slots[2 * slot] = TOMBSTONE;
    this.#keys--;
  }

  /**
   * Parks the live allocation of `size` pages at `page`, in `slot`: it is no
   * longer live, and {@link IovaLiveTable.unpark} can hand it out again.
   *
   * @returns false, changing nothing, when `size` is not cached or its stack is full.
   */
  park(slot: number, page: number, size: number): boolean {
    if (size > MAX_PAGES) return false;
    const c = size - 1;
    const depth = this.#depths[c];
    if (depth === DEPTH) return false;
    const at = c * DEPTH + depth;
    this.#parked[2 * at] = page;
    this.#parked[2 * at + 1] = slot;
    this.#depths[c] = depth + 1;
    this.#slots[2 * slot + 1] = -1 - at;
    return true;
  }

  /**
   * Makes live again a parked range of `size` pages that starts at a multiple
   * of `align` and ends at or below `limit` (all in pages), the most recently
   * parked first.
   *
   * @returns Its first page, or -1 when none qualifies.
   */
  unpark(size: number, align: number, limit: number): number {
    if (size > MAX_PAGES) return -1;
    const c = size - 1;
    const base = c * DEPTH;
    const top = base + this.#depths[c] - 1;
    const parked = this.#parked;
    const highest = limit - size; // the last start that still ends at or below limit
    for (let k = top; k >= base; k--) {
      const page = parked[2 * k];
      if (page <= highest && (align === 1 || Math.floor(page / align) * align === page)) {
        const slot = parked[2 * k + 1];
        if (k !== top) {
          const moved = parked[2 * top + 1];
          parked[2 * k] = parked[2 * top];
          parked[2 * k + 1] = moved;
          this.#slots[2 * moved + 1] = -1 - k;
        }
        this.#depths[c] = top - base;
        this.#slots[2 * slot + 1] = size;
        return page;
      }
    }
    return -1;
  }

  /** Forgets every parked range, handing each to `sink` (first page, size in pages). */
  drain(sink: (page: number, size: number) => void): void {
    const slots = this.#slots;
    for (let c = 0; c < MAX_PAGES; c++) {
      for (let k = c * DEPTH; k < c * DEPTH + this.#depths[c]; k++) {
        sink(this.#parked[2 * k], c + 1);
        slots[2 * this.#parked[2 * k + 1]] = TOMBSTONE;
        this.#keys--;
      }
      this.#depths[c] = 0;
    }
  }

  /**
   * Some live allocation overlapping the pages `[from, to)`, as `[page, size]`,
   * or undefined. O(table size): for error paths and reservations only.
   */
  findOverlap(from: number, to: number): [number, number] | undefined {
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i += 2) {
      const key = slots[i];
      if (key >= 0 && slots[i + 1] > 0 && key < to && key + slots[i + 1] > from) return [key, slots[i + 1]];
    }
    return undefined;
  }

  /** Every live allocation as `[page, size]`, in address order. */
  sorted(): [number, number][] {
    const out: [number, number][] = [];
    const slots = this.#slots;
    for (let i = 0; i < slots.length; i += 2) if (slots[i] >= 0 && slots[i + 1] > 0) out.push([slots[i], slots[i + 1]]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  #home(page: number): number {
    return Math.imul((page >>> 0) ^ ((page * PER_2_32) | 0), 0x9e3779b1) >>> this.#shift;
  }

  /** Rehashes the keys without tombstones, into twice the slots when they fill a quarter. */
  #rebuild(): void {
    const old = this.#slots;
    if ((this.#keys + 1) * 4 > this.#mask + 1) {
      this.#spare = new Float64Array(2 * old.length);
      this.#mask = old.length - 1;
      this.#shift--;
    }
    const slots = this.#spare.fill(EMPTY);
    const mask = this.#mask;
    this.#slots = slots;
    this.#spare = old.length === slots.length ? old : new Float64Array(slots.length);
    for (let i = 0; i < old.length; i += 2) {
      const key = old[i];
      if (key < 0) continue;
      let j = this.#home(key);
      while (slots[2 * j] !== EMPTY) j = (j + 1) & mask;
      slots[2 * j] = key;
      slots[2 * j + 1] = old[i + 1];
      if (old[i + 1] < 0) this.#parked[2 * (-1 - old[i + 1]) + 1] = j;
    }
    this.#used = this.#keys;
  }
}
