/**
 * A device region (BAR, config space, ROM): its info from
 * VFIO_DEVICE_GET_REGION_INFO, register accessors over a zero-copy mmap when
 * the region allows one, and pread/pwrite otherwise.
 */
import { VfioStateError } from './errors';
import { NativeDevice, NativeMemory, RegionInfoRaw } from './native';
import { hex, toBigInt } from './validate';

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;

export enum PciRegion {
  BAR0 = 0, BAR1 = 1, BAR2 = 2, BAR3 = 3, BAR4 = 4, BAR5 = 5, ROM = 6, CONFIG = 7, VGA = 8,
}

export interface RegionInfo extends RegionInfoRaw {
  readable: boolean;
  writable: boolean;
  mappable: boolean;
}

export function regionInfo(raw: RegionInfoRaw): RegionInfo {
  return {
    ...raw,
    readable: (raw.flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (raw.flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mappable: (raw.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
  };
}

type Width = 1 | 2 | 4 | 8;

/** Register access to a region: 8/16/32/64-bit, naturally aligned; 64-bit values are bigint. */
export class Region implements Disposable {
  private memory?: NativeMemory;
  private closed = false;

  /** @internal */
  constructor(private readonly device: NativeDevice, readonly info: RegionInfo, mmap: boolean) {
    const whole = !info.sparseAreas || info.msixMappable ||
      (info.sparseAreas.length === 1 && info.sparseAreas[0].offset === 0n && info.sparseAreas[0].size === info.size);
    if (mmap && info.mappable && whole && info.size > 0n) this.memory = device.mmap(info.offset, info.size, info.writable);
  }

  get index(): number {
    return this.info.index;
  }

  get size(): bigint {
    return this.info.size;
  }

  /** Whether accesses go straight to an mmap of the region (else through pread/pwrite). */
  get mapped(): boolean {
    return this.memory !== undefined;
  }

  /** The region's memory as an ArrayBuffer, zero-copy (mmap-capable regions only). */
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

  read8(offset: number | bigint): number {
    return this.readNumber(offset, 1);
  }
  read16(offset: number | bigint): number {
    return this.readNumber(offset, 2);
  }
  read32(offset: number | bigint): number {
    return this.readNumber(offset, 4);
  }
  read64(offset: number | bigint): bigint {
    this.check();
    const off = this.offsetOf(offset, 8);
    if (this.memory) return this.memory.read64(off);
    return this.pread(off, 8).getBigUint64(0, true);
  }
  write8(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 1, value);
  }
  write16(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 2, value);
  }
  write32(offset: number | bigint, value: number): void {
    this.writeNumber(offset, 4, value);
  }
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

  /** Bulk read through pread (works for every readable region). */
  readBytes(offset: number | bigint, length: number): Uint8Array {
    this.check();
    const off = toBigInt(offset, 'offset');
    if (off + BigInt(length) > this.info.size) throw new RangeError('read past the end of the region');
    const out = new Uint8Array(length);
    const n = this.device.pread(this.info.offset + off, out);
    return out.subarray(0, n);
  }

  /** Bulk write through pwrite. */
  writeBytes(offset: number | bigint, data: Uint8Array): number {
    this.check();
    const off = toBigInt(offset, 'offset');
    if (off + BigInt(data.length) > this.info.size) throw new RangeError('write past the end of the region');
    return this.device.pwrite(this.info.offset + off, data);
  }

  /** Unmaps JavaScript's view; mappings of this BAR for peer-to-peer keep the memory. Idempotent. */
  close(): void {
    this.memory?.close();
    this.memory = undefined;
    this.closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
