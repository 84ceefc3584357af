/**
 * A mapped Region larger than 4 GiB: its typed-array views cover the first
 * 4 GiB (indexes come from `>>>`, 32 bits), and accesses past them go to
 * the mapping's native accessors, one call each. The mapping here is a
 * stand-in for the addon's NativeMemory over a lazily allocated ArrayBuffer
 * (untouched pages cost nothing), whose native accessors a DataView plays
 * and counts.
 */
import assert from 'node:assert/strict';
import { NativeDevice, NativeMemory } from '../../lib/native';
import { Region, regionInfo, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from '../../lib/region';

const GiB = 2 ** 30;
const SIZE = 4 * GiB + 64 * 1024;

/** What Region uses of a NativeMemory. */
type Used = Pick<
  NativeMemory,
  'arrayBuffer' | 'read8' | 'read16' | 'read32' | 'read64' | 'write8' | 'write16' | 'write32' | 'write64' | 'close'
>;

/** A NativeMemory stand-in over `buffer`: its accessors record `name@offset` and act through a DataView. */
function standIn(buffer: ArrayBuffer, calls: string[]): Used {
  const dv = new DataView(buffer);
  const at = (name: string, offset: number | bigint): number => {
    calls.push(`${name}@0x${offset.toString(16)}`);
    return Number(offset);
  };
  return {
    arrayBuffer: () => buffer,
    read8: (o) => dv.getUint8(at('read8', o)),
    read16: (o) => dv.getUint16(at('read16', o), true),
    read32: (o) => dv.getUint32(at('read32', o), true),
    read64: (o) => dv.getBigUint64(at('read64', o), true),
    write8: (o, v) => dv.setUint8(at('write8', o), v),
    write16: (o, v) => dv.setUint16(at('write16', o), v, true),
    write32: (o, v) => dv.setUint32(at('write32', o), v, true),
    write64: (o, v) => dv.setBigUint64(at('write64', o), v, true),
    close: () => void calls.push('close'),
  };
}

describe('Region larger than 4 GiB', () => {
  let region: Region;
  let view: DataView;
  const calls: string[] = [];

  before(() => {
    const buffer = new ArrayBuffer(SIZE);
    view = new DataView(buffer);
    const device = { mmap: () => standIn(buffer, calls) } as unknown as NativeDevice;
    const flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
    region = new Region(device, regionInfo({ index: 0, flags, size: BigInt(SIZE), offset: 0n }), true);
  });
  after(() => region.close());
  beforeEach(() => {
    calls.length = 0;
  });

  it('serves the first 4 GiB from its views, without a native call, up to the last register below 4 GiB (bigint offsets too)', () => {
    const top = 4 * GiB;
    region.write64(top - 8, 0x0102030405060708n);
    assert.equal(region.read64(top - 8), 0x0102030405060708n);
    assert.equal(region.read32(top - 4), 0x01020304);
    region.write16(BigInt(top - 2), 0xbeef);
    assert.equal(region.read8(BigInt(top - 1)), 0xbe);
    assert.equal(view.getUint16(top - 2, true), 0xbeef);
    assert.deepEqual(calls, []);
  });

  it('makes one native access per access past 4 GiB, number and bigint offsets alike, at the right place', () => {
    const past = 4 * GiB;
    region.write32(past, 0xcafef00d);
    assert.equal(region.read32(BigInt(past)), 0xcafef00d);
    region.write64(BigInt(past + 8), 0xfeedfacecafebeefn);
    assert.equal(region.read64(past + 8), 0xfeedfacecafebeefn);
    region.write8(SIZE - 1, 0x5a);
    assert.equal(region.read16(SIZE - 2), 0x5a00);
    assert.equal(view.getUint32(past, true), 0xcafef00d, 'the bytes landed where a view would have put them');
    assert.deepEqual(calls, [
      'write32@0x100000000',
      'read32@0x100000000',
      'write64@0x100000008',
      'read64@0x100000008',
      `write8@0x${(SIZE - 1).toString(16)}`,
      `read16@0x${(SIZE - 2).toString(16)}`,
    ]);
  });

  it('still refuses accesses past its end', () => {
    assert.throws(() => region.read32(SIZE), { name: 'RangeError', message: /outside the 4295032832-byte region 0/ });
    assert.throws(() => region.write64(SIZE - 4, 1n), RangeError);
    assert.deepEqual(calls, []);
  });
});
