/**
 * The free space of an {@link IovaAllocator}: disjoint, never adjacent blocks
 * `[start, end)` of page numbers, in a treap (a binary search tree by `start`
 * that is also a heap by a random priority, so its expected depth is
 * O(log n) whatever the order of inserts and removals).
 *
 * Units: page numbers, not bytes, as JavaScript numbers. The allocator keeps
 * every value at or below 2^53, where numbers are exact integers; sums that
 * could pass 2^53 are written as differences (`top - page >= size`, never
 * `page + size <= top`).
 *
 * Storage: parallel typed arrays indexed by node number (starts, ends, the
 * largest block size in each subtree, children, priorities); node 0 is the
 * empty tree. Removed nodes go on a free list and are reused, and the arrays
 * only grow (doubling), so steady-state use allocates nothing.
 *
 * The subtree maxima make first fit by address O(log n) when the alignment is
 * one page: the search goes left whenever the left subtree holds a block big
 * enough, so the first block it accepts is the lowest one that fits. With a
 * larger alignment a block at least as big as the request may still not hold
 * an aligned range of it; the search then also visits those blocks (each one
 * O(log n)) before it finds a fit.
 *
 * Internal to the library (its IovaAllocator), not part of its API.
 */

/** Removes and inserts blocks of free page numbers; see the file header. */
export class IovaFreeTree {
  #start = new Float64Array(64);
  #end = new Float64Array(64);
  /** Largest `end - start` in the subtree of each node; 0 for node 0. */
  #max = new Float64Array(64);
  #left = new Int32Array(64);
  #right = new Int32Array(64);
  #prio = new Int32Array(64);
  #root = 0;
  /** Next node never used yet. */
  #fresh = 1;
  /** Head of the list of removed nodes (linked through #left), 0 when empty. */
  #recycled = 0;
  #blocks = 0;
  #pages = 0;
  #seed = 0x2545f491;
  /** The start page the last {@link IovaFreeTree.allocate} search settled on. */
  #fitPage = 0;
  /** The other result of #around. */
  #below = 0;
  /** Nodes on the way down, for the walks that need to come back up. */
  #path: Int32Array = new Int32Array(64);

  /** Number of free blocks. */
  get blocks(): number {
    return this.#blocks;
  }

  /** Total free pages. */
  get pages(): number {
    return this.#pages;
  }

  /**
   * First fit by address: takes and returns the lowest page that is a multiple
   * of `align`, starts a run of `size` free pages inside one block, and ends at
   * or below `limit`; -1 when there is none.
   *
   * @param size - Pages, at least 1.
   * @param align - Pages, a power of two.
   * @param limit - Exclusive upper bound, in pages.
   */
  allocate(size: number, align: number, limit: number): number {
    const node = this.#fit(size, align, limit);
    if (node === 0) return -1;
    const page = this.#fitPage;
    this.#take(node, page, page + size);
    return page;
  }

