/**
 * Region's register accessors on the host, over a memfd (test/support/
 * memfd-region.ts): the typed-array fast path of a mapped region, its slow
 * path (bigint offsets, errors, pread/pwrite), and that both reach the same
 * bytes, little-endian, checked through the file itself.
 */
import assert from 'node:assert/strict';
import { Region } from '../../lib/region';
import { memfdRegion, MemfdRegion } from '../support/memfd-region';

type Width = 8 | 16 | 32 | 64;
const WIDTHS: Width[] = [8, 16, 32, 64];
const SIZE = 4096;

/** Region's accessor of `width` bits, values as bigints (the 8-32-bit ones take and give numbers). */
function accessor(
  region: Region,
  width: Width,
): { read(offset: number | bigint): bigint; write(offset: number | bigint, value: bigint): void } {
  const r = region as unknown as Record<string, (...args: unknown[]) => unknown>;
  return {
    read: (offset) => BigInt(r[`read${width}`].call(region, offset) as number | bigint),
    write: (offset, value) => void r[`write${width}`].call(region, offset, width === 64 ? value : Number(value)),
  };
}

/** The little-endian bytes of `value` in `width` bits. */
function bytesOf(value: bigint, width: Width): number[] {
  return Array.from({ length: width / 8 }, (_, i) => Number((value >> BigInt(8 * i)) & 0xffn));
}

/** A value that fills `width` bits with a pattern that differs in every byte. */
function patternOf(width: Width, seed: number): bigint {
  let v = 0n;
  for (let i = 0; i < width / 8; i++) v |= BigInt((seed * 37 + i * 71 + 0x11) & 0xff) << BigInt(8 * i);
  return v;
}

function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

