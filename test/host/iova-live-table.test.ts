import assert from 'node:assert/strict';
import { IOVA_CACHE_DEPTH, IOVA_CACHE_MAX_PAGES, IovaLiveTable } from '../../lib/iova-live-table';

describe('IovaLiveTable (live allocations and parked ranges)', () => {
  it('finds, adds and removes entries while growing from 16 slots to hold 5000', () => {
    const t = new IovaLiveTable(16);
    const page = (i: number) => i * 7919 + (i % 3) * 2 ** 40; // spread, some above 2^32
    for (let i = 0; i < 5000; i++) t.add(page(i), 1 + (i % 5));
    assert.equal(t.count, 5000);
    for (let i = 0; i < 5000; i++) assert.equal(t.sizeAt(t.find(page(i))), 1 + (i % 5), `entry ${i}`);
    for (let i = 0; i < 5000; i += 2) t.removeAt(t.find(page(i)));
    assert.equal(t.count, 2500);
    for (let i = 0; i < 5000; i++) assert.equal(t.find(page(i)) >= 0, i % 2 === 1, `entry ${i}`);
    assert.equal(t.find(-1), -1); // never an empty slot's or a tombstone's key
    assert.equal(t.find(-2), -1);
    assert.equal(t.find(NaN), -1);
    assert.deepEqual(
      t.sorted().map(([p]) => p),
      Array.from({ length: 2500 }, (_, k) => page(2 * k + 1)).sort((x, y) => x - y),
    );
  });

  it('parks and unparks by exact size, newest first, and a parked entry is not live', () => {
    const t = new IovaLiveTable();
    for (let p = 1; p <= 10; p++) t.add(p * 100, 1 + (p % 2));
    assert.ok(t.park(t.find(300), 300, 2));
    assert.ok(t.park(t.find(500), 500, 2));
    assert.ok(t.park(t.find(200), 200, 1));
    assert.equal(t.count, 7);
    assert.equal(t.parkedPages, 5);
    assert.ok(t.sizeAt(t.find(300)) < 0); // a free of it would be a double free
    assert.deepEqual(
      t.sorted().map(([p]) => p),
      [100, 400, 600, 700, 800, 900, 1000],
    );
    assert.deepEqual(t.findOverlap(300, 301), undefined); // parked: not live
    assert.equal(t.unpark(3, 1, Infinity), -1); // no such size parked
    assert.equal(t.unpark(2, 1, 400), 300); // 500 ends above the limit
    assert.equal(t.unpark(2, 8, Infinity), -1); // 500 is not a multiple of 8 pages
    assert.equal(t.unpark(2, 4, Infinity), 500);
    assert.equal(t.unpark(2, 1, Infinity), -1);
    assert.equal(t.sizeAt(t.find(500)), 2);
    assert.equal(t.count, 9);
    const drained: [number, number][] = [];
    t.drain((p, s) => drained.push([p, s]));
    assert.deepEqual(drained, [[200, 1]]);
    assert.equal(t.find(200), -1);
    assert.equal(t.parkedPages, 0);
    assert.equal(t.count, 9);
  });

  it('refuses to park a size that is not cached, or on a full stack', () => {
    const t = new IovaLiveTable();
    t.add(1, IOVA_CACHE_MAX_PAGES + 1);
    assert.equal(t.park(t.find(1), 1, IOVA_CACHE_MAX_PAGES + 1), false);
    assert.equal(t.sizeAt(t.find(1)), IOVA_CACHE_MAX_PAGES + 1);
    for (let i = 0; i <= IOVA_CACHE_DEPTH; i++) t.add(1000 + i, 1);
    for (let i = 0; i < IOVA_CACHE_DEPTH; i++) assert.ok(t.park(t.find(1000 + i), 1000 + i, 1));
    assert.equal(t.park(t.find(1000 + IOVA_CACHE_DEPTH), 1000 + IOVA_CACHE_DEPTH, 1), false);
    assert.equal(t.parkedPages, IOVA_CACHE_DEPTH);
  });

  it('keeps parked entries reachable through rebuilds that move them', () => {
    // Thousands of short-lived keys leave tombstones: the table is rebuilt
    // many times while the same 96 ranges stay parked.
    const t = new IovaLiveTable(64);
    const parked = new Set<number>();
    for (let i = 0; i < 96; i++) {
      const p = 10 ** 6 + i * 3;
      t.add(p, 1 + (i % 3));
      assert.ok(t.park(t.find(p), p, 1 + (i % 3)));
      parked.add(p);
    }
    for (let i = 0; i < 20_000; i++) {
      t.add(i, 4);
      if (i >= 20) t.removeAt(t.find(i - 20));
    }
    assert.equal(t.count, 20);
    for (const p of parked) assert.ok(t.sizeAt(t.find(p)) < 0, `${p} still parked`);
    // Every parked range comes back exactly once, by its size.
    const back = new Set<number>();
    for (let size = 1; size <= 3; size++) {
      for (let p = t.unpark(size, 1, Infinity); p >= 0; p = t.unpark(size, 1, Infinity)) {
        assert.ok(parked.has(p) && !back.has(p) && ((p - 10 ** 6) / 3) % 3 === size - 1, `${p} (size ${size})`);
        assert.equal(t.sizeAt(t.find(p)), size);
        back.add(p);
      }
    }
    assert.equal(back.size, 96);
    assert.equal(t.parkedPages, 0);
    assert.equal(t.count, 116);
  });
});
