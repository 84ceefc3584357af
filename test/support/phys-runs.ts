/**
 * The phys_lists the coalescing tests link (on the host under the fake
 * kernel, in the guest under strace), and their contiguous runs counted
 * independently of the library: a list should map with one ioctl per run.
 */
import { DmaBuffer, DmaPool, PAGE_SIZE } from '../../lib';
import type { CpuFragmentInput } from '../../lib';

const PAGE = Number(PAGE_SIZE);

/**
 * Runs of consecutive fragments where each starts where the one before ends:
 * in virtual memory, or for fragments mapped as a file, in the same buffer's
 * file. The library should map a list with exactly this many map ioctls.
 */
export function countRuns(parts: readonly CpuFragmentInput[]): number {
  let runs = 0;
  let end: string | undefined;
  for (const p of parts) {
    const offset = BigInt(p.offset ?? 0);
    const length = p.length === undefined ? p.buffer.length - offset : BigInt(p.length);
    const key = (at: bigint): string => (p.asFile ? `${p.buffer.handle}:${at}` : `va:${p.buffer.address + at}`);
    if (key(offset) !== end) runs++;
    end = key(offset + length);
  }
  return runs;
}

/** A list to link, by name. */
export interface RunCase {
  name: string;
  parts: CpuFragmentInput[];
}

/**
 * The lists: pool pieces in order (one run), with every 128th piece freed
 * (8 runs), in swapped pairs (no two in order), from a hugetlb pool when
 * `hugetlb`, memfd pieces mapped as a file whole and every other one, and
 * separate buffers. `close()` frees the memory.
 */
export function coalesceCases(hugetlb: boolean): { cases: RunCase[]; close(): void } {
  const pools: DmaPool[] = [];
  const pool = (pages: number, options: Parameters<typeof DmaPool.create>[1] = {}): DmaPool => {
    const p = DmaPool.create(pages * PAGE, options);
    pools.push(p);
    return p;
  };
  const pieces = (from: DmaPool, n: number): CpuFragmentInput[] => Array.from({ length: n }, () => from.allocate(PAGE));
  const holes = pieces(pool(1024), 1024) as ReturnType<DmaPool['allocate']>[];
  for (let i = 0; i < 1024; i += 128) holes[i].free();
  const swapped = pieces(pool(1024), 1024);
  const memfd = pieces(pool(256, { kind: 'memfd', asFile: true }), 256);
  const buffers = Array.from({ length: 64 }, () => DmaBuffer.allocate(PAGE));
  const cases: RunCase[] = [
    { name: 'in-order', parts: pieces(pool(1024), 1024) },
    { name: 'holes', parts: holes.filter((p) => !p.freed) },
    { name: 'swapped', parts: swapped.map((_, i) => swapped[i ^ 1]) },
    ...(hugetlb ? [{ name: 'hugetlb', parts: pieces(pool(1024, { kind: 'hugetlb' }), 1024) }] : []),
    { name: 'memfd-file', parts: memfd },
    { name: 'memfd-file-sparse', parts: memfd.filter((_, i) => i % 2 === 0) },
    { name: 'separate-buffers', parts: buffers.map((buffer) => ({ buffer })) },
  ];
  return {
    cases,
    close: () => {
      for (const p of pools) p.close();
      for (const b of buffers) b.close();
    },
  };
}

/** The path whose access() marks where a case's link begins or ends in a system call trace. */
export function markerPath(name: string, edge: 'begin' | 'end'): string {
  return `/node-vfio-marker/${name}/${edge}`;
}