for (const kind of ['mapped', 'pread/pwrite'] as const) {
  describe(`Region accessors, ${kind}`, () => {
    let t: MemfdRegion;
    beforeEach(() => {
      t = memfdRegion({ size: SIZE, mappable: kind === 'mapped' });
    });
    afterEach(() => t.dispose());

    it(kind === 'mapped' ? 'is mapped, with the mapping as its buffer' : 'is not mapped, and has no buffer', () => {
      assert.equal(t.region.mapped, kind === 'mapped');
      if (kind === 'mapped') assert.equal(t.region.buffer.byteLength, SIZE);
      else assert.throws(() => t.region.buffer, { name: 'VfioStateError', code: 'ERR_VFIO_NOT_MAPPABLE' });
    });

    for (const width of WIDTHS) {
      it(`write${width}/read${width} round-trip, little-endian in the file, number and bigint offsets alike`, () => {
        const a = accessor(t.region, width);
        const step = width / 8;
        for (const [n, offset] of [0, step, 0x100, SIZE - step].entries()) {
          const value = patternOf(width, n + width);
          a.write(offset, value);
          assert.deepEqual([...t.peek(offset, step)], bytesOf(value, width), `bytes at ${offset}`);
          assert.equal(a.read(offset), value);
          assert.equal(a.read(BigInt(offset)), value);
          const next = patternOf(width, n + width + 100);
          a.write(BigInt(offset), next);
          assert.equal(a.read(offset), next);
          t.poke(offset, bytesOf(value, width));
          assert.equal(a.read(offset), value, 'bytes written to the file are read back');
        }
      });

      it(`write${width} stores its width and nothing around it`, () => {
        const a = accessor(t.region, width);
        const at = 0x200;
        t.poke(at - 8, new Array(24).fill(0xaa));
        a.write(at, (1n << BigInt(width)) - 1n);
        const seen = [...t.peek(at - 8, 24)];
        assert.deepEqual(seen, [...new Array(8).fill(0xaa), ...new Array(width / 8).fill(0xff), ...new Array(16 - width / 8).fill(0xaa)]);
      });

      it(`read${width}/write${width} take the largest and smallest values and give unsigned ones`, () => {
        const a = accessor(t.region, width);
        const max = (1n << BigInt(width)) - 1n;
        a.write(8, max);
        assert.equal(a.read(8), max);
        a.write(8, 0n);
        assert.equal(a.read(8), 0n);
        a.write(8, 1n << BigInt(width - 1));
        assert.equal(a.read(8), 1n << BigInt(width - 1), 'the top bit reads as a positive value');
      });

      it(`read${width}/write${width} refuse unaligned, out-of-range and non-integer offsets with a RangeError, before any access`, () => {
        const a = accessor(t.region, width);
        const step = width / 8;
        const bad: [number | bigint, RegExp][] = [
          [SIZE, /outside the 4096-byte region 0/],
          [SIZE - step + (step > 1 ? step / 2 : 1), step > 1 ? /not aligned/ : /outside/],
          [BigInt(SIZE), /outside the 4096-byte region 0/],
          [2 ** 32, /outside/],
          [2 ** 40, /outside/],
          [Number.MAX_SAFE_INTEGER + 1, /non-negative safe integer/],
          [-step, /non-negative safe integer/],
          [-0.5, /non-negative safe integer/],
          [1.5, /non-negative safe integer/],
          [NaN, /non-negative safe integer/],
          [Infinity, /non-negative safe integer/],
          [-1n, /must be in \[0, 2\^64\)/],
          [1n << 64n, /must be in \[0, 2\^64\)/],
        ];
        if (step > 1) bad.push([1, /offset 0x1 is not aligned to \d bytes/], [BigInt(step + 1), /is not aligned/]);
        const before = { pread: t.calls.pread.length, pwrite: t.calls.pwrite.length };
        for (const [offset, message] of bad) {
          assert.throws(() => a.read(offset), { name: 'RangeError', message }, `read at ${offset}`);
          assert.throws(() => a.write(offset, 1n), { name: 'RangeError', message }, `write at ${offset}`);
        }
        assert.deepEqual({ pread: t.calls.pread.length, pwrite: t.calls.pwrite.length }, before, 'no system call was made');
        assert.ok(
          t.peek(0, SIZE).every((b) => b === 0),
          'no byte was written',
        );
      });

      it(`read${width}/write${width} refuse offsets that are neither numbers nor bigints with a TypeError`, () => {
        const r = t.region as unknown as Record<string, (...args: unknown[]) => unknown>;
        const value = width === 64 ? 1n : 1;
        for (const offset of ['8', null, undefined, { valueOf: () => 8 }, [8]]) {
          assert.throws(() => r[`read${width}`].call(t.region, offset), {
            name: 'TypeError',
            message: /^offset must be a bigint or a number/,
          });
          assert.throws(() => r[`write${width}`].call(t.region, offset, value), {
            name: 'TypeError',
            message: /^offset must be a bigint or a number/,
          });
        }
      });
    }

    it('write8/16/32 refuse values that do not fit (RangeError) or are not numbers (TypeError), and store nothing', () => {
      const cases: [Width, unknown, string][] = [
        [8, 256, 'RangeError'],
        [8, -1, 'RangeError'],
        [8, 1.5, 'RangeError'],
        [8, NaN, 'RangeError'],
        [16, 0x10000, 'RangeError'],
        [16, -0.5, 'RangeError'],
        [32, 2 ** 32, 'RangeError'],
        [32, -1, 'RangeError'],
        [32, Infinity, 'RangeError'],
        [8, '1', 'TypeError'],
        [16, 1n, 'TypeError'],
        [32, null, 'TypeError'],
        [32, { valueOf: () => 1 }, 'TypeError'],
      ];
      const r = t.region as unknown as Record<string, (offset: number, value: unknown) => void>;
      for (const [width, value, name] of cases) {
        assert.throws(() => r[`write${width}`].call(t.region, 0x40, value), { name }, `write${width}(0x40, ${String(value)})`);
      }
      assert.ok(
        t.peek(0, SIZE).every((b) => b === 0),
        'no byte was written',
      );
    });

    it('write64 refuses bigints outside 0..2^64-1 (RangeError) and what is not a number or bigint (TypeError); takes safe integers', () => {
      assert.throws(() => t.region.write64(0x40, -1n), { name: 'RangeError', message: /value must be in \[0, 2\^64\)/ });
      assert.throws(() => t.region.write64(0x40, 1n << 64n), { name: 'RangeError' });
      assert.throws(() => t.region.write64(0x40, '1' as unknown as bigint), {
        name: 'TypeError',
        message: /^value must be a bigint or a number/,
      });
      assert.ok(
        t.peek(0, SIZE).every((b) => b === 0),
        'no byte was written',
      );
      t.region.write64(0x40, 0x1234 as unknown as bigint);
      assert.equal(t.region.read64(0x40), 0x1234n);
    });

    it('agrees with a little-endian model over 20,000 random accesses of every width', () => {
      const model = new DataView(new ArrayBuffer(SIZE));
      const next = xorshift(kind === 'mapped' ? 7 : 11);
      const n = kind === 'mapped' ? 20_000 : 2_000;
      for (let k = 0; k < n; k++) {
        const width = WIDTHS[next() & 3];
        const step = width / 8;
        const offset = (next() % (SIZE / step)) * step;
        const at = next() & 1 ? offset : BigInt(offset);
        const a = accessor(t.region, width);
        if (next() & 1) {
          const value = width === 64 ? (BigInt(next()) << 32n) | BigInt(next()) : BigInt(next() % 2 ** width);
          a.write(at, value);
          if (width === 64) model.setBigUint64(offset, value, true);
          else if (width === 32) model.setUint32(offset, Number(value), true);
          else if (width === 16) model.setUint16(offset, Number(value), true);
          else model.setUint8(offset, Number(value));
        } else {
          const want =
            width === 64
              ? model.getBigUint64(offset, true)
              : BigInt(
                  width === 32 ? model.getUint32(offset, true) : width === 16 ? model.getUint16(offset, true) : model.getUint8(offset),
                );
          assert.equal(a.read(at), want, `read${width}(${offset}) at step ${k}`);
        }
      }
      assert.deepEqual(t.peek(0, SIZE), new Uint8Array(model.buffer));
    });

    if (kind === 'mapped') {
      it('goes through the mapping: no pread or pwrite for any access', () => {
        for (const width of WIDTHS) {
          const a = accessor(t.region, width);
          a.write(0x80, 1n);
          a.read(0x80);
          a.write(0x80n, 2n);
          a.read(0x80n);
        }
        assert.deepEqual(t.calls, { mmap: [true], pread: [], pwrite: [] });
      });
    } else {
      it("makes exactly one pread or pwrite of the access's width per access, at the region's file offset", () => {
        for (const width of WIDTHS) {
          const a = accessor(t.region, width);
          const before = { pread: t.calls.pread.length, pwrite: t.calls.pwrite.length };
          a.write(0x80, 3n);
          a.read(0x80);
          a.read(0x88n);
          assert.deepEqual(t.calls.pwrite.slice(before.pwrite), [`0x80+${width / 8}`]);
          assert.deepEqual(t.calls.pread.slice(before.pread), [`0x80+${width / 8}`, `0x88+${width / 8}`]);
        }
        assert.deepEqual(t.calls.mmap, []);
      });
    }
  });
}

