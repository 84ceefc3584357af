/**
 * A device region (BAR, config space, ROM): its info from
 * VFIO_DEVICE_GET_REGION_INFO, register accessors over a zero-copy mmap when
 * the region allows one, and pread/pwrite otherwise.
 */
import { VfioStateError } from './errors';
import { NativeDevice, NativeMemory, RegionInfoRaw } from './native';
import { checkInt, hex, kindOf, toBigInt } from './validate';

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

// Zero-length views, for an unmapped or closed region: their bounds are 0,
// so the accessors take their slow path (pread/pwrite, or the error of a
// closed region).
const NO_U8 = new Uint8Array(0);
const NO_U16 = new Uint16Array(0);
const NO_U32 = new Uint32Array(0);
const NO_U64 = new BigUint64Array(0);

/**
 * Bytes of a region that its typed-array views cover: offsets are turned
 * into indexes with `>>>`, which works on 32 bits (and a typed array has
 * 2^32 elements at most). Offsets past 4 GiB take the slow path: one native
 * load or store per access, just as exact, about 150 ns.
 */
const VIEW_BYTES = 2 ** 32;

/**
 * The index of `offset` in a view of `2^shift`-byte elements when `offset`
 * is a number that is a multiple of the width in 0..2^32, else -1. Small
 * enough that the optimizer inlines it with `shift` a constant.
 */
function elementIndex(offset: unknown, shift: number): number {
  if (typeof offset !== 'number') return -1;
  const i = offset >>> shift;
  return i * (1 << shift) === offset ? i : -1;
}

/** Whether `value` is an integer in 0..max (max at most 2^32 - 1), without calling any valueOf. */
function fits(value: unknown, max: number): boolean {
  return typeof value === 'number' && value >>> 0 === value && value <= max;
}

/**
 * Register access to a device region (a BAR, config space, the ROM):
 * 8/16/32/64-bit accesses, naturally aligned and little-endian; 64-bit
 * values are bigints. When the region can be mmapped whole, each access is
 * exactly one load or store of its width to the mmap (what device registers
 * need) and `buffer` is the region as an ArrayBuffer; otherwise accesses go
 * through pread/pwrite of the device file. Get it from
 * {@link VfioPciDevice.bar}, {@link VfioPciDevice.region} or
 * {@link VfioPciDevice.config}; it is closed with its device.
 *
 * On a mapped region, an access at a number offset in the first 4 GiB is a
 * typed-array load or store that V8 inlines into the caller (a few ns on
 * top of the device's own latency). A bigint offset passes the slow path's
 * checks first (about 100 ns); offsets past 4 GiB and writes to a
 * read-only mapping take a native call or a pwrite (about 150 ns), just as
 * exact; bad arguments take the same path to their errors.
 *
 * A BAR that does not decode memory (its device's Command register has the
 * memory-enable bit clear: {@link VfioPciDevice.setMemoryEnabled}(false), or
 * the same write through {@link VfioPciDevice.config}) cannot be accessed:
 * VFIO unmaps it, and a load there would kill the process with SIGBUS.
 * Meanwhile its accessors throw a {@link VfioStateError}
 * `ERR_VFIO_MEMORY_DISABLED` (`ERR_VFIO_RESETTING` during
 * {@link VfioPciDevice.resetAsync}) without touching the mapping, at no cost
 * to the accesses made while it decodes: its views are swapped for empty ones.
 */
export class Region implements Disposable {
  private memory?: NativeMemory;
  private closed = false;
  // The fast path: typed-array views over the mmap's ArrayBuffer (the
  // Memory above holds the mapping for as long as they exist); how many of
  // their elements a read may reach (the view's length) and a write may
  // reach (0 when the mapping is read-only: a store there would crash the
  // process), so that no view is ever indexed out of bounds and V8 compiles
  // each access without an out-of-bounds case, whatever bad offsets come
  // by; and `sink`, which every value read goes into. The sink gives every
  // value read a second use: V8's optimizing compiler (TurboFan) drops a
  // load whose value is never used (but a register read must happen even
  // when the caller ignores its value: read-to-clear registers), and it
  // folds a load used only by a test against a small mask into that test,
  // narrowed: `read32(r) & 1` becomes a one-byte `testb`, and the device
  // sees an 8-bit read. test/harness/mmio-trace.test.ts catches both.
  private u8 = NO_U8;
  private u16 = NO_U16;
  private u32 = NO_U32;
  private u64 = NO_U64;
  private r8 = 0;
  private r16 = 0;
  private r32 = 0;
  private r64 = 0;
  private w8 = 0;
  private w16 = 0;
  private w32 = 0;
  private w64 = 0;
  private sink = 0;
  /**
   * Why the mapping must not be touched now, or undefined: while a BAR does
   * not decode memory (or its device resets), VFIO zaps its mmap and a
   * load or store there is a SIGBUS. The views are zero-length meanwhile,
   * so every access takes the slow path, which throws this instead.
   */
  private offline?: VfioStateError;

