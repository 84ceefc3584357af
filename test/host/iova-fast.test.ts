import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import {
  IOVA_FAST_END,
  IOVA_SPACE_END,
  IovaAllocator,
  IovaAllocatorError,
  IovaNoSpaceError,
  type IovaRange,
} from '../../lib/iova-allocator';
import { IOVA_CACHE_DEPTH, IOVA_CACHE_MAX_PAGES } from '../../lib/iova-live-table';
import { FREE, HOLE, mulberry32, pageAddr, PageModel } from './iova-model';

const P = 4096; // the page size, as a number
const MiB = 1 << 20;
const GiB = 2 ** 30;
const PAGE_N = BigInt(P);

const range = (start: bigint, last: bigint): IovaRange => ({ start, last });
/** An allocator over `[0, bytes)`, in pages of 4 KiB. */
const space = (bytes: number, reserved: IovaRange[] = []) => new IovaAllocator([range(0n, BigInt(bytes) - 1n)], { reserved });
const iovas = (a: IovaAllocator) => a.allocations().map((x) => Number(x.iova));

describe('IovaAllocator number API (allocFast, freeFast, allocAt)', () => {
  describe('allocFast', () => {
    it('takes the lowest free IOVA, page multiples of any size, and returns -1 when nothing fits', () => {
      const a = space(64 * P);
      assert.equal(a.allocFast(P), 0);
      assert.equal(a.allocFast(3 * P), P);
      assert.equal(a.allocFast(40 * P), 4 * P);
      assert.equal(a.allocFast(21 * P), -1); // 20 pages are left
      assert.equal(a.allocFast(20 * P), 44 * P);
      assert.equal(a.allocFast(P), -1);
      assert.equal(a.freeBytes, 0n);
      assert.deepEqual(a.allocations(), [
        { iova: 0n, length: 0x1000n },
        { iova: 0x1000n, length: 0x3000n },
        { iova: 0x4000n, length: 0x28000n },
        { iova: 0x2c000n, length: 0x14000n },
      ]);
    });

    it('aligns as asked (2 MiB, 1 GiB), filling lower gaps with later small allocations', () => {
      const a = new IovaAllocator([range(0x1000n, 0x1ffffffffn)]);
      assert.equal(a.allocFast(P), 0x1000);
      assert.equal(a.allocFast(2 * MiB, 2 * MiB), 0x200000);
      assert.equal(a.allocFast(P, 2 * MiB), 0x400000);
      assert.equal(a.allocFast(P), 0x2000);
      assert.equal(a.allocFast(GiB, GiB), 0x40000000);
      assert.equal(a.allocFast(P, 8 * GiB), -1); // 0 is not in the range, 0x2_0000_0000 is past it
      assert.equal(a.allocFast(P, 8 * P), 0x8000);
    });

    it('keeps below the limit, ending exactly at it, never across it', () => {
      const a = new IovaAllocator([range(0x1000n, 0xffffffn)]);
      assert.equal(a.allocFast(0x7ff000, P, 0x800000), 0x1000);
      assert.equal(a.allocFast(P, P, 0x800000), -1);
      assert.equal(a.allocFast(P, P, 0x800fff), -1); // not a whole page below it
      assert.equal(a.allocFast(P, P, 0x801000), 0x800000);
      assert.equal(a.allocFast(P, P, 0), -1);
      assert.equal(a.allocFast(P, P, Infinity), 0x801000); // no limit
    });

    it('never hands out an IOVA at or above 2^53, where the bigint API still can', () => {
      const top = 1n << 53n;
      const a = new IovaAllocator([range(top - 0x2000n, top + 0xffffn)]);
      assert.equal(a.allocFast(P), 2 ** 53 - 0x2000);
      assert.equal(a.allocFast(2 * P), -1); // would end past 2^53
      assert.equal(a.allocFast(P), 2 ** 53 - 0x1000);
      assert.ok(Number.isSafeInteger(2 ** 53 - 0x1000 + P - 1)); // its last byte is exact
      assert.equal(a.allocFast(P, P, 2 ** 60), -1); // a higher limit is clipped
      assert.throws(() => a.allocAt(2 ** 53, P), {
        code: 'EADDRNOTAVAIL',
        message: /^allocAt\(0x20000000000000, 0x1000\): ends above the limit 0x20000000000000$/,
      });
      assert.equal(a.allocate(0x2000n), top); // the bigint API reaches past it
      assert.equal(IOVA_FAST_END, 2 ** 53);
    });

    it('rejects malformed arguments with TypeError or RangeError naming them, changing nothing', () => {
      const a = space(MiB);
      for (const size of [0, -P, P + 1, 0.5 * P, NaN, Infinity])
        assert.throws(() => a.allocFast(size), { name: 'RangeError', message: /^size/ }, `${size}`);
      assert.throws(() => a.allocFast('4096' as unknown as number), { name: 'TypeError', message: /^size/ });
      for (const align of [0, 3 * P, P / 2, -P, 6 * P, NaN, Infinity])
        assert.throws(() => a.allocFast(P, align), { name: 'RangeError', message: /^align/ }, `${align}`);
      assert.throws(() => a.allocFast(P, 4096n as unknown as number), { name: 'TypeError', message: /^align/ });
      assert.throws(() => a.allocFast(P, P, -1), { name: 'RangeError', message: /^limit/ });
      assert.throws(() => a.allocFast(P, P, NaN), { name: 'RangeError', message: /^limit/ });
      assert.throws(() => a.allocFast(P, P, 1n as unknown as number), { name: 'TypeError', message: /^limit/ });
      assert.deepEqual(a.allocations(), []);
      assert.equal(a.freeBytes, BigInt(MiB));
    });

    it('noSpaceError describes the request and what is free', () => {
      const a = space(16 * P);
      assert.equal(a.allocFast(8 * P, P, 12 * P), 0);
      assert.equal(a.allocFast(8 * P, P, 12 * P), -1);
      const err = a.noSpaceError(8 * P, P, 12 * P);
      assert.ok(err instanceof IovaNoSpaceError && err instanceof IovaAllocatorError);
      assert.equal(err.code, 'ENOSPC');
      assert.deepEqual([err.length, err.align, err.limit], [0x8000n, 0x1000n, 0xc000n]);
      assert.deepEqual([err.largestFree, err.largestFreeAnywhere], [0x4000n, 0x8000n]);
      assert.equal(a.noSpaceError(P).limit, 1n << 53n); // the default limit is the clip
    });
  });

  describe('the cache of freed ranges', () => {
    it('hands a freed range of a cached size out again first, the most recent first', () => {
      const a = space(MiB);
      const x = [1, 2, 3, 4].map(() => a.allocFast(2 * P));
      assert.deepEqual(x, [0, 0x2000, 0x4000, 0x6000]);
      a.freeFast(0x2000, 2 * P);
      a.freeFast(0x6000, 2 * P);
      assert.equal(a.freeBytes, BigInt(MiB - 4 * P)); // cached ranges count as free
      assert.deepEqual(iovas(a), [0, 0x4000]);
      assert.equal(a.allocFast(P), 0x8000); // another size: not from the cache
      assert.equal(a.allocFast(2 * P), 0x6000); // the most recently freed
      assert.equal(a.allocFast(2 * P), 0x2000);
      assert.equal(a.allocFast(2 * P), 0x9000); // cache empty: first fit
    });

    it('does not hand out a cached range that breaks the request’s limit or alignment', () => {
      const a = space(MiB);
      for (let i = 0; i < 32; i++) a.allocFast(P);
      a.freeFast(0x3000, P);
      a.freeFast(0x10000, P); // 64 KiB aligned
      a.freeFast(0x1f000, P); // the most recent, but ends above 0x1f000 and is not 64 KiB aligned
      assert.equal(a.allocFast(P, P, 0x1f000), 0x10000); // the newest that ends below the limit
      assert.equal(a.allocFast(P, 0x10000), 0x20000); // no cached one is 64 KiB aligned any more: first fit
      assert.equal(a.allocFast(P, P, 0x3000), -1); // none ends below 0x3000, even after returning them to free space
      assert.equal(a.allocFast(P, P, 0x4000), 0x3000);
      assert.equal(a.allocFast(P), 0x1f000);
    });

    it('holds at most IOVA_CACHE_DEPTH ranges per size and sizes up to IOVA_CACHE_MAX_PAGES; the rest return to free space', () => {
      const n = IOVA_CACHE_DEPTH + 8;
      const a = space(16 * MiB);
      const small = Array.from({ length: n }, () => a.allocFast(P));
      const big = a.allocFast((IOVA_CACHE_MAX_PAGES + 1) * P);
      const cached = a.allocFast(IOVA_CACHE_MAX_PAGES * P);
      a.freeFast(big, (IOVA_CACHE_MAX_PAGES + 1) * P); // too big to cache: free space at once
      a.freeFast(cached, IOVA_CACHE_MAX_PAGES * P); // cached
      for (const iova of small) a.freeFast(iova, P); // the last 8 find the stack full
      // The bigint API sees through the cache: first fit over all free space...
      assert.equal(a.allocate(BigInt((IOVA_CACHE_MAX_PAGES + 1) * P)), 0n);
      // ... and the cache is empty afterwards: allocFast is first fit again.
      assert.equal(a.allocFast(P), (IOVA_CACHE_MAX_PAGES + 1) * P);

      const b = space(16 * MiB);
      const again = Array.from({ length: n }, () => b.allocFast(P));
      for (const iova of again) b.freeFast(iova, P);
      // The first DEPTH were cached, newest first; the last 8 went back to free space.
      const reused = Array.from({ length: IOVA_CACHE_DEPTH }, () => b.allocFast(P));
      assert.deepEqual(reused, again.slice(0, IOVA_CACHE_DEPTH).reverse());
      assert.equal(b.allocFast(P), again[IOVA_CACHE_DEPTH]); // the lowest free page, from free space
    });

    it('returns the cache to free space when nothing else fits, then succeeds', () => {
      const a = space(8 * P);
      const pages = Array.from({ length: 8 }, () => a.allocFast(P));
      assert.equal(a.allocFast(P), -1);
      for (const iova of pages) a.freeFast(iova, P); // all cached: the tree is empty
      assert.deepEqual(a.allocations(), []);
      assert.equal(a.allocFast(8 * P), 0); // coalesced back into one block
      a.freeFast(0, 8 * P);
      assert.deepEqual(a.freeRanges(), [range(0n, 0x7fffn)]);
    });

    it('an exact IOVA can take a cached range; one that overlaps a live allocation is EEXIST', () => {
      const a = space(MiB);
      for (let i = 0; i < 4; i++) a.allocFast(P);
      a.freeFast(0x1000, P); // cached
      a.freeFast(0x2000, P); // cached
      assert.equal(a.allocAt(0x1000, 2 * P), 0x1000); // both cached pages, coalesced
      assert.equal(a.allocFast(P), 0x4000); // the cache was returned to free space
      assert.throws(() => a.allocAt(0x3000, P), { code: 'EEXIST', message: /overlaps the allocation 0x3000-0x3fff/ });
      assert.throws(() => a.allocAt(0, 2 * P), { code: 'EEXIST' });
      a.freeFast(0x3000, P); // cached again
      assert.equal(a.allocate(PAGE_N, { at: 0x3000n }), 0x3000n); // the bigint API's at, likewise
      assert.deepEqual(iovas(a), [0, 0x1000, 0x3000, 0x4000]);
    });

    it('reserve takes cached ranges out of free space for good', () => {
      const a = space(16 * P);
      for (let i = 0; i < 4; i++) a.allocFast(P);
      a.freeFast(0x2000, P); // cached
      a.reserve(0x2000n, 0x2fffn);
      assert.deepEqual(a.freeRanges(), [range(0x4000n, 0xffffn)]);
      assert.equal(a.allocFast(P), 0x4000);
      assert.throws(() => a.allocAt(0x2000, P), { code: 'EADDRNOTAVAIL' });
    });
  });

  describe('freeFast and the bookkeeping shared with the bigint API', () => {
    it('rejects a double free, a wrong size, part of an allocation and free space (EINVAL), changing nothing', () => {
      const a = space(MiB);
      assert.equal(a.allocFast(2 * P), 0);
      assert.equal(a.allocFast(P), 0x2000);
      a.freeFast(0x2000, P);
      const before = { allocs: a.allocations(), bytes: a.freeBytes };
      assert.throws(() => a.freeFast(0x2000, P), { code: 'EINVAL', message: /double free/ }); // cached: still caught
      assert.throws(() => a.freeFast(0, P), { code: 'EINVAL', message: /is 0x2000 bytes, not 0x1000/ });
      assert.throws(() => a.freeFast(0x1000, P), { code: 'EINVAL', message: /no allocation starts at 0x1000$/ });
      assert.throws(() => a.freeFast(0x800, P), { code: 'EINVAL' });
      assert.throws(() => a.freeFast(0x40000, P), { code: 'EINVAL', message: /double free/ }); // free space
      assert.throws(() => a.freeFast(-P, P), { code: 'EINVAL' });
      assert.throws(() => a.freeFast(NaN, P), { code: 'EINVAL' });
      assert.throws(() => a.freeFast(0, P + 1), { name: 'RangeError', message: /^size/ });
      assert.throws(() => a.freeFast(0, 0), { name: 'RangeError', message: /^size/ });
      assert.throws(() => a.freeFast(0n as unknown as number, 2 * P), { name: 'TypeError', message: /^iova/ });
      assert.deepEqual({ allocs: a.allocations(), bytes: a.freeBytes }, before);
      a.freeFast(0, 2 * P);
      assert.deepEqual(a.allocations(), []);
    });

    it('either free call frees either kind of allocation; allocations() lists both', () => {
      const a = space(MiB);
      assert.equal(a.allocFast(P), 0);
      assert.equal(a.allocate(0x1800n), 0x1000n); // rounded to 2 pages
      assert.equal(a.allocFast(P), 0x3000);
      assert.deepEqual(a.allocations(), [
        { iova: 0n, length: 0x1000n },
        { iova: 0x1000n, length: 0x2000n },
        { iova: 0x3000n, length: 0x1000n },
      ]);
      a.freeFast(0x1000, 2 * P); // a bigint allocation, freed fast (and cached)
      a.free(0n, 0x1000n); // a fast allocation, freed through the bigint API
      assert.throws(() => a.free(0x1000n, 0x2000n), { code: 'EINVAL', message: /double free/ });
      assert.deepEqual(iovas(a), [0x3000]);
      assert.equal(a.freeBytes, BigInt(MiB - P));
      assert.deepEqual(a.freeRanges(), [range(0n, 0x2fffn), range(0x4000n, 0xfffffn)]);
    });

    it('works with a larger page size', () => {
      const a = new IovaAllocator([range(0n, 0xffffffn)], { pageSize: 0x10000n });
      assert.equal(a.allocFast(0x10000), 0);
      assert.throws(() => a.allocFast(P), { name: 'RangeError', message: /multiple of the page size 0x10000/ });
      assert.throws(() => a.allocFast(0x10000, P), { name: 'RangeError', message: /^align/ });
      assert.equal(a.allocFast(0x20000, 0x40000), 0x40000);
      a.freeFast(0, 0x10000);
      assert.equal(a.allocFast(0x10000), 0);
    });
  });

  it('holds 100,000 allocations freed and reallocated in random order, then coalesces back', function () {
    this.timeout(20_000);
    const ranges = [range(0n, 0xfedfffffn), range(0xfef00000n, (1n << 40n) - 1n)];
    const a = new IovaAllocator(ranges, { reserved: [range(0n, 0xfffn)] });
    const rnd = mulberry32(99);
    const sizeOf = () => P * (rnd() < 0.9 ? 1 + Math.floor(rnd() * 4) : 30 + Math.floor(rnd() * 40)); // some not cached
    const live = Array.from({ length: 100_000 }, () => {
      const size = sizeOf();
      return { iova: a.allocFast(size), size };
    });
    const shuffle = () => {
      for (let i = live.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [live[i], live[j]] = [live[j]!, live[i]!];
      }
    };
    const assertDisjoint = () => {
      const sorted = a.allocations();
      assert.equal(sorted.length, live.length);
      assert.ok(sorted[0]!.iova >= 0x1000n);
      for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i - 1]!.iova + sorted[i - 1]!.length <= sorted[i]!.iova, `allocation ${i}`);
    };
    assertDisjoint();
    for (let round = 0; round < 3; round++) {
      shuffle();
      for (const x of live.slice(0, 50_000)) a.freeFast(x.iova, x.size);
      for (const x of live.slice(0, 50_000)) {
        x.size = sizeOf();
        x.iova = a.allocFast(x.size);
      }
      assertDisjoint();
    }
    shuffle();
    for (const x of live) a.freeFast(x.iova, x.size);
    assert.deepEqual(a.allocations(), []);
    assert.deepEqual(a.freeRanges(), [range(0x1000n, 0xfedfffffn), ranges[1]]);
  });

  it('allocates no objects per allocate + free once warm (no garbage collection in a million)', async () => {
    const a = space(GiB, [range(0n, 0xfffn)]);
    for (let i = 0; i < 1000; i++) a.allocFast(P);
    const collections = async (body: () => void): Promise<number> => {
      let count = 0;
      const observer = new PerformanceObserver((list) => (count += list.getEntries().length));
      observer.observe({ entryTypes: ['gc'] });
      body();
      await new Promise((resolve) => setTimeout(resolve, 50));
      observer.disconnect();
      return count;
    };
    const loop = (n: number) => {
      for (let i = 0; i < n; i++) a.freeFast(a.allocFast(P), P);
    };
    loop(200_000); // warm up: optimized code
    // The check can fail: the same loop keeping one small object per step collects garbage.
    const sink: object[] = [];
    const control = await collections(() => {
      for (let i = 0; i < 1_000_000; i++) {
        const kept = { iova: a.allocFast(P) };
        sink[i & 1023] = kept;
        a.freeFast(kept.iova, P);
      }
    });
    assert.ok(control > 0, 'the control loop should have collected garbage');
    assert.equal(await collections(() => loop(1_000_000)), 0);
  });

  describe('randomized, against a page bitmap model', () => {
    // 1024 pages, page 0 reserved (as the library does), two holes, a reserved range.
    const PAGES = 1024;
    const HOLES: [number, number][] = [
      [0, 1],
      [300, 310],
      [700, 702],
      [900, 904],
    ];

    function run(seed: number, steps: number) {
      const rnd = mulberry32(seed);
      const int = (n: number) => Math.floor(rnd() * n);
      const model = new PageModel(PAGES, HOLES);
      const a = new IovaAllocator(
        [range(0n, pageAddr(300) - 1n), range(pageAddr(310), pageAddr(700) - 1n), range(pageAddr(702), pageAddr(PAGES) - 1n)],
        { reserved: [range(0n, 0n), range(pageAddr(900), pageAddr(904) - 1n)] },
      );
      const stats = { fast: 0, notFirstFit: 0, enospc: 0, slow: 0, at: 0, eexist: 0, eaddrnotavail: 0, free: 0, einval: 0, reserve: 0 };
      const live = () => [...model.allocs.keys()];

      for (let step = 0; step < steps; step++) {
        const what = `seed ${seed} step ${step}`;
        const op = rnd();
        const count = rnd() < 0.85 ? 1 + int(4) : rnd() < 0.7 ? 1 + int(40) : 50 + int(200);
        const alignPages = rnd() < 0.8 ? 1 : 1 << int(7);
        if (op < 0.45) {
          const limit = rnd() < 0.25 ? P * int(PAGES + 16) + (rnd() < 0.5 ? 0 : int(P)) : undefined;
          const iova = a.allocFast(count * P, alignPages * P, limit);
          const effLimit = limit === undefined ? IOVA_SPACE_END : BigInt(limit);
          const expected = model.firstFit(count, alignPages, effLimit);
          if (iova === -1) {
            // ENOSPC only when nothing fits anywhere free (cached ranges included).
            assert.equal(expected, undefined, `${what}: -1 but page ${expected} fits`);
            stats.enospc++;
          } else {
            const first = iova / P;
            assert.ok(Number.isInteger(first) && first % alignPages === 0, `${what}: ${iova} misaligned`);
            assert.ok(BigInt(iova + count * P) <= effLimit, `${what}: ${iova} ends above the limit`);
            assert.ok(model.isFree(first, count), `${what}: ${iova} + ${count} pages is not free (${model.pages[first]})`);
            if (first !== expected) stats.notFirstFit++;
            model.take(first, count);
            stats.fast++;
          }
        } else if (op < 0.5) {
          // The bigint API is first fit over all free space, cached ranges included.
          const expected = model.firstFit(count, alignPages, IOVA_SPACE_END);
          if (expected === undefined) {
            assert.throws(() => a.allocate(pageAddr(count), { align: pageAddr(alignPages) }), { code: 'ENOSPC' }, what);
          } else {
            assert.equal(a.allocate(pageAddr(count), { align: pageAddr(alignPages) }), pageAddr(expected), what);
            model.take(expected, count);
          }
          stats.slow++;
        } else if (op < 0.58) {
          // Now and then aimed at a hole, a reserved range or past the end.
          const first = rnd() < 0.3 ? [0, 305, 701, 902, PAGES - 1][int(5)]! : int(PAGES + 4);
          const call = () => a.allocAt(first * P, count * P);
          if (model.isAllocated(first, count)) {
            assert.throws(call, { code: 'EEXIST' }, what);
            stats.eexist++;
          } else if (!model.isFree(first, count)) {
            assert.throws(call, { code: 'EADDRNOTAVAIL' }, what);
            stats.eaddrnotavail++;
          } else {
            assert.equal(call(), first * P, what);
            model.take(first, count);
            stats.at++;
          }
        } else if (op < 0.93) {
          const firsts = live();
          if (firsts.length === 0) continue;
          const first = firsts[int(firsts.length)]!;
          const size = model.allocs.get(first)!;
          if (rnd() < 0.8) a.freeFast(first * P, size * P);
          else a.free(pageAddr(first), pageAddr(size));
          model.release(first);
          if (rnd() < 0.1) assert.throws(() => a.freeFast(first * P, size * P), { code: 'EINVAL' }, `${what}: double free`);
          stats.free++;
        } else if (op < 0.995) {
          // A random free: right only if it names exactly one allocation.
          const first = int(PAGES);
          if (model.checkFree(first, count, () => a.freeFast(first * P, count * P), what)) stats.free++;
          else stats.einval++;
        } else {
          const first = int(PAGES);
          if (model.checkReserve(first, 2, () => a.reserve(pageAddr(first), pageAddr(first + 2) - 1n), what)) stats.reserve++;
        }

        // The bookkeeping, which does not disturb the cache, often; the free ranges (which drain it) now and then.
        if (step % 8 === 0) {
          assert.deepEqual(a.allocations(), model.allocations(), what);
          assert.equal(a.freeBytes, model.freeBytes(), what);
        }
        if (step % 50 === 49) assert.deepEqual(a.freeRanges(), model.freeRanges(), what);
      }
      // Everything freed, everything coalesces back.
      for (const first of live()) {
        a.freeFast(first * P, model.allocs.get(first)! * P);
        model.release(first);
      }
      assert.deepEqual(a.freeRanges(), model.freeRanges());
      assert.ok(model.pages.every((p) => p === FREE || p === HOLE));
      return stats;
    }

    for (const seed of [1, 7, 0xfeedface, 20250101]) {
      it(`keeps the invariants over 4000 random operations (seed ${seed})`, function () {
        this.timeout(20_000); // about 1 s, more on a busy machine
        const stats = run(seed, 4000);
        const s = JSON.stringify(stats);
        // Make sure every path was exercised: cache hits (not first fit), ENOSPC after draining, exact IOVAs.
        assert.ok(stats.fast > 800 && stats.notFirstFit > 100 && stats.enospc > 20 && stats.slow > 100, s);
        assert.ok(stats.at > 10 && stats.eexist > 30 && stats.eaddrnotavail > 10, s);
        assert.ok(stats.free > 800 && stats.einval > 100, s);
      });
    }
  });
});