  /**
   * Takes `[page, page + size)` if it lies wholly inside one free block.
   *
   * @returns Whether it did.
   */
  takeAt(page: number, size: number): boolean {
    const node = this.#floor(page);
    if (node === 0 || this.#end[node] - page < size) return false;
    this.#take(node, page, page + size);
    return true;
  }

  /** Takes whatever is free in `[from, to)`; the rest of the range is left alone. */
  remove(from: number, to: number): void {
    if (!(from < to)) return;
    let node = this.#floor(from);
    if (node === 0 || this.#end[node] <= from) node = this.#higher(from);
    while (node !== 0 && this.#start[node] < to) {
      const lo = Math.max(this.#start[node], from);
      const hi = Math.min(this.#end[node], to);
      this.#take(node, lo, hi);
      node = this.#higher(lo);
    }
  }

  /**
   * Adds `[start, end)` to free space, merging it with the blocks it touches.
   *
   * @throws Error when part of it is free already: the caller's bookkeeping is
   *   broken, and nothing is changed.
   */
  insert(start: number, end: number): void {
    const after = this.#around(start);
    const before = this.#below;
    if ((before !== 0 && this.#end[before] > start) || (after !== 0 && this.#start[after] < end)) {
      throw new Error(`IovaFreeTree: pages ${start}-${end - 1} are already partly free`);
    }
    const joinBefore = before !== 0 && this.#end[before] === start;
    const joinAfter = after !== 0 && this.#start[after] === end;
    if (joinBefore && joinAfter) {
      const afterEnd = this.#end[after];
      this.#root = this.#removeKey(this.#root, end);
      this.#recycle(after);
      this.#blocks--;
      this.#end[before] = afterEnd;
      this.#refresh(this.#start[before]);
    } else if (joinBefore) {
      this.#end[before] = end;
      this.#refresh(this.#start[before]);
    } else if (joinAfter) {
      this.#start[after] = start;
      this.#refresh(start);
    } else {
      this.#root = this.#insertNode(this.#root, this.#newNode(start, end));
      this.#blocks++;
    }
    this.#pages += end - start;
  }

  /** Whether any free page lies in `[from, to)`. */
  overlaps(from: number, to: number): boolean {
    const next = this.#around(from);
    const node = this.#below;
    return (node !== 0 && this.#end[node] > from) || (next !== 0 && this.#start[next] < to);
  }

  /**
   * Calls `fn` for each block in address order until it returns false.
   *
   * @param fn - Gets the block's first page and the page after its last.
   */
  forEach(fn: (start: number, end: number) => boolean | void): void {
    this.#walk(this.#root, fn);
  }

  #walk(t: number, fn: (start: number, end: number) => boolean | void): boolean {
    if (t === 0) return true;
    return this.#walk(this.#left[t], fn) && fn(this.#start[t], this.#end[t]) !== false && this.#walk(this.#right[t], fn);
  }

  /** Node of the block with the largest start <= page, or 0. */
  #floor(page: number): number {
    this.#around(page);
    return this.#below;
  }

  /** Node of the block with the smallest start > page, or 0. */
  #higher(page: number): number {
    return this.#around(page);
  }

  /**
   * Both neighbours of `page` in one walk down: returns the node of the block
   * with the smallest start > page (or 0) and leaves the one with the largest
   * start <= page (or 0) in #below.
   */
  #around(page: number): number {
    const start = this.#start;
    let t = this.#root;
    let below = 0;
    let above = 0;
    while (t !== 0) {
      if (start[t] <= page) {
        below = t;
        t = this.#right[t];
      } else {
        above = t;
        t = this.#left[t];
      }
    }
    this.#below = below;
    return above;
  }

  /**
   * The lowest fitting node (its page in #fitPage), or 0: an in-order walk
   * that skips every subtree whose largest block is smaller than `size`.
   */
  #fit(size: number, align: number, limit: number): number {
    const max = this.#max;
    let stack = this.#path;
    let depth = 0;
    let t = this.#root;
    for (;;) {
      while (max[t] >= size) {
        if (depth === stack.length) stack = this.#growPath();
        stack[depth++] = t;
        t = this.#left[t];
      }
      if (depth === 0) return 0;
      t = stack[--depth];
      const start = this.#start[t];
      if (start >= limit) return 0; // so is everything after it
      const page = align === 1 ? start : Math.ceil(start / align) * align;
      const end = this.#end[t];
      const top = end < limit ? end : limit;
      if (top - page >= size) {
        this.#fitPage = page;
        return t;
      }
      t = this.#right[t];
    }
  }

  /** Removes `[from, to)`, which lies inside the block of `node`, from free space. */
  #take(node: number, from: number, to: number): void {
    const start = this.#start[node];
    const end = this.#end[node];
    if (from === start && to === end) {
      this.#root = this.#removeKey(this.#root, start);
      this.#recycle(node);
      this.#blocks--;
    } else if (from === start) {
      this.#start[node] = to;
      this.#refresh(to);
    } else {
      this.#end[node] = from;
      this.#refresh(start);
      if (to !== end) {
        this.#root = this.#insertNode(this.#root, this.#newNode(to, end));
        this.#blocks++;
      }
    }
    this.#pages -= to - from;
  }

