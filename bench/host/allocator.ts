/**
 * Micro-benchmark of the IOVA allocator: CPU nanoseconds per allocate + free
 * with 0, 1,000 and 100,000 other live allocations, through the bigint API
 * (`allocate`/`free`) and the number API (`allocFast`/`freeFast`).
 *
 *   node dist/bench/host/allocator.js [--rounds N] [--baseline FILE.js]
 *
 * Workloads, each over a 48-bit space with page 0 reserved:
 *  - packed:     the live allocations are one page each, made in address
 *                order; the loop allocates and frees one page;
 *  - fragmented: twice as many pages were allocated and every other one freed
 *                in random order (so free space is as many one-page holes);
 *                the loop allocates and frees one page;
 *  - 64 pages:   fragmented as above, the loop allocates and frees 64 pages
 *                (too big for the number API's cache: the tree's path);
 *  - churn:      each step frees a random live allocation and allocates one of
 *                1 to 4 pages in its place (the live count stays put).
 *
 * Each figure is the median of `--rounds` rounds (default 5) of CPU time
 * (process.cpuUsage, so that other load on the machine counts less), each
 * round long enough to take about 0.1 s, after a warm-up round; the fastest
 * round follows in parentheses (on a shared machine, the closest to what the
 * code costs on its own).
 * `--baseline` also times the bigint API of another build of
 * lib/iova-allocator.js (e.g. the previous commit's), for comparison.
 */
import * as path from 'node:path';
import { IovaAllocator, type IovaRange } from '../../lib/iova-allocator';

const PAGE = 4096;
const LIVE_COUNTS = [0, 1000, 100_000];
const SPACE = { start: 0n, last: (1n << 48n) - 1n };
const PAGE_ZERO = { start: 0n, last: BigInt(PAGE) - 1n };

/** The bigint API, as every build of the allocator has it. */
interface BigintAllocator {
  allocate(length: bigint): bigint;
  free(iova: bigint, length: bigint): void;
}

/** The constructor, as every build of the allocator has it. */
type AllocatorClass = new (ranges: IovaRange[], options: { reserved: IovaRange[] }) => BigintAllocator;

/**
 * One API under test. Each loop runs `n` steps in itself and calls the
 * allocator directly, so that what is timed is the allocator and not calls
 * through closures.
 */
interface Subject<A, T> {
  name: string;
  make(): A;
  /** Allocates `pages` pages. */
  alloc(a: A, pages: number): T;
  free(a: A, iova: T, pages: number): void;
  /** `n` times: allocate `pages` pages and free them. */
  allocFree(a: A, pages: number, n: number): void;
  /** `n` steps of churn over `iovas`/`sizes`, random indices from `r`. */
  churn(a: A, iovas: T[], sizes: Int32Array, r: Uint32Array, n: number): void;
}

function bigintSubject(name: string, Ctor: AllocatorClass): Subject<BigintAllocator, bigint> {
  const bytes = Array.from({ length: 65 }, (_, i) => BigInt(i * PAGE));
  return {
    name,
    make: () => new Ctor([SPACE], { reserved: [PAGE_ZERO] }),
    alloc: (a, pages) => a.allocate(bytes[pages]!),
    free: (a, iova, pages) => a.free(iova, bytes[pages]!),
    allocFree(a, pages, n) {
      const length = bytes[pages]!;
      for (let i = 0; i < n; i++) a.free(a.allocate(length), length);
    },
    churn(a, iovas, sizes, r, n) {
      for (let i = 0; i < n; i++) {
        const k = r[i & 0xffff]! % iovas.length;
        a.free(iovas[k]!, bytes[sizes[k]!]!);
        sizes[k] = 1 + (r[(i + 1) & 0xffff]! & 3);
        iovas[k] = a.allocate(bytes[sizes[k]!]!);
      }
    },
  };
}

const fastSubject: Subject<IovaAllocator, number> = {
  name: 'number API (allocFast/freeFast)',
  make: () => new IovaAllocator([SPACE], { reserved: [PAGE_ZERO] }),
  alloc: (a, pages) => a.allocFast(pages * PAGE),
  free: (a, iova, pages) => a.freeFast(iova, pages * PAGE),
  allocFree(a, pages, n) {
    const size = pages * PAGE;
    for (let i = 0; i < n; i++) a.freeFast(a.allocFast(size), size); // -1 (no space) would throw EINVAL here
  },
  churn(a, iovas, sizes, r, n) {
    for (let i = 0; i < n; i++) {
      const k = r[i & 0xffff]! % iovas.length;
      a.freeFast(iovas[k]!, sizes[k]! * PAGE);
      sizes[k] = 1 + (r[(i + 1) & 0xffff]! & 3);
      iovas[k] = a.allocFast(sizes[k]! * PAGE);
    }
  },
};

