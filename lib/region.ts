/**
 * A device region (BAR, config space, ROM): its info from
 * VFIO_DEVICE_GET_REGION_INFO, register accessors over a zero-copy mmap when
 * the region allows one, and pread/pwrite otherwise.
 */
import { VfioStateError } from './errors';
import { NativeDevice, NativeMemory, RegionInfoRaw } from './native';
import { hex, toBigInt } from './validate';

/** Region flag: the region can be read (pread, or loads from its mmap). */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
/** Region flag: the region can be written. */
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
/** Region flag: the region (or its sparse areas) can be mmapped. */
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;

/** vfio-pci's region indexes (VFIO_PCI_*_REGION_INDEX). */
export enum PciRegion {
  /** Base address register 0. */
  BAR0 = 0,
  /** Base address register 1. */
  BAR1 = 1,
  /** Base address register 2. */
  BAR2 = 2,
  /** Base address register 3. */
  BAR3 = 3,
  /** Base address register 4. */
  BAR4 = 4,
  /** Base address register 5. */
  BAR5 = 5,
  /** The expansion ROM (read-only). */
  ROM = 6,
  /** PCI config space (partly virtualized by VFIO; pread/pwrite only). */
  CONFIG = 7,
  /** Legacy VGA ranges, on VGA devices only. */
  VGA = 8,
}

/** A region's VFIO_DEVICE_GET_REGION_INFO, with its flags decoded. */
export interface RegionInfo extends RegionInfoRaw {
  /** VFIO_REGION_INFO_FLAG_READ: the region can be read. */
  readable: boolean;
  /** VFIO_REGION_INFO_FLAG_WRITE: the region can be written. */
  writable: boolean;
  /** VFIO_REGION_INFO_FLAG_MMAP: the region (or its sparse areas) can be mmapped. */
  mappable: boolean;
}

