/**
 * The library's side of the host lane's instruction counts
 * (instructions.ts): one metric's operations through the public API, a
 * given number of times, under the fake kernel, and nothing else;
 * callgrind counts what they executed.
 *
 *   node dist/bench/host/library-count.js SYSFS BDF map4k|link1024 N
 *
 * N: map + unmap pairs (map4k) or links of a 1,024-fragment list (link1024),
 * in rounds of at most 1,000 inside one function, as the lane's library side
 * runs them (so that V8 optimizes the loop as it does there).
 */
import { AddressSpace, DmaBuffer, PAGE_SIZE, PhysList } from '../../lib';
import { readStats } from './kernel-stats';
import { LINK_FRAGMENTS } from './plan';

function main([sysfs, bdf, metric, count]: string[]): void {
  const n = Number(count);
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`N must be a positive integer, not ${count}`);
  using space = AddressSpace.open({ backend: 'iommufd', sysfs });
  space.openDevice(bdf);
  if (metric === 'map4k') {
    using buffer = DmaBuffer.allocate(PAGE_SIZE);
    const round = (k: number): void => {
      for (let i = 0; i < k; i++) space.map(buffer).unmap();
    };
    for (let done = 0; done < n; done += 1000) round(Math.min(1000, n - done));
  } else if (metric === 'link1024') {
    const pieces = Array.from({ length: LINK_FRAGMENTS }, () => DmaBuffer.allocate(PAGE_SIZE));
    // Every other buffer, then the rest: no two neighbours in the list are neighbours in memory, wherever
    // the mmaps landed (valgrind places them one after the other, and the library would coalesce them).
    const order = [...pieces.filter((_, i) => i % 2 === 0), ...pieces.filter((_, i) => i % 2 === 1)];
    const list = PhysList.cpu(order.map((buffer) => ({ buffer })));
    using window = space.reserve(BigInt(LINK_FRAGMENTS) * PAGE_SIZE);
    const round = (k: number): void => {
      for (let i = 0; i < k; i++) window.link(list).unmap();
    };
    const before = readStats().calls.IOMMU_IOAS_MAP ?? 0;
    for (let done = 0; done < n; done += 1000) round(Math.min(1000, n - done));
    const maps = (readStats().calls.IOMMU_IOAS_MAP ?? 0) - before;
    if (maps !== n * LINK_FRAGMENTS)
      throw new Error(`link1024: ${maps} map calls for ${n} links, expected ${n * LINK_FRAGMENTS}: the fragments were coalesced`);
    pieces.forEach((b) => b.close());
  } else throw new RangeError(`no metric ${metric}: map4k or link1024`);
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`library-count: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