  /**
   * Recomputes the subtree maxima from the block starting at `key` up to the
   * root, after that block changed: bottom up, stopping where a maximum
   * comes out unchanged (nothing above it can change then).
   */
  #refresh(key: number): void {
    const start = this.#start;
    let stack = this.#path;
    let depth = 0;
    let t = this.#root;
    for (;;) {
      if (t === 0) throw new Error(`IovaFreeTree: no block starts at page ${key}`);
      if (depth === stack.length) stack = this.#growPath();
      stack[depth++] = t;
      const s = start[t];
      if (key === s) break;
      t = key < s ? this.#left[t] : this.#right[t];
    }
    const max = this.#max;
    while (depth > 0) {
      const n = stack[--depth];
      const before = max[n];
      this.#pull(n);
      if (max[n] === before) return;
    }
  }

  #growPath(): Int32Array {
    const path = new Int32Array(this.#path.length * 2);
    path.set(this.#path);
    this.#path = path;
    return path;
  }

  #pull(t: number): void {
    const max = this.#max;
    let m = this.#end[t] - this.#start[t];
    const l = max[this.#left[t]];
    const r = max[this.#right[t]];
    if (l > m) m = l;
    if (r > m) m = r;
    max[t] = m;
  }

  #insertNode(t: number, n: number): number {
    if (t === 0) return n;
    // Down the side of the new key; rotate the child up if its priority is higher.
    const leftward = this.#start[n] < this.#start[t];
    const down = leftward ? this.#left : this.#right;
    const up = leftward ? this.#right : this.#left;
    const c = this.#insertNode(down[t], n);
    down[t] = c;
    if (this.#prio[c] > this.#prio[t]) {
      down[t] = up[c];
      up[c] = t;
      this.#pull(t);
      this.#pull(c);
      return c;
    }
    this.#pull(t);
    return t;
  }

  #removeKey(t: number, key: number): number {
    if (t === 0) throw new Error(`IovaFreeTree: no block starts at page ${key}`);
    const start = this.#start[t];
    if (key === start) return this.#merge(this.#left[t], this.#right[t]);
    if (key < start) this.#left[t] = this.#removeKey(this.#left[t], key);
    else this.#right[t] = this.#removeKey(this.#right[t], key);
    this.#pull(t);
    return t;
  }

  /** Joins two treaps, every key of `a` below every key of `b`. */
  #merge(a: number, b: number): number {
    if (a === 0) return b;
    if (b === 0) return a;
    if (this.#prio[a] > this.#prio[b]) {
      this.#right[a] = this.#merge(this.#right[a], b);
      this.#pull(a);
      return a;
    }
    this.#left[b] = this.#merge(a, this.#left[b]);
    this.#pull(b);
    return b;
  }

  #newNode(start: number, end: number): number {
    let n = this.#recycled;
    if (n !== 0) {
      this.#recycled = this.#left[n];
    } else {
      if (this.#fresh === this.#start.length) this.#grow();
      n = this.#fresh++;
    }
    // xorshift32: the priorities only shape the tree, never the results.
    let x = this.#seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#seed = x;
    this.#start[n] = start;
    this.#end[n] = end;
    this.#max[n] = end - start;
    this.#left[n] = 0;
    this.#right[n] = 0;
    this.#prio[n] = x;
    return n;
  }

  #recycle(n: number): void {
    this.#left[n] = this.#recycled;
    this.#recycled = n;
  }

  #grow(): void {
    const size = this.#start.length * 2;
    const widen = <T extends Float64Array | Int32Array>(old: T, made: T): T => {
      made.set(old);
      return made;
    };
    this.#start = widen(this.#start, new Float64Array(size));
    this.#end = widen(this.#end, new Float64Array(size));
    this.#max = widen(this.#max, new Float64Array(size));
    this.#left = widen(this.#left, new Int32Array(size));
    this.#right = widen(this.#right, new Int32Array(size));
    this.#prio = widen(this.#prio, new Int32Array(size));
  }
}