/** The raw region info with its READ, WRITE and MMAP flags as booleans. */
export function regionInfo(raw: RegionInfoRaw): RegionInfo {
  return {
    ...raw,
    readable: (raw.flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (raw.flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mappable: (raw.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
  };
}

type Width = 1 | 2 | 4 | 8;

/**
 * Register access to a device region (a BAR, config space, the ROM):
 * 8/16/32/64-bit accesses, naturally aligned and little-endian; 64-bit
 * values are bigints. When the region can be mmapped whole, each access is
 * exactly one load or store of its width to the mmap (what device registers
 * need) and `buffer` is the region as an ArrayBuffer; otherwise accesses go
 * through pread/pwrite of the device file. Get it from
 * {@link VfioPciDevice.bar}, {@link VfioPciDevice.region} or
 * {@link VfioPciDevice.config}; it is closed with its device.
 */
export class Region implements Disposable {
  private memory?: NativeMemory;
  private closed = false;

  /** @internal */
  constructor(
    private readonly device: NativeDevice,
    /** VFIO_DEVICE_GET_REGION_INFO of the region: size, flags, sparse mmap areas. */
    readonly info: RegionInfo,
    mmap: boolean,
  ) {
    const whole = !info.sparseAreas || info.msixMappable ||
      (info.sparseAreas.length === 1 && info.sparseAreas[0].offset === 0n && info.sparseAreas[0].size === info.size);
    if (mmap && info.mappable && whole && info.size > 0n) this.memory = device.mmap(info.offset, info.size, info.writable);
  }

  /** The region index (a BAR number, or a {@link PciRegion}). */
  get index(): number {
    return this.info.index;
  }

  /** The region's size in bytes. */
  get size(): bigint {
    return this.info.size;
  }

  /** Whether accesses go straight to an mmap of the region (else through pread/pwrite). */
  get mapped(): boolean {
    return this.memory !== undefined;
  }

  /**
   * The region as an ArrayBuffer over its mmap (zero-copy): typed arrays and
   * DataViews over it access the device directly, at JIT speed, but without
   * the width guarantee of read32/write32 (a DataView may split or merge
   * accesses). Detached when the region closes.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_NOT_MAPPABLE` when the region is
   *   not mmapped (see `mapped`), `ERR_VFIO_CLOSED` after close().
   */
  get buffer(): ArrayBuffer {
    return this.mem().arrayBuffer();
  }

  /** @internal the mmap, for peer-to-peer mapping under type1 */
  mem(): NativeMemory {
    this.check();
    if (!this.memory) throw new VfioStateError(`region ${this.index} is not mmap-capable`, 'ERR_VFIO_NOT_MAPPABLE');
    return this.memory;
  }

  private check(): void {
    if (this.closed) throw new VfioStateError(`region ${this.index} is closed`, 'ERR_VFIO_CLOSED');
  }

  private offsetOf(offset: number | bigint, width: Width): bigint {
    const off = toBigInt(offset, 'offset');
    if (off % BigInt(width) !== 0n) throw new RangeError(`offset ${hex(off)} is not aligned to ${width} bytes`);
    if (off + BigInt(width) > this.info.size) throw new RangeError(`offset ${hex(off)} + ${width} is outside the ${this.info.size}-byte region ${this.index}`);
    return off;
  }

  private io(width: Width): DataView {
    return new DataView(new ArrayBuffer(width));
  }

  /**
   * Reads the 8-bit register at `offset`: one 8-bit load from the mmap,
   * or a 1-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 1.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 1-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read8(offset: number | bigint): number {
    return this.readNumber(offset, 1);
  }
  /**
   * Reads the 16-bit register at `offset`: one 16-bit load from the mmap,
   * or a 2-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 2.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 2-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read16(offset: number | bigint): number {
    return this.readNumber(offset, 2);
  }
  /**
   * Reads the 32-bit register at `offset`: one 32-bit load from the mmap,
   * or a 4-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 4.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 4-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read32(offset: number | bigint): number {
    return this.readNumber(offset, 4);
  }
  /**
   * Reads the 64-bit register at `offset`: one 64-bit load from the mmap,
   * or a 8-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 8.
   * @returns The value, unsigned, as a bigint.
   * @throws RangeError when `offset` is not 8-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read64(offset: number | bigint): bigint {
    this.check();
    const off = this.offsetOf(offset, 8);
    if (this.memory) return this.memory.read64(off);
    return this.pread(off, 8).getBigUint64(0, true);
  }
  /**
   * Writes the 8-bit register at `offset`: one 8-bit store to the mmap,
   * or a 1-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 1.
   * @param value - The value, an integer in 0..0xff.
   * @throws RangeError when `offset` is not 1-byte aligned, the access runs
   *   past the region, or `value` does not fit in 8 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write8(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 1, value);
  }
  /**
   * Writes the 16-bit register at `offset`: one 16-bit store to the mmap,
   * or a 2-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 2.
   * @param value - The value, an integer in 0..0xffff.
   * @throws RangeError when `offset` is not 2-byte aligned, the access runs
   *   past the region, or `value` does not fit in 16 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write16(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 2, value);
  }
  /**
   * Writes the 32-bit register at `offset`: one 32-bit store to the mmap,
   * or a 4-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 4.
   * @param value - The value, an integer in 0..0xffffffff.
   * @throws RangeError when `offset` is not 4-byte aligned, the access runs
   *   past the region, or `value` does not fit in 32 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write32(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 4, value);
  }
  /**
   * Writes the 64-bit register at `offset`: one 64-bit store to the mmap,
   * or a 8-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 8.
   * @param value - The value, a bigint in 0..2^64-1.
   * @throws RangeError when `offset` is not 8-byte aligned, the access runs
   *   past the region, or `value` does not fit in 64 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write64(offset: number | bigint, value: bigint): void {
    this.check();
    const off = this.offsetOf(offset, 8);
    const v = toBigInt(value, 'value');
    if (this.memory) return this.memory.write64(off, v);
    const dv = this.io(8);
    dv.setBigUint64(0, v, true);
    this.pwrite(off, dv);
  }

  private readNumber(offset: number | bigint, width: 1 | 2 | 4): number {
    this.check();
    const off = this.offsetOf(offset, width);
    if (this.memory) {
      return width === 1 ? this.memory.read8(off) : width === 2 ? this.memory.read16(off) : this.memory.read32(off);
    }
    const dv = this.pread(off, width);
    return width === 1 ? dv.getUint8(0) : width === 2 ? dv.getUint16(0, true) : dv.getUint32(0, true);
  }

  private writeNumber(offset: number | bigint, width: 1 | 2 | 4, value: number): void {
    this.check();
    const off = this.offsetOf(offset, width);
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** (8 * width)) {
      throw new RangeError(`value ${value} does not fit in ${8 * width} bits`);
    }
    if (this.memory) {
      if (width === 1) this.memory.write8(off, value);
      else if (width === 2) this.memory.write16(off, value);
      else this.memory.write32(off, value);
      return;
    }
    const dv = this.io(width);
    if (width === 1) dv.setUint8(0, value);
    else if (width === 2) dv.setUint16(0, value, true);
    else dv.setUint32(0, value, true);
    this.pwrite(off, dv);
  }

  private pread(off: bigint, width: Width): DataView {
    const dv = this.io(width);
    const n = this.device.pread(this.info.offset + off, new Uint8Array(dv.buffer));
    if (n !== width) throw new VfioStateError(`short read of region ${this.index} at ${hex(off)}: ${n} of ${width} bytes`, 'ERR_VFIO_SHORT_IO');
    return dv;
  }

  private pwrite(off: bigint, dv: DataView): void {
    const n = this.device.pwrite(this.info.offset + off, new Uint8Array(dv.buffer));
    if (n !== dv.byteLength) throw new VfioStateError(`short write of region ${this.index} at ${hex(off)}: ${n} of ${dv.byteLength} bytes`, 'ERR_VFIO_SHORT_IO');
  }

  /**
   * Reads `length` bytes from `offset` with one pread of the device file
   * (works for every readable region, mmapped or not; no access width is
   * guaranteed, so use it for memory-like regions and the ROM, not registers).
   *
   * @returns The bytes read: fewer than `length` when the kernel returned fewer.
   * @throws RangeError when the range runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} (syscall `pread`) when the read fails.
   */
  readBytes(offset: number | bigint, length: number): Uint8Array {
    this.check();
    const off = toBigInt(offset, 'offset');
    if (off + BigInt(length) > this.info.size) throw new RangeError('read past the end of the region');
    const out = new Uint8Array(length);
    const n = this.device.pread(this.info.offset + off, out);
    return out.subarray(0, n);
  }

  /**
   * Writes `data` at `offset` with one pwrite of the device file.
   *
   * @returns The bytes written.
   * @throws RangeError when the range runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   * @throws {@link VfioError} (syscall `pwrite`) when the write fails.
   */
  writeBytes(offset: number | bigint, data: Uint8Array): number {
    this.check();
    const off = toBigInt(offset, 'offset');
    if (off + BigInt(data.length) > this.info.size) throw new RangeError('write past the end of the region');
    return this.device.pwrite(this.info.offset + off, data);
  }

  /**
   * Unmaps JavaScript's view (its ArrayBuffer is detached); IOMMU mappings
   * of this BAR for peer-to-peer hold the mmap themselves and stay valid.
   * Idempotent.
   */
  close(): void {
    this.memory?.close();
    this.memory = undefined;
    this.closed = true;
  }

  /** {@link Region.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