  /** @internal */
  constructor(
    private readonly device: NativeDevice,
    /** VFIO_DEVICE_GET_REGION_INFO of the region: size, flags, sparse mmap areas. */
    readonly info: RegionInfo,
    mmap: boolean,
  ) {
    const whole =
      !info.sparseAreas ||
      info.msixMappable ||
      (info.sparseAreas.length === 1 && info.sparseAreas[0].offset === 0n && info.sparseAreas[0].size === info.size);
    if (mmap && info.mappable && whole && info.size > 0n) {
      this.memory = device.mmap(info.offset, info.size, info.writable);
      this.setViews(this.memory.arrayBuffer());
    }
  }

  /** Views over the first 4 GiB of `buffer`, or none (`undefined`: zero-length views). */
  private setViews(buffer?: ArrayBuffer): void {
    const bytes = buffer ? Math.min(buffer.byteLength, VIEW_BYTES) : 0;
    this.u8 = buffer ? new Uint8Array(buffer, 0, bytes) : NO_U8;
    this.u16 = buffer ? new Uint16Array(buffer, 0, Math.floor(bytes / 2)) : NO_U16;
    this.u32 = buffer ? new Uint32Array(buffer, 0, Math.floor(bytes / 4)) : NO_U32;
    this.u64 = buffer ? new BigUint64Array(buffer, 0, Math.floor(bytes / 8)) : NO_U64;
    this.r8 = this.u8.length;
    this.r16 = this.u16.length;
    this.r32 = this.u32.length;
    this.r64 = this.u64.length;
    const writable = this.info.writable ? 1 : 0;
    this.w8 = this.r8 * writable;
    this.w16 = this.r16 * writable;
    this.w32 = this.r32 * writable;
    this.w64 = this.r64 * writable;
  }

  /**
   * @internal The device says whether the region may be accessed: with
   * `why` (memory decoding turned off, a reset under way) its views become
   * zero-length and every access throws `why`, without touching the
   * mapping; with undefined the views over the mapping come back.
   */
  setOffline(why: VfioStateError | undefined): void {
    if (this.closed) return;
    this.offline = why;
    if (why === undefined && this.memory) this.setViews(this.memory.arrayBuffer());
    else this.setViews(undefined);
  }

  /** The error of an access while the region is offline (see setOffline), thrown anew so its stack is the caller's. */
  private checkOnline(): void {
    const why = this.offline;
    if (why) throw new VfioStateError(why.message, why.code);
  }

  /** `v`, after it went into the sink (see the fields): the load that produced it stays. */
  private keep(v: number): number {
    this.sink ^= v;
    return v;
  }

