import assert from 'node:assert/strict';
import { IOVA_SPACE_END, IovaAllocator, IovaAllocatorError, IovaNoSpaceError, type IovaRange } from '../../lib/iova-allocator';
import { mulberry32, pageAddr, PageModel } from './iova-model';

const KiB = 1n << 10n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;
const PAGE = 4n * KiB;
const TOP = IOVA_SPACE_END - 1n; // 2^64 - 1, the highest IOVA

/** Check the allocator's internal invariants through its public view. */
function assertConsistent(a: IovaAllocator): void {
  const free = a.freeRanges();
  let total = 0n;
  free.forEach((r, i) => {
    assert.ok(r.start <= r.last, `free block ${i} empty`);
    assert.equal(r.start % a.pageSize, 0n, `free block ${i} start unaligned`);
    assert.equal((r.last + 1n) % a.pageSize, 0n, `free block ${i} end unaligned`);
    if (i > 0) assert.ok(free[i - 1]!.last + 1n < r.start, `free blocks ${i - 1} and ${i} overlap or touch`);
    total += r.last - r.start + 1n;
  });
  assert.equal(a.freeBytes, total);
  const allocs = a.allocations();
  allocs.forEach((x, i) => {
    assert.ok(x.length > 0n && x.length % a.pageSize === 0n && x.iova % a.pageSize === 0n);
    if (i > 0) assert.ok(allocs[i - 1]!.iova + allocs[i - 1]!.length <= x.iova, `allocations ${i - 1} and ${i} overlap`);
    for (const r of free) assert.ok(!overlaps(x.iova, x.iova + x.length - 1n, r), `allocation ${i} overlaps free space`);
  });
}

function overlaps(start: bigint, last: bigint, r: IovaRange): boolean {
  return start <= r.last && r.start <= last;
}

const range = (start: bigint, last: bigint): IovaRange => ({ start, last });