describe('Region accessors, a read-only mapped region', () => {
  let t: MemfdRegion;
  beforeEach(() => {
    t = memfdRegion({ size: SIZE, writable: false });
  });
  afterEach(() => t.dispose());

  it('reads through its mapping, asked for read-only, and writes through pwrite, never through the mapping', () => {
    assert.deepEqual(t.calls.mmap, [false]);
    t.poke(0x10, bytesOf(0x1122334455667788n, 64));
    assert.equal(t.region.read64(0x10), 0x1122334455667788n);
    assert.equal(t.region.read32(0x14), 0x11223344);
    assert.deepEqual(t.calls.pread, []);
    t.region.write32(0x20, 0xdeadbeef);
    t.region.write64(0x28, 5n);
    t.region.write8(0x30, 1);
    assert.deepEqual(t.calls.pwrite, ['0x20+4', '0x28+8', '0x30+1']);
  });
});

describe('Region accessors, another region index', () => {
  it('reads and writes region 2 at its own file offset (index << 40)', () => {
    const t = memfdRegion({ size: SIZE, index: 2, mappable: false });
    try {
      t.region.write16(6, 0xbeef);
      assert.equal(t.region.read16(6), 0xbeef);
      assert.deepEqual([...t.peek(6, 2)], [0xef, 0xbe]);
      assert.deepEqual([t.calls.pwrite, t.calls.pread], [['0x20000000006+2'], ['0x20000000006+2']]);
    } finally {
      t.dispose();
    }
  });
});