  /** `v`, after a use that keeps the load that produced it (see the fields). */
  private keep64(v: bigint): bigint {
    if (v === 0n) this.sink ^= 1;
    return v;
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
   * accesses; V8's optimizer drops a typed-array load whose value goes
   * unused, and narrows one used only by a test against a small mask).
   * Detached when the region closes.
   *
   * While the BAR does not decode memory (or its device resets) VFIO unmaps
   * it, and an access through this ArrayBuffer then kills the process with
   * SIGBUS: the register accessors throw instead, and so does this getter.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_NOT_MAPPABLE` when the region is
   *   not mmapped (see `mapped`), `ERR_VFIO_CLOSED` after close(),
   *   `ERR_VFIO_MEMORY_DISABLED` while memory decoding is off,
   *   `ERR_VFIO_RESETTING` while the device resets.
   */
  get buffer(): ArrayBuffer {
    const m = this.mem();
    this.checkOnline();
    return m.arrayBuffer();
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
    if (off + BigInt(width) > this.info.size)
      throw new RangeError(`offset ${hex(off)} + ${width} is outside the ${this.info.size}-byte region ${this.index}`);
    return off;
  }

  /**
   * Reads the 8-bit register at `offset`: one 8-bit load from the mmap,
   * or a 1-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 1.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 1-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read8(offset: number | bigint): number {
    const i = elementIndex(offset, 0);
    return i >= 0 && i < this.r8 ? this.keep(this.u8[i]) : (this.slow(1, offset) as number);
  }
  /**
   * Reads the 16-bit register at `offset`: one 16-bit load from the mmap,
   * or a 2-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 2.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 2-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read16(offset: number | bigint): number {
    const i = elementIndex(offset, 1);
    return i >= 0 && i < this.r16 ? this.keep(this.u16[i]) : (this.slow(2, offset) as number);
  }
  /**
   * Reads the 32-bit register at `offset`: one 32-bit load from the mmap,
   * or a 4-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 4.
   * @returns The value, unsigned.
   * @throws RangeError when `offset` is not 4-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read32(offset: number | bigint): number {
    const i = elementIndex(offset, 2);
    return i >= 0 && i < this.r32 ? this.keep(this.u32[i]) : (this.slow(4, offset) as number);
  }
  /**
   * Reads the 64-bit register at `offset`: one 64-bit load from the mmap,
   * or a 8-byte pread for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 8.
   * @returns The value, unsigned, as a bigint.
   * @throws RangeError when `offset` is not 8-byte aligned or the access runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pread.
   */
  read64(offset: number | bigint): bigint {
    const i = elementIndex(offset, 3);
    return i >= 0 && i < this.r64 ? this.keep64(this.u64[i]) : (this.slow(8, offset) as bigint);
  }

  /**
   * Writes the 8-bit register at `offset`: one 8-bit store to the mmap,
   * or a 1-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 1.
   * @param value - The value, an integer in 0..0xff.
   * @throws RangeError when `offset` is not 1-byte aligned, the access runs
   *   past the region, or `value` does not fit in 8 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write8(offset: number | bigint, value: number): void {
    const i = elementIndex(offset, 0);
    if (i >= 0 && i < this.w8 && fits(value, 0xff)) this.u8[i] = value;
    else this.slow(1, offset, value, true);
  }
  /**
   * Writes the 16-bit register at `offset`: one 16-bit store to the mmap,
   * or a 2-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 2.
   * @param value - The value, an integer in 0..0xffff.
   * @throws RangeError when `offset` is not 2-byte aligned, the access runs
   *   past the region, or `value` does not fit in 16 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write16(offset: number | bigint, value: number): void {
    const i = elementIndex(offset, 1);
    if (i >= 0 && i < this.w16 && fits(value, 0xffff)) this.u16[i] = value;
    else this.slow(2, offset, value, true);
  }
  /**
   * Writes the 32-bit register at `offset`: one 32-bit store to the mmap,
   * or a 4-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 4.
   * @param value - The value, an integer in 0..0xffffffff.
   * @throws RangeError when `offset` is not 4-byte aligned, the access runs
   *   past the region, or `value` does not fit in 32 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write32(offset: number | bigint, value: number): void {
    const i = elementIndex(offset, 2);
    if (i >= 0 && i < this.w32 && fits(value, 0xffffffff)) this.u32[i] = value;
    else this.slow(4, offset, value, true);
  }
  /**
   * Writes the 64-bit register at `offset`: one 64-bit store to the mmap,
   * or a 8-byte pwrite for regions that cannot be mmapped (little-endian).
   *
   * @param offset - Bytes from the region's start, a multiple of 8.
   * @param value - The value, a bigint in 0..2^64-1.
   * @throws RangeError when `offset` is not 8-byte aligned, the access runs
   *   past the region, or `value` does not fit in 64 bits.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed, `ERR_VFIO_SHORT_IO` on a short pwrite.
   */
  write64(offset: number | bigint, value: bigint): void {
    const i = elementIndex(offset, 3);
    if (i >= 0 && i < this.w64 && typeof value === 'bigint' && BigInt.asUintN(64, value) === value) this.u64[i] = value;
    else this.slow(8, offset, value, true);
  }

  /**
   * The accessors' slow path: every access their fast path does not take (a
   * bigint offset, one past the views, a bad argument, a closed, unmapped or
   * read-only region), checked, then made through the views (a bigint
   * offset they cover), the mapping by the addon or pread/pwrite; `write`
   * with `value`, else a read, whose value it returns (a bigint for 8
   * bytes). One function for them all, larger in
   * bytecode than V8's optimizer inlines (460 bytes): an accessor's own
   * optimized code stays small whatever slow accesses it has seen, and so
   * its callers keep inlining it, fast path and all, instead of calling it.
   */
  private slow(width: Width, offset: number | bigint, value?: unknown, write = false): number | bigint | void {
    this.check();
    this.checkOnline();
    const off = this.offsetOf(offset, width);
    let v = 0n;
    if (write && width === 8) {
      v = toBigInt(value, 'value');
    } else if (write) {
      if (typeof value !== 'number') throw new TypeError(`value must be a number, not ${value === null ? 'null' : typeof value}`);
      if (!fits(value, width === 1 ? 0xff : width === 2 ? 0xffff : 0xffffffff))
        throw new RangeError(`value ${value} does not fit in ${8 * width} bits`);
    }
    const at = Number(off); // exact wherever the views reach (below 2^32)
    if (at < (write ? this.w8 : this.r8)) {
      // A bigint offset the views cover: the fast path with it as a number.
      if (width === 1) return write ? this.write8(at, value as number) : this.read8(at);
      if (width === 2) return write ? this.write16(at, value as number) : this.read16(at);
      if (width === 4) return write ? this.write32(at, value as number) : this.read32(at);
      return write ? this.write64(at, v) : this.read64(at);
    }
    if (write && width < 8) v = BigInt(value as number);
    const m = this.memory;
    if (m && !write) {
      return width === 1 ? m.read8(off) : width === 2 ? m.read16(off) : width === 4 ? m.read32(off) : m.read64(off);
    }
    if (m && this.info.writable) {
      if (width === 1) m.write8(off, Number(v));
      else if (width === 2) m.write16(off, Number(v));
      else if (width === 4) m.write32(off, Number(v));
      else m.write64(off, v);
      return undefined;
    }
    // pread/pwrite of the device file, little-endian.
    const bytes = new Uint8Array(width);
    if (write) {
      for (let k = 0; k < width; k++) bytes[k] = Number((v >> BigInt(8 * k)) & 0xffn);
      const n = this.device.pwrite(this.info.offset + off, bytes);
      if (n !== width)
        throw new VfioStateError(`short write of region ${this.index} at ${hex(off)}: ${n} of ${width} bytes`, 'ERR_VFIO_SHORT_IO');
      return undefined;
    }
    const n = this.device.pread(this.info.offset + off, bytes);
    if (n !== width)
      throw new VfioStateError(`short read of region ${this.index} at ${hex(off)}: ${n} of ${width} bytes`, 'ERR_VFIO_SHORT_IO');
    for (let k = width - 1; k >= 0; k--) v = (v << 8n) | BigInt(bytes[k]);
    return width === 8 ? v : Number(v);
  }

  /**
   * Reads `length` bytes from `offset` with one pread of the device file
   * (works for every readable region, mmapped or not; no access width is
   * guaranteed, so use it for memory-like regions and the ROM, not registers).
   *
   * @param offset - Bytes from the region's start.
   * @param length - How many bytes: an integer from 0 up.
   * @returns The bytes read: fewer than `length` when the kernel returned fewer.
   * @throws TypeError when `offset` or `length` is not a number (or `offset` a bigint).
   * @throws RangeError when `length` is not a non-negative integer or the range runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed.
   * @throws {@link VfioError} (syscall `pread`) when the read fails.
   */
  readBytes(offset: number | bigint, length: number): Uint8Array {
    this.check();
    this.checkOnline();
    const off = toBigInt(offset, 'offset');
    checkInt(length, 'length');
    if (off + BigInt(length) > this.info.size)
      throw new RangeError(`[${hex(off)}, +${length}) runs past the end of the ${this.info.size}-byte region ${this.index}`);
    const out = new Uint8Array(length);
    const n = this.device.pread(this.info.offset + off, out);
    return out.subarray(0, n);
  }

  /**
   * Writes `data` at `offset` with one pwrite of the device file: all of
   * its bytes (`data.byteLength`, whatever the view's element size).
   *
   * @param offset - Bytes from the region's start.
   * @param data - The bytes: a Uint8Array, or any other typed array or DataView (its bytes as they are in memory).
   * @returns The bytes written (fewer than `data.byteLength` only when the kernel wrote fewer).
   * @throws TypeError when `data` is not an ArrayBuffer view, or `offset` not a number or bigint.
   * @throws RangeError when the range (`data.byteLength` bytes) runs past the region.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close(), `ERR_VFIO_MEMORY_DISABLED` or
   *   `ERR_VFIO_RESETTING` while a BAR cannot be accessed.
   * @throws {@link VfioError} (syscall `pwrite`) when the write fails.
   */
  writeBytes(offset: number | bigint, data: ArrayBufferView): number {
    this.check();
    this.checkOnline();
    const off = toBigInt(offset, 'offset');
    if (!ArrayBuffer.isView(data)) throw new TypeError(`data must be a Uint8Array (or another ArrayBuffer view), not ${kindOf(data)}`);
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (off + BigInt(bytes.length) > this.info.size)
      throw new RangeError(`[${hex(off)}, +${bytes.length}) runs past the end of the ${this.info.size}-byte region ${this.index}`);
    return this.device.pwrite(this.info.offset + off, bytes);
  }

  /**
   * Unmaps JavaScript's view (its ArrayBuffer is detached); IOMMU mappings
   * of this BAR for peer-to-peer hold the mmap themselves and stay valid.
   * Idempotent.
   */
  close(): void {
    this.setViews(undefined);
    this.memory?.close();
    this.memory = undefined;
    this.closed = true;
  }

  /** {@link Region.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