describe('IovaAllocator', () => {
  describe('construction', () => {
    it('sorts, merges and trims the ranges to whole pages', () => {
      const a = new IovaAllocator([
        range(0x20000n, 0x2ffffn),
        range(0x123n, 0x5fffn), // trimmed up to 0x1000
        range(0x4000n, 0x8fffn), // overlaps the previous one
        range(0x9000n, 0x9ffen), // touches it: merged, then the end trimmed down to 0x8fff
        range(0xc001n, 0xcfffn), // less than a page after trimming: dropped
        range(0x21000n, 0x21fffn), // inside the first one
      ]);
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x8fffn), range(0x20000n, 0x2ffffn)]);
      assert.equal(a.freeBytes, 0x8000n + 0x10000n);
      assert.deepEqual(a.allocations(), []);
      assertConsistent(a);
    });

    it('subtracts reserved ranges, widened to whole pages', () => {
      const a = new IovaAllocator([range(0n, 0xfffffn)], {
        reserved: [range(0x3800n, 0x38ffn), range(0x10000n, 0x1ffffn), range(0xff000n, 0x200000n), range(0n, 0n)],
      });
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x2fffn), range(0x4000n, 0xffffn), range(0x20000n, 0xfefffn)]);
      assertConsistent(a);
    });

    it('honours a larger page size', () => {
      const a = new IovaAllocator([range(0x1000n, 0x7fffffn)], { pageSize: 64n * KiB });
      assert.equal(a.pageSize, 64n * KiB);
      assert.deepEqual(a.freeRanges(), [range(0x10000n, 0x7fffffn)]);
      assert.equal(a.allocate(1n), 0x10000n);
      assert.deepEqual(a.allocations(), [{ iova: 0x10000n, length: 0x10000n }]);
      assert.throws(() => a.allocate(PAGE, { align: PAGE }), RangeError); // align below the page size
    });

    it('accepts no ranges at all (everything is ENOSPC)', () => {
      const a = new IovaAllocator([]);
      assert.equal(a.freeBytes, 0n);
      assert.throws(() => a.allocate(PAGE), { code: 'ENOSPC' });
    });

    it('rejects bad arguments', () => {
      assert.throws(() => new IovaAllocator([{ start: 0, last: 0xfffn } as unknown as IovaRange]), TypeError);
      assert.throws(() => new IovaAllocator([{ start: 0n } as unknown as IovaRange]), TypeError);
      assert.throws(() => new IovaAllocator([null as unknown as IovaRange]), TypeError);
      assert.throws(() => new IovaAllocator('nope' as unknown as IovaRange[]), TypeError);
      assert.throws(() => new IovaAllocator([range(0x2000n, 0x1fffn)]), RangeError);
      assert.throws(() => new IovaAllocator([range(-0x1000n, 0x1fffn)]), RangeError);
      assert.throws(() => new IovaAllocator([range(0n, IOVA_SPACE_END)]), RangeError);
      assert.throws(() => new IovaAllocator([range(0n, 0xffffn)], { pageSize: 3000n }), RangeError);
      assert.throws(() => new IovaAllocator([range(0n, 0xffffn)], { pageSize: 0n }), RangeError);
      assert.throws(() => new IovaAllocator([range(0n, 0xffffn)], { pageSize: -4096n }), RangeError);
      assert.throws(() => new IovaAllocator([range(0n, 0xffffn)], { pageSize: 4096 as unknown as bigint }), TypeError);
      assert.throws(() => new IovaAllocator([range(0n, 0xffffn)], { reserved: [range(5n, 4n)] }), RangeError);
      assert.throws(
        () => new IovaAllocator([range(0n, 0xffffn)], { reserved: [{ start: 1, last: 2 } as unknown as IovaRange] }),
        TypeError,
      );
    });
  });

  describe('holes and reserved ranges (Intel vIOMMU layout)', () => {
    const MSI_HOLE = range(0xfee00000n, 0xfeefffffn);
    const IOAPIC = range(0xfec00000n, 0xfecfffffn);
    const make = () => new IovaAllocator([range(0xfef00000n, 0x7fffffffffn), range(0n, 0xfedfffffn)], { reserved: [IOAPIC] });

    it('starts with the holes and reserved ranges removed', () => {
      assert.deepEqual(make().freeRanges(), [range(0n, 0xfebfffffn), range(0xfed00000n, 0xfedfffffn), range(0xfef00000n, 0x7fffffffffn)]);
    });

    it('never hands out a hole or a reserved range; big allocations skip blocks too small', () => {
      const a = make();
      assert.equal(a.allocate(0xfe000000n), 0n);
      // 12 MiB remain below the IOAPIC and 1 MiB between it and the MSI hole: 16 MiB goes above.
      assert.equal(a.allocate(16n * MiB), 0xfef00000n);
      assert.equal(a.allocate(1n * MiB), 0xfe000000n);
      assert.equal(a.allocate(11n * MiB), 0xfe100000n); // ends exactly where the IOAPIC range starts
      assert.equal(a.allocate(PAGE), 0xfed00000n);
      assert.equal(a.allocate(0x100000n - PAGE), 0xfed01000n); // ends exactly at the MSI hole
      assert.equal(a.allocate(PAGE), 0xfff00000n); // right after the 16 MiB one
      assert.deepEqual(a.freeRanges(), [range(0xfff01000n, 0x7fffffffffn)]);
      for (const x of a.allocations()) {
        const last = x.iova + x.length - 1n;
        assert.ok(!overlaps(x.iova, last, MSI_HOLE) && !overlaps(x.iova, last, IOAPIC), `${x.iova.toString(16)}`);
      }
      assertConsistent(a);
    });

    it('refuses a fixed IOVA in a hole, a reserved range or outside the ranges', () => {
      const a = make();
      assert.throws(() => a.allocate(PAGE, { at: 0xfee00000n }), { code: 'EADDRNOTAVAIL' });
      assert.throws(() => a.allocate(2n * PAGE, { at: 0xfedff000n }), { code: 'EADDRNOTAVAIL' }); // runs into the hole
      assert.throws(() => a.allocate(PAGE, { at: 0xfec80000n }), { code: 'EADDRNOTAVAIL' });
      assert.throws(() => a.allocate(PAGE, { at: 0x8000000000n }), { code: 'EADDRNOTAVAIL' });
      assert.equal(a.allocate(PAGE, { at: 0xfedff000n }), 0xfedff000n);
      assert.equal(a.allocate(PAGE, { at: 0xfef00000n }), 0xfef00000n);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xfebfffffn), range(0xfed00000n, 0xfedfefffn), range(0xfef01000n, 0x7fffffffffn)]);
    });
  });

  describe('fixed IOVA (at)', () => {
    it('takes exactly the requested range, and refuses one that is taken', () => {
      const a = new IovaAllocator([range(0n, 0xffffffn)]);
      assert.equal(a.allocate(0x3000n, { at: 0x10000n }), 0x10000n);
      assert.equal(a.allocate(PAGE), 0n); // first fit is unaffected below it
      assert.throws(() => a.allocate(PAGE, { at: 0x12000n }), { code: 'EEXIST' });
      assert.throws(() => a.allocate(0x2000n, { at: 0xf000n }), { code: 'EEXIST' }); // tail overlaps
      assert.throws(() => a.allocate(PAGE, { at: 0x10800n }), RangeError); // not page aligned
      assert.throws(() => a.allocate(PAGE, { at: 0x20000n, align: 0x40000n }), RangeError); // not aligned as asked
      assert.throws(() => a.allocate(PAGE, { at: -PAGE }), RangeError);
      assert.throws(() => a.allocate(PAGE, { at: 0x20000 as unknown as bigint }), TypeError);
      assert.throws(() => a.allocate(PAGE, { at: 0x20000n, limit: 0x20800n }), { code: 'EADDRNOTAVAIL' });
      assert.equal(a.allocate(PAGE, { at: 0x20000n, limit: 0x21000n }), 0x20000n);
      assert.equal(a.allocate(PAGE, { at: 0x13000n }), 0x13000n); // directly after the first one
      assert.deepEqual(a.allocations(), [
        { iova: 0n, length: PAGE },
        { iova: 0x10000n, length: 0x3000n },
        { iova: 0x13000n, length: PAGE },
        { iova: 0x20000n, length: PAGE },
      ]);
      assertConsistent(a);
    });
  });

  describe('alignment', () => {
    it('aligns to 2 MiB and 1 GiB, filling lower gaps with later small allocations', () => {
      const a = new IovaAllocator([range(0x1000n, 0x1ffffffffn)]);
      assert.equal(a.allocate(PAGE), 0x1000n);
      assert.equal(a.allocate(2n * MiB, { align: 2n * MiB }), 0x200000n);
      assert.equal(a.allocate(PAGE, { align: 2n * MiB }), 0x400000n);
      assert.equal(a.allocate(PAGE), 0x2000n);
      assert.equal(a.allocate(GiB, { align: GiB }), 0x40000000n);
      assert.equal(a.allocate(PAGE, { align: GiB }), 0x80000000n);
      assert.equal(a.allocate(3n * MiB, { align: 2n * MiB }), 0x600000n);
      assert.equal(a.allocate(GiB, { align: GiB }), 0xc0000000n);
      assert.equal(a.allocate(GiB, { align: GiB }), 0x100000000n);
      assert.throws(() => a.allocate(GiB, { align: 4n * GiB }), { code: 'ENOSPC' }); // 0x2_0000_0000 is past the end
      assert.equal(a.allocate(GiB, { align: GiB }), 0x140000000n);
      assert.equal(a.allocate(GiB, { align: GiB }), 0x180000000n);
      assert.equal(a.allocate(GiB, { align: GiB }), 0x1c0000000n); // ends exactly at the end of the range
      assert.throws(() => a.allocate(GiB, { align: GiB }), { code: 'ENOSPC' });
      assert.deepEqual(a.freeRanges(), [
        range(0x3000n, 0x1fffffn),
        range(0x401000n, 0x5fffffn),
        range(0x900000n, 0x3fffffffn),
        range(0x80001000n, 0xbfffffffn),
      ]);
      assertConsistent(a);
    });

    it('skips a range smaller than the alignment', () => {
      // No multiple of 8 MiB lies in [0x1000, 0x3fffff] (0 is below it): ENOSPC.
      assert.throws(() => new IovaAllocator([range(0x1000n, 0x3fffffn)]).allocate(PAGE, { align: 8n * MiB }), {
        code: 'ENOSPC',
      });
      // ... but 0 is a multiple of everything.
      assert.equal(new IovaAllocator([range(0n, 0x3fffffn)]).allocate(PAGE, { align: GiB }), 0n);

      const a = new IovaAllocator([range(0x1000n, 0x3fffffn), range(0x10000000n, 0x10ffffffn)]);
      assert.equal(a.allocate(PAGE, { align: 16n * MiB }), 0x10000000n);
      assert.equal(a.allocate(PAGE, { align: 8n * MiB }), 0x10800000n);
      assert.throws(() => a.allocate(PAGE, { align: 32n * MiB }), { code: 'ENOSPC' });
      assert.equal(a.allocate(PAGE), 0x1000n); // the small range is still first for unaligned requests
      assert.deepEqual(a.freeRanges(), [range(0x2000n, 0x3fffffn), range(0x10001000n, 0x107fffffn), range(0x10801000n, 0x10ffffffn)]);
    });

    it('rejects alignments that are not powers of two, below the page size, or not bigints', () => {
      const a = new IovaAllocator([range(0n, 0xffffffn)]);
      assert.throws(() => a.allocate(PAGE, { align: 3n * PAGE }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: 0x3000n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: 0n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: -PAGE }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: 2048n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: 1n << 65n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { align: 8192 as unknown as bigint }), TypeError);
      assert.deepEqual(a.allocations(), []);
    });
  });

  describe('limit (DMA mask)', () => {
    it('keeps allocations below a 28-bit limit, and is ENOSPC under it while space remains above', () => {
      const a = new IovaAllocator([range(0n, 0xffffffffn)]);
      const limit = 1n << 28n;
      for (let i = 0n; i < 16n; i++) {
        const iova = a.allocate(16n * MiB, { limit });
        assert.equal(iova, i * 16n * MiB);
        assert.ok(iova + 16n * MiB <= limit);
      }
      assert.equal(a.largestFree(limit), 0n);
      assert.equal(a.largestFree(), 0xf0000000n);
      assert.throws(() => a.allocate(PAGE, { limit }), { code: 'ENOSPC' });
      assert.equal(a.freeBytes, 0xf0000000n);
      assert.equal(a.allocate(PAGE), 0x10000000n); // without the limit it fits right above
    });

    it('ends an allocation exactly at the limit, never across it', () => {
      const a = new IovaAllocator([range(0x1000n, 0xffffffn)]);
      assert.equal(a.allocate(0x7ff000n, { limit: 0x800000n }), 0x1000n); // ends exactly at the limit
      assert.throws(() => a.allocate(PAGE, { limit: 0x800000n }), { code: 'ENOSPC' });
      assert.throws(() => a.allocate(PAGE, { limit: 0x800fffn }), { code: 'ENOSPC' }); // not a whole page below
      assert.equal(a.allocate(PAGE, { limit: 0x801000n }), 0x800000n);
      // A free block straddling the limit is usable only up to the limit.
      assert.equal(a.largestFree(0x900800n), 0xff000n);
      assert.throws(() => a.allocate(0x100000n, { limit: 0x900800n }), { code: 'ENOSPC' });
      assert.equal(a.allocate(0xff000n, { limit: 0x900800n }), 0x801000n);
      assert.throws(() => a.allocate(PAGE, { limit: 0n }), { code: 'ENOSPC' });
    });

    it('rejects a bad limit', () => {
      const a = new IovaAllocator([range(0n, 0xffffffn)]);
      assert.throws(() => a.allocate(PAGE, { limit: -1n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { limit: IOVA_SPACE_END + 1n }), RangeError);
      assert.throws(() => a.allocate(PAGE, { limit: 0x1000000 as unknown as bigint }), TypeError);
      assert.throws(() => a.largestFree(-1n), RangeError);
    });
  });

  describe('fragmentation and reuse', () => {
    it('goes past holes too small, reuses them first fit, and coalesces back to the original ranges', () => {
      const original = [range(0n, 0x3fffffn), range(0x800000n, 0xffffffn)];
      const a = new IovaAllocator(original);
      const size = 0x10000n;
      const iovas: bigint[] = [];
      for (let i = 0n; i < 64n; i++) iovas.push(a.allocate(size));
      assert.deepEqual(
        iovas,
        iovas.map((_, i) => BigInt(i) * size),
      );
      assert.deepEqual(a.freeRanges(), [range(0x800000n, 0xffffffn)]);
      for (let i = 1; i < 64; i += 2) a.free(iovas[i]!, size); // 32 holes of 64 KiB
      assert.equal(a.freeRanges().length, 33);
      assert.equal(a.largestFree(0x400000n), size);
      assert.equal(a.allocate(2n * size), 0x800000n); // larger than any hole
      assert.equal(a.allocate(size, { align: 0x20000n }), 0x820000n); // the holes are not 128 KiB aligned
      assert.equal(a.allocate(size), 0x10000n); // first hole
      assert.equal(a.allocate(PAGE), 0x30000n); // next hole, partly
      assert.equal(a.allocate(0xf000n), 0x31000n); // fills the rest of it exactly
      assert.equal(a.allocate(PAGE), 0x50000n);
      assertConsistent(a);

      // Free everything left, in a scrambled order so both neighbours get merged.
      const rest = a.allocations();
      const order = rest.map((_, i) => (i * 37) % rest.length);
      assert.equal(new Set(order).size, rest.length);
      for (const i of order) {
        a.free(rest[i]!.iova, rest[i]!.length);
        assertConsistent(a);
      }
      assert.deepEqual(a.freeRanges(), original);
      assert.deepEqual(a.allocations(), []);
      assert.equal(a.freeBytes, 0xc00000n);
    });

    it('coalesces with the block before, after, and both', () => {
      const a = new IovaAllocator([range(0n, 0xfffffn)]);
      const x = [0, 1, 2, 3, 4].map(() => a.allocate(PAGE));
      assert.deepEqual(x, [0n, 0x1000n, 0x2000n, 0x3000n, 0x4000n]);
      a.free(0x1000n, PAGE);
      a.free(0x3000n, PAGE);
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x1fffn), range(0x3000n, 0x3fffn), range(0x5000n, 0xfffffn)]);
      a.free(0x4000n, PAGE); // merges with the block after and the one before
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x1fffn), range(0x3000n, 0xfffffn)]);
      a.free(0n, PAGE); // merges with the block after only
      assert.deepEqual(a.freeRanges(), [range(0n, 0x1fffn), range(0x3000n, 0xfffffn)]);
      a.free(0x2000n, PAGE);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xfffffn)]);
    });

    it('does not coalesce across a hole or a reserved range', () => {
      const a = new IovaAllocator([range(0n, 0x3fffn), range(0x5000n, 0x9fffn)], { reserved: [range(0x7000n, 0x7fffn)] });
      const x = [a.allocate(0x4000n), a.allocate(0x2000n), a.allocate(0x2000n)];
      assert.deepEqual(x, [0n, 0x5000n, 0x8000n]);
      assert.deepEqual(a.freeRanges(), []);
      x.forEach((iova, i) => a.free(iova, [0x4000n, 0x2000n, 0x2000n][i]!));
      assert.deepEqual(a.freeRanges(), [range(0n, 0x3fffn), range(0x5000n, 0x6fffn), range(0x8000n, 0x9fffn)]);
    });

    it('handles thousands of blocks', () => {
      const a = new IovaAllocator([range(0n, 0xffffffffn)]);
      const n = 10000;
      const iovas = Array.from({ length: n }, () => a.allocate(PAGE));
      assert.equal(iovas[n - 1], BigInt(n - 1) * PAGE);
      for (let i = 0; i < n; i += 2) a.free(iovas[i]!, PAGE);
      assert.equal(a.freeRanges().length, n / 2 + 1);
      for (let i = 1; i < n; i += 2) a.free(iovas[i]!, PAGE);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xffffffffn)]);
    });
  });

  describe('exhaustion', () => {
    it('fills exactly, then reports ENOSPC with the request and the largest free block', () => {
      const a = new IovaAllocator([range(0x100000n, 0x1fffffn)]);
      const quarters = [0, 1, 2, 3].map(() => a.allocate(0x40000n));
      assert.deepEqual(quarters, [0x100000n, 0x140000n, 0x180000n, 0x1c0000n]);
      assert.equal(a.freeBytes, 0n);
      assert.deepEqual(a.freeRanges(), []);

      const err = captureError(() => a.allocate(PAGE));
      assert.ok(err instanceof IovaNoSpaceError && err instanceof IovaAllocatorError);
      assert.equal(err.code, 'ENOSPC');
      assert.equal(err.length, PAGE);
      assert.equal(err.align, PAGE);
      assert.equal(err.limit, IOVA_SPACE_END);
      assert.equal(err.largestFree, 0n);
      assert.match(err.message, /length 0x1000\b/);
      assert.match(err.message, /align 0x1000\b/);
      assert.match(err.message, /limit 0x10000000000000000\b/);
      assert.match(err.message, /largest free block is 0x0 bytes/);

      a.free(0x140000n, 0x40000n);
      const tooBig = captureError(() => a.allocate(0x40001n, { align: 0x10000n, limit: 0x1c0000n }));
      assert.ok(tooBig instanceof IovaNoSpaceError);
      assert.equal(tooBig.length, 0x41000n); // rounded up to pages
      assert.match(tooBig.message, /length 0x41000\b.*align 0x10000\b.*limit 0x1c0000\b.*largest free block is 0x40000 bytes/);
      assert.equal(a.allocate(0x40000n), 0x140000n);
      assert.throws(() => a.allocate(PAGE), { code: 'ENOSPC' });
    });
  });

  describe('the top of the 64-bit space', () => {
    it('allocates the last page of a range ending at 2^64 - 1', () => {
      const a = new IovaAllocator([range(TOP - 0x2fffn, TOP)]);
      assert.deepEqual(a.freeRanges(), [range(0xffffffffffffd000n, 0xffffffffffffffffn)]);
      assert.equal(a.allocate(PAGE, { at: TOP - 0xfffn }), 0xfffffffffffff000n);
      assert.equal(a.allocate(PAGE), 0xffffffffffffd000n);
      assert.equal(a.allocate(PAGE), 0xffffffffffffe000n);
      assert.throws(() => a.allocate(PAGE), { code: 'ENOSPC' });
      assert.throws(() => a.allocate(PAGE, { at: TOP - 0xfffn }), { code: 'EEXIST' });
      a.free(0xfffffffffffff000n, PAGE);
      assert.deepEqual(a.freeRanges(), [range(0xfffffffffffff000n, TOP)]);
      assert.throws(() => a.allocate(0x2000n, { at: TOP - 0xfffn }), { code: 'EADDRNOTAVAIL' }); // would wrap past 2^64
      assert.equal(a.allocate(PAGE, { limit: IOVA_SPACE_END }), 0xfffffffffffff000n);
      assert.throws(() => a.allocate(PAGE, { at: IOVA_SPACE_END }), RangeError);
    });

    it('hands out the whole 64-bit space as one allocation, and halves of it', () => {
      const a = new IovaAllocator([range(0n, TOP)]);
      assert.equal(a.freeBytes, IOVA_SPACE_END);
      assert.equal(a.largestFree(), IOVA_SPACE_END);
      assert.equal(a.allocate(IOVA_SPACE_END), 0n);
      assert.equal(a.freeBytes, 0n);
      a.free(0n, IOVA_SPACE_END);
      assert.deepEqual(a.freeRanges(), [range(0n, TOP)]);
      assert.equal(a.allocate(PAGE, { align: 1n << 63n }), 0n);
      assert.equal(a.allocate(PAGE, { align: 1n << 63n }), 1n << 63n);
      assert.throws(() => a.allocate(PAGE, { align: 1n << 63n }), { code: 'ENOSPC' });
      assert.equal(a.allocate(1n << 62n, { align: 1n << 62n }), 1n << 62n);
      assert.equal(a.allocate((1n << 63n) - PAGE), (1n << 63n) + PAGE); // the rest of the top half
      assert.deepEqual(a.freeRanges(), [range(PAGE, (1n << 62n) - 1n)]);
      assert.throws(() => a.allocate(IOVA_SPACE_END + 1n), RangeError);
    });

    it('reserves the last page of the space', () => {
      const a = new IovaAllocator([range(0n, TOP)], { reserved: [range(TOP, TOP)] });
      assert.deepEqual(a.freeRanges(), [range(0n, TOP - PAGE)]);
      assert.equal(a.allocate(PAGE, { align: 1n << 63n, limit: IOVA_SPACE_END }), 0n);
      assert.equal(a.allocate(PAGE, { at: TOP - 2n * PAGE + 1n }), TOP - 2n * PAGE + 1n);
    });
  });

  describe('free', () => {
    const make = () => {
      const a = new IovaAllocator([range(0n, 0xfffffn)]);
      assert.equal(a.allocate(0x3000n), 0n);
      assert.equal(a.allocate(0x2000n), 0x3000n);
      return a;
    };

    it('accepts the length as given to allocate, rounded up the same way', () => {
      const a = new IovaAllocator([range(0n, 0xfffffn)]);
      assert.equal(a.allocate(0x2001n), 0n);
      assert.deepEqual(a.allocations(), [{ iova: 0n, length: 0x3000n }]);
      a.free(0n, 0x2001n);
      assert.equal(a.allocate(1n), 0n);
      a.free(0n, PAGE);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xfffffn)]);
    });

    it('rejects double frees and anything that is not exactly one allocation, changing nothing', () => {
      const a = make();
      const before = { free: a.freeRanges(), allocs: a.allocations(), bytes: a.freeBytes };
      const bad: [bigint, bigint][] = [
        [0n, 0x2000n], // shorter than the allocation
        [0n, 0x4000n], // longer
        [0n, 0x5000n], // covers both allocations
        [0x1000n, 0x2000n], // tail of the first
        [0x3000n, 0x3000n], // second one plus free space
        [0x5000n, PAGE], // free space
        [0x800n, PAGE], // unaligned
        [0x200000n, PAGE], // outside the ranges
      ];
      for (const [iova, length] of bad) {
        assert.throws(() => a.free(iova, length), { code: 'EINVAL' }, `free(${iova}, ${length})`);
      }
      assert.deepEqual({ free: a.freeRanges(), allocs: a.allocations(), bytes: a.freeBytes }, before);

      a.free(0x3000n, 0x2000n);
      assert.throws(() => a.free(0x3000n, 0x2000n), { code: 'EINVAL', message: /double free/ });
      a.free(0n, 0x3000n);
      assert.throws(() => a.free(0n, 0x3000n), { code: 'EINVAL' });
      assert.deepEqual(a.freeRanges(), [range(0n, 0xfffffn)]);
    });

    it('rejects bad arguments', () => {
      const a = make();
      assert.throws(() => a.free(0 as unknown as bigint, 0x3000n), TypeError);
      assert.throws(() => a.free(0n, 0x3000 as unknown as bigint), TypeError);
      assert.throws(() => a.free(0n, 0n), RangeError);
      assert.throws(() => a.free(0n, -0x3000n), RangeError);
      assert.throws(() => a.free(-0x1000n, 0x3000n), RangeError);
      assert.equal(a.allocations().length, 2);
    });
  });

  describe('reserve', () => {
    it('removes a range from free space for good, widened to pages, spanning blocks and holes', () => {
      const a = new IovaAllocator([range(0n, 0xffffn), range(0x20000n, 0x2ffffn)]);
      assert.equal(a.allocate(PAGE), 0n);
      a.reserve(0x4800n, 0x4800n);
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x3fffn), range(0x5000n, 0xffffn), range(0x20000n, 0x2ffffn)]);
      a.reserve(0xe000n, 0x21fffn); // end of one block, the hole, start of the next
      assert.deepEqual(a.freeRanges(), [range(0x1000n, 0x3fffn), range(0x5000n, 0xdfffn), range(0x22000n, 0x2ffffn)]);
      a.reserve(0x40000n, 0x4ffffn); // outside every range: no effect
      a.reserve(0x4000n, 0x4fffn); // already reserved: no effect
      assert.equal(a.freeBytes, 0x3000n + 0x9000n + 0xe000n);
      assert.throws(() => a.allocate(PAGE, { at: 0x4000n }), { code: 'EADDRNOTAVAIL' });
      assert.equal(a.allocate(0x4000n), 0x5000n); // does not fit in 0x1000-0x3fff
      assert.equal(a.allocate(0x6000n), 0x22000n); // nor in 0x9000-0xdfff
      assertConsistent(a);
    });

    it('refuses to reserve over an allocation, changing nothing', () => {
      const a = new IovaAllocator([range(0n, 0xffffn)]);
      assert.equal(a.allocate(0x2000n, { at: 0x4000n }), 0x4000n);
      const before = a.freeRanges();
      assert.throws(() => a.reserve(0x3000n, 0x4000n), { code: 'EBUSY' });
      assert.throws(() => a.reserve(0x5fffn, 0x5fffn), { code: 'EBUSY' });
      assert.throws(() => a.reserve(0n, 0xffffn), { code: 'EBUSY' });
      assert.deepEqual(a.freeRanges(), before);
      a.reserve(0x3000n, 0x3fffn);
      a.reserve(0x6000n, 0x6000n);
      a.free(0x4000n, 0x2000n); // its neighbours are reserved: it stands alone
      assert.deepEqual(a.freeRanges(), [range(0n, 0x2fffn), range(0x4000n, 0x5fffn), range(0x7000n, 0xffffn)]);
    });

    it('rejects bad arguments', () => {
      const a = new IovaAllocator([range(0n, 0xffffn)]);
      assert.throws(() => a.reserve(0x2000n, 0x1fffn), RangeError);
      assert.throws(() => a.reserve(-1n, 0x1fffn), RangeError);
      assert.throws(() => a.reserve(0n, IOVA_SPACE_END), RangeError);
      assert.throws(() => a.reserve(0 as unknown as bigint, 0x1fffn), TypeError);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xffffn)]);
    });
  });

  describe('allocate arguments', () => {
    it('rejects bad lengths', () => {
      const a = new IovaAllocator([range(0n, 0xffffn)]);
      assert.throws(() => a.allocate(0n), RangeError);
      assert.throws(() => a.allocate(-PAGE), RangeError);
      assert.throws(() => a.allocate(4096 as unknown as bigint), TypeError);
      assert.throws(() => a.allocate(PAGE, null as unknown as object), TypeError);
      assert.deepEqual(a.freeRanges(), [range(0n, 0xffffn)]);
    });
  });

  describe('randomized, against a page bitmap model', () => {
    // 256 pages with two holes and one reserved page.
    const PAGES = 256;
    const HOLES = [
      [40, 48],
      [130, 132],
    ] as const;
    const RESERVED_PAGE = 200;

    function run(seed: number, steps: number) {
      const rnd = mulberry32(seed);
      const int = (n: number) => Math.floor(rnd() * n);
      /** A byte length that rounds up to exactly `pages` pages. */
      const lengthOf = (pages: number) => pageAddr(pages - 1) + 1n + BigInt(int(Number(PAGE)));
      const model = new PageModel(PAGES, [...HOLES, [RESERVED_PAGE, RESERVED_PAGE + 1]]);
      const ranges = [range(0n, pageAddr(40) - 1n), range(pageAddr(48), pageAddr(130) - 1n), range(pageAddr(132), pageAddr(PAGES) - 1n)];
      // Shuffled, with a sub-page reserved range that must cost the whole page.
      const a = new IovaAllocator(rnd() < 0.5 ? ranges : [...ranges].reverse(), {
        reserved: [range(pageAddr(RESERVED_PAGE) + 0x10n, pageAddr(RESERVED_PAGE) + 0x20n)],
      });
      const stats = { alloc: 0, enospc: 0, at: 0, eexist: 0, eaddrnotavail: 0, free: 0, einval: 0, reserve: 0, ebusy: 0 };

      for (let step = 0; step < steps; step++) {
        const what = `seed ${seed} step ${step}`;
        const op = rnd();
        if (op < 0.55) {
          const count = 1 + int(rnd() < 0.1 ? 64 : 8);
          const alignPages = 1 << int(6);
          const align = alignPages === 1 && rnd() < 0.5 ? undefined : pageAddr(alignPages);
          const limit = rnd() < 0.3 ? pageAddr(int(PAGES + 8)) + (rnd() < 0.5 ? 0n : BigInt(int(Number(PAGE)))) : undefined;
          const length = lengthOf(count);
          const effLimit = limit ?? IOVA_SPACE_END;
          if (rnd() < 0.15) {
            const first = alignPages * int(Math.ceil((PAGES + 4) / alignPages));
            const at = pageAddr(first);
            const call = () => a.allocate(length, { align, limit, at });
            if (model.isAllocated(first, count)) {
              assert.throws(call, { code: 'EEXIST' }, what);
              stats.eexist++;
            } else if (pageAddr(first + count) > effLimit || !model.isFree(first, count)) {
              assert.throws(call, { code: 'EADDRNOTAVAIL' }, what);
              stats.eaddrnotavail++;
            } else {
              assert.equal(call(), at, what);
              model.take(first, count);
              stats.at++;
            }
          } else {
            const expected = model.firstFit(count, alignPages, effLimit);
            if (expected === undefined) {
              const err = captureError(() => a.allocate(length, { align, limit }));
              assert.ok(err instanceof IovaNoSpaceError, `${what}: ${err.message}`);
              assert.equal(err.largestFree, model.largestFree(effLimit), what);
              stats.enospc++;
            } else {
              const iova = a.allocate(length, { align, limit });
              assert.equal(iova, pageAddr(expected), what);
              assert.equal(iova % pageAddr(alignPages), 0n, what);
              assert.ok(iova + pageAddr(count) <= effLimit, what);
              model.take(expected, count);
              stats.alloc++;
            }
          }
        } else if (op < 0.9) {
          const firsts = [...model.allocs.keys()];
          if (firsts.length === 0) continue;
          const first = firsts[int(firsts.length)]!;
          a.free(pageAddr(first), lengthOf(model.allocs.get(first)!));
          model.release(first);
          stats.free++;
        } else if (op < 0.995) {
          // A random free: right only if it names exactly one allocation.
          const first = int(PAGES);
          const count = 1 + int(4);
          if (model.checkFree(first, count, () => a.free(pageAddr(first), lengthOf(count)), what)) stats.free++;
          else stats.einval++;
        } else {
          const first = int(PAGES);
          const count = 1 + int(2);
          const call = () => a.reserve(pageAddr(first) + BigInt(int(2048)), pageAddr(first + count - 1) + 2048n + BigInt(int(2048)));
          if (model.checkReserve(first, count, call, what)) stats.reserve++;
          else stats.ebusy++;
        }

        assert.deepEqual(a.freeRanges(), model.freeRanges(), what);
        assert.deepEqual(a.allocations(), model.allocations(), what);
        if (step % 16 === 0) {
          assertConsistent(a);
          const limit = pageAddr(int(PAGES + 8)) + BigInt(int(Number(PAGE)));
          assert.equal(a.largestFree(limit), model.largestFree(limit), what);
        }
      }
      return stats;
    }

    for (const seed of [1, 2, 0xdecafbad, 20240601]) {
      it(`matches the model over 2500 random operations (seed ${seed})`, () => {
        const stats = run(seed, 2500);
        // Make sure every path was actually exercised.
        assert.ok(stats.alloc > 300 && stats.enospc > 100 && stats.free > 300, JSON.stringify(stats));
        assert.ok(stats.at > 10 && stats.eexist > 10 && stats.eaddrnotavail > 10, JSON.stringify(stats));
        assert.ok(stats.einval > 50 && stats.reserve + stats.ebusy > 3, JSON.stringify(stats));
      });
    }
  });
});

function captureError(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    return e;
  }
  assert.fail('expected an exception');
}