/** xorshift32 from a fixed seed: the same shuffles for every API. */
function randoms(count: number, seed = 0x9e3779b9): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed | 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 0;
  }
  return out;
}

/** An allocator holding `live` one-page allocations as the workload wants them, and their IOVAs. */
function setup<A, T>(api: Subject<A, T>, live: number, fragmented: boolean): { a: A; iovas: T[] } {
  const a = api.make();
  if (!fragmented) return { a, iovas: Array.from({ length: live }, () => api.alloc(a, 1)) };
  const all = Array.from({ length: 2 * live }, () => api.alloc(a, 1));
  const order = Array.from({ length: live }, (_, i) => 2 * i + 1);
  const r = randoms(live, 12345);
  for (let i = live - 1; i > 0; i--) {
    const j = r[i]! % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (const i of order) api.free(a, all[i]!, 1);
  return { a, iovas: all.filter((_, i) => i % 2 === 0) };
}

/** CPU nanoseconds per step of `run(n)` (n steps): the median and the fastest of rounds of about 0.1 s. */
function time(run: (n: number) => void, rounds: number): { median: number; min: number } {
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  };
  let n = 1000;
  for (;;) {
    const t0 = cpu();
    run(n);
    const took = cpu() - t0;
    if (took > 20e6) {
      n = Math.max(1000, Math.ceil((n * 100e6) / took));
      break;
    }
    n *= 4;
  }
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = cpu();
    run(n);
    samples.push((cpu() - t0) / n);
  }
  samples.sort((x, y) => x - y);
  return { median: samples[samples.length >> 1]!, min: samples[0]! };
}

function workloads<A, T>(api: Subject<A, T>, live: number, rounds: number): Record<string, { median: number; min: number }> {
  const out: Record<string, { median: number; min: number }> = {};
  const packed = setup(api, live, false).a;
  out['packed'] = time((n) => api.allocFree(packed, 1, n), rounds);
  const fragmented = setup(api, live, true).a;
  out['fragmented'] = time((n) => api.allocFree(fragmented, 1, n), rounds);
  out['64 pages'] = time((n) => api.allocFree(fragmented, 64, n), rounds);
  if (live > 0) {
    const { a, iovas } = setup(api, live, false);
    const sizes = new Int32Array(live).fill(1);
    const r = randoms(1 << 16);
    out['churn'] = time((n) => api.churn(a, iovas, sizes, r, n), rounds);
  }
  return out;
}

function main(argv: string[]): void {
  let rounds = 5;
  let baseline: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else if (argv[i] === '--baseline') baseline = path.resolve(argv[++i]!);
    else throw new RangeError(`usage: allocator.js [--rounds N] [--baseline FILE.js], not ${argv[i]}`);
  }
  if (!(rounds >= 1)) throw new RangeError('--rounds must be a number >= 1');
  const apis: Subject<unknown, unknown>[] = [];
  if (baseline !== undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const old = require(baseline) as { IovaAllocator: AllocatorClass };
    apis.push(
      bigintSubject(`baseline bigint API (${path.basename(path.dirname(baseline))})`, old.IovaAllocator) as Subject<unknown, unknown>,
    );
  }
  apis.push(
    bigintSubject('bigint API (allocate/free)', IovaAllocator) as Subject<unknown, unknown>,
    fastSubject as Subject<unknown, unknown>,
  );

  console.log(`IOVA allocator: CPU ns per allocate + free, median of ${rounds} rounds (fastest round)`);
  console.log(
    ['api', 'live', 'packed', 'fragmented', '64 pages', 'churn']
      .map((h, i) => (i === 0 ? h.padEnd(34) : h.padStart(i === 1 ? 7 : 22)))
      .join(''),
  );
  for (const api of apis) {
    for (const live of LIVE_COUNTS) {
      const w = workloads(api, live, rounds);
      const cell = (k: string) => (w[k] === undefined ? '-' : `${w[k].median.toFixed(1)} (${w[k].min.toFixed(1)})`).padStart(22);
      console.log(api.name.padEnd(34) + String(live).padStart(7) + ['packed', 'fragmented', '64 pages', 'churn'].map(cell).join(''));
    }
  }
}

main(process.argv.slice(2));
