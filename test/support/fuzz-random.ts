/**
 * The fuzz's randomness: a seeded generator (every run is reproducible from
 * its seed) and the hostile values it draws from: numbers and bigints at and
 * around the edges the library checks (0, -1, NaN, ±Infinity, fractions,
 * 2^32, 2^53, 2^64, page multiples and their neighbours), strings, and
 * values of every other JavaScript type.
 */

/** A seeded generator (mulberry32): the same seed gives the same sequence. */
export class Rng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** A uint32. */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** true with probability p. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

/** A child seed derived from a run's seed and a label (a backend, a child number). */
export function deriveSeed(seed: number, label: string): number {
  let h = seed >>> 0 || 1;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x9e3779b1) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const PAGE = 4096;

/** Numbers a correct call could take: small counts, page multiples, sizes of the test devices' regions and buffers. */
const PLAUSIBLE = [0, 1, 2, 3, 4, 8, 16, 64, 511, 512, 4095, 4096, 8192, 12288, 65536, 0x80, 0x1000, 0x2000, 2 << 20, 1 << 28];

/** Numbers no argument check may let through unnoticed. */
const HOSTILE = [
  -1,
  -4096,
  -0,
  0.5,
  1.5,
  4096.5,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 32 - 4,
  2 ** 32,
  2 ** 32 + 4096,
  2 ** 52,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  2 ** 64,
  1e300,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  -(2 ** 53),
];

const BIG_HOSTILE = [
  -1n,
  -4096n,
  2n ** 32n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n,
  2n ** 64n - 4096n,
  2n ** 64n - 1n,
  2n ** 64n,
  2n ** 100n,
  -(2n ** 64n),
];

/** Strings: backend names, device paths, PCI addresses, event names, and junk. */
const STRINGS = [
  '',
  'auto',
  'iommufd',
  'type1',
  'v1',
  'v2',
  'anonymous',
  'hugetlb',
  'memfd',
  'polled',
  'interrupt',
  'unmapped',
  'revoked',
  'reset',
  'close',
  'error',
  '/dev/iommu',
  '/dev/vfio/vfio',
  '/nonexistent/node',
  '/sys',
  '/tmp',
  '0000:00:03.0',
  '0000:00:04.0',
  '0000:00:05.0',
  '00:03.0',
  '0000:00:1f.0',
  'ffff:ff:1f.7',
  '0000:00:03.0/../../..',
  'x'.repeat(300),
  '\u0000',
  '__proto__',
  'constructor',
  'toString',
  '4096',
  '0x1000',
  '-1',
  'NaN',
];

/** Numbers drawn from the plausible and the hostile, and now and then a random 32-bit one. */
export function randomNumber(rng: Rng): number {
  const r = rng.int(10);
  if (r < 4) return rng.pick(PLAUSIBLE);
  if (r < 5) return rng.int(17) * PAGE;
  if (r < 6) return rng.u32();
  if (r < 7) return rng.pick(PLAUSIBLE) + rng.pick([-1, 1, -4, 4, 8]);
  return rng.pick(HOSTILE);
}

/** A bigint: a number's value where it has one, or a hostile bigint. */
export function randomBigInt(rng: Rng): bigint {
  if (rng.chance(0.3)) return rng.pick(BIG_HOSTILE);
  const n = randomNumber(rng);
  return Number.isSafeInteger(n) ? BigInt(n) : rng.pick(BIG_HOSTILE);
}

export function randomString(rng: Rng): string {
  return rng.pick(STRINGS);
}

/** A value of any type: primitives, odd objects, typed arrays, functions, symbols, promises. */
export function randomPrimitiveOrOdd(rng: Rng): unknown {
  switch (rng.int(22)) {
    case 0:
      return undefined;
    case 1:
      return null;
    case 2:
      return rng.chance(0.5);
    case 3:
    case 4:
      return randomNumber(rng);
    case 5:
    case 6:
      return randomBigInt(rng);
    case 7:
      return randomString(rng);
    case 8:
      return Symbol('fuzz');
    case 9:
      return {};
    case 10:
      return [];
    case 11:
      return [randomNumber(rng), randomNumber(rng)];
    case 12:
      return new Uint8Array(rng.pick([0, 1, 4, 8, 4096]));
    case 13:
      return new Float64Array(rng.pick([0, 1, 3]));
    case 14:
      return new Uint32Array(rng.pick([0, 1, 16]));
    case 15:
      return new ArrayBuffer(rng.pick([0, 8, 4096]));
    case 16:
      return () => undefined;
    case 17:
      return Promise.resolve(1);
    case 18:
      return new Date(0);
    case 19:
      return { valueOf: () => 4096 };
    case 20:
      return Object.create(null) as object;
    default:
      return new Map();
  }
}
