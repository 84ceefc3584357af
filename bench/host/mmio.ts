/**
 * Micro-benchmark of register access through the public Region API on an
 * mmap'd region: read8..read64 and write8..write64 in hot loops, in ns per
 * access, next to the same loop over a plain typed array of the same width
 * on the same memory (the floor: what JavaScript can do at all). The region
 * is a memfd mapped by the addon (test/support/memfd-region.ts), the same
 * NativeMemory class a device's BAR mmap is: the code path through Region
 * is the one a BAR takes; only the memory's own latency differs (device
 * registers are uncached, ~100s of ns per access on real hardware).
 *
 *   node dist/bench/host/mmio.js [--iterations N] [--rounds N] [--json]
 *
 * Each loop is its own function (compiled from a one-line body), so the
 * optimizer sees one width and one receiver at each site, as in a driver.
 * A row is the median of the rounds (min in parentheses), in CPU time of
 * the process (a shared host's other load does not count), after warm-up
 * runs that get every loop optimized. The "(value unused)" rows have no
 * typed-array row: V8 drops a plain typed-array load whose value is unused,
 * where Region keeps the read (see lib/region.ts). The "(bigint offset)"
 * rows show the slow path: one native call per access.
 */
import { parseArgs } from 'node:util';
import { memfdRegion } from '../../test/support/memfd-region';

type Width = 8 | 16 | 32 | 64;

/** One measured loop: `body` runs n times with `i` the iteration. */
interface Case {
  /** e.g. 'read32', 'read32 (value unused)', 'write64'. */
  name: string;
  width: Width;
  /** true: through Region; false: the plain typed-array loop it is compared with. */
  api: boolean;
  body: string;
}

/** Register offsets the loops cycle through: eight, 24 bytes apart, aligned to every width. */
const OFFSETS = [0x00, 0x18, 0x30, 0x48, 0x60, 0x78, 0x90, 0xa8];

function cases(): Case[] {
  const out: Case[] = [];
  for (const width of [8, 16, 32, 64] as const) {
    const mask = width === 32 ? '>>> 0' : width === 64 ? '' : `& 0x${((1 << width) - 1).toString(16)}`;
    const value = width === 64 ? 'vals[i & 7]' : `(i * 2654435761) ${mask}`;
    const use = width === 64 ? 'x = ' : 'x ^= ';
    out.push(
      { name: `read${width}`, width, api: true, body: `${use}r.read${width}(o[i & 7]);` },
      { name: `read${width}`, width, api: false, body: `${use}v[k[i & 7]];` },
      { name: `read${width} (value unused)`, width, api: true, body: `r.read${width}(o[i & 7]);` },
      { name: `write${width}`, width, api: true, body: `r.write${width}(o[i & 7], ${value});` },
      { name: `write${width}`, width, api: false, body: `v[k[i & 7]] = ${value};` },
    );
  }
  // The slow path for scale: a bigint offset takes the native call each access.
  out.push(
    { name: 'read32 (bigint offset)', width: 32, api: true, body: 'x ^= r.read32(ob[i & 7]);' },
    { name: 'write32 (bigint offset)', width: 32, api: true, body: 'r.write32(ob[i & 7], i >>> 0);' },
  );
  return out;
}

type Loop = (n: number) => unknown;

/** A fresh function for the case, over the region and a typed array of its width on the same memory. */
function compile(c: Case, region: unknown, buffer: ArrayBuffer): Loop {
  const View = { 8: Uint8Array, 16: Uint16Array, 32: Uint32Array, 64: BigUint64Array }[c.width];
  const o = Int32Array.from(OFFSETS);
  const k = Int32Array.from(OFFSETS, (off) => off / (c.width / 8));
  const vals = OFFSETS.map((off) => 0x0123456789abcdefn ^ BigInt(off));
  const ob = OFFSETS.map(BigInt);
  const init = c.width === 64 ? '0n' : '0';
  const make = new Function(
    'r',
    'v',
    'o',
    'k',
    'vals',
    'ob',
    `return function loop(n) { let x = ${init}; for (let i = 0; i < n; i++) { ${c.body} } return x; };`,
  );
  return make(region, new View(buffer), o, k, vals, ob) as Loop;
}

/** CPU time of the process per iteration, in ns: on a shared host, time spent descheduled does not count. */
function nsPerOp(loop: Loop, n: number): number {
  const t0 = process.cpuUsage();
  loop(n);
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / n;
}

/** One row of the result. */
export interface MmioRow {
  name: string;
  width: Width;
  /** Through Region: median and min ns per access over the rounds. */
  api: { median: number; min: number };
  /** The plain typed-array loop, where the row has one. */
  baseline?: { median: number; min: number };
}

function summary(samples: number[]): { median: number; min: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0] };
}

/** Runs every case `rounds` times, `iterations` accesses each, and returns the rows. */
export function runMmioBench(iterations: number, rounds: number): MmioRow[] {
  const target = memfdRegion({ size: 4096 });
  try {
    const { region } = target;
    const all = cases().map((c) => ({ c, loop: compile(c, region, region.buffer), ns: [] as number[] }));
    for (let w = 0; w < 3; w++) for (const x of all) x.loop(Math.min(iterations, 200_000));
    for (let r = 0; r < rounds; r++) for (const x of all) x.ns.push(nsPerOp(x.loop, iterations));
    const rows: MmioRow[] = [];
    for (const x of all.filter((a) => a.c.api)) {
      const base = all.find((b) => !b.c.api && b.c.name === x.c.name);
      rows.push({ name: x.c.name, width: x.c.width, api: summary(x.ns), baseline: base && summary(base.ns) });
    }
    return rows;
  } finally {
    target.dispose();
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      iterations: { type: 'string', default: '5000000' },
      rounds: { type: 'string', default: '7' },
      json: { type: 'boolean', default: false },
    },
  });
  const iterations = Number(values.iterations);
  const rounds = Number(values.rounds);
  if (!Number.isSafeInteger(iterations) || iterations < 1)
    throw new RangeError(`--iterations must be a positive integer, not ${values.iterations}`);
  if (!Number.isSafeInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer, not ${values.rounds}`);
  const rows = runMmioBench(iterations, rounds);
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ node: process.version, iterations, rounds, rows })}\n`);
    return;
  }
  const fmt = (s?: { median: number; min: number }): string => (s ? `${s.median.toFixed(2)} (${s.min.toFixed(2)})` : '-');
  process.stdout.write(
    `Region register access, CPU ns per access: median (min) of ${rounds} rounds of ${iterations}; node ${process.version}\n`,
  );
  process.stdout.write(`${'access'.padEnd(24)}${'Region'.padStart(16)}${'typed array'.padStart(16)}\n`);
  for (const row of rows) process.stdout.write(`${row.name.padEnd(24)}${fmt(row.api).padStart(16)}${fmt(row.baseline).padStart(16)}\n`);
}

if (require.main === module) main();
