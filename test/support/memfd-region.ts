/**
 * A {@link Region} on a host without VFIO: its "device" is a memfd. The
 * Region's mmap is a real shared mapping of the memfd (a NativeMemory, the
 * class a device mmap is), and its pread/pwrite are real preads and pwrites
 * of the same file, so both of the Region's paths reach the same bytes, and
 * a test can witness them through its own file descriptor.
 */
import * as fs from 'node:fs';
import { MemoryKindCode, native, NativeDevice, NativeMemory } from '../../lib/native';
import { Region, regionInfo, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from '../../lib/region';

/** Where vfio-pci puts region `index` in the device file (VFIO_PCI_OFFSET_SHIFT). */
const regionOffset = (index: number): bigint => BigInt(index) << 40n;

/** How to build a {@link MemfdRegion}. */
export interface MemfdRegionOptions {
  /** Bytes, a multiple of the page size (default 4096). */
  size?: number;
  /** The region index (default 0). */
  index?: number;
  /** Whether the region is mmap-capable (default true): if not, every access is a pread/pwrite. */
  mappable?: boolean;
  /** Whether the region is writable (default true); a read-only one is mapped PROT_READ by the Region's request. */
  writable?: boolean;
}

/** A Region over a memfd, with the file and the system calls it made. */
export interface MemfdRegion {
  region: Region;
  /** A file descriptor of the memfd of our own (it outlives the Region). */
  fd: number;
  /** What the Region asked of its device: mmap calls (with the writable flag), preads and pwrites (`0x<file position>+<bytes>`). */
  calls: { mmap: boolean[]; pread: string[]; pwrite: string[] };
  /** The memfd's bytes at `offset`, read through our descriptor. */
  peek(offset: number, length: number): Uint8Array;
  /** Writes `bytes` into the memfd at `offset` through our descriptor. */
  poke(offset: number, bytes: ArrayLike<number>): void;
  /** Closes the region and our descriptor. */
  dispose(): void;
}

/** A memfd-backed Region (see the file's comment). */
export function memfdRegion(options: MemfdRegionOptions = {}): MemfdRegion {
  const size = options.size ?? 4096;
  const index = options.index ?? 0;
  const writable = options.writable ?? true;
  const memory: NativeMemory = native.NativeMemory.allocate(BigInt(size), MemoryKindCode.Memfd);
  const fd = fs.openSync(`/proc/self/fd/${memory.fd}`, 'r+');
  const calls: MemfdRegion['calls'] = { mmap: [], pread: [], pwrite: [] };
  const base = regionOffset(index);
  const position = (at: bigint): number => Number(at - base);
  const device = {
    fd,
    mmap(offset: bigint, length: bigint, w: boolean): NativeMemory {
      if (offset !== base || length !== BigInt(size)) throw new RangeError(`mmap of [${offset}, +${length}) is not region ${index}`);
      calls.mmap.push(w);
      return memory;
    },
    pread(at: bigint, target: Uint8Array): number {
      calls.pread.push(`0x${at.toString(16)}+${target.length}`);
      return fs.readSync(fd, target, 0, target.length, position(at));
    },
    pwrite(at: bigint, source: Uint8Array): number {
      calls.pwrite.push(`0x${at.toString(16)}+${source.length}`);
      return fs.writeSync(fd, source, 0, source.length, position(at));
    },
  } as unknown as NativeDevice;
  const flags =
    VFIO_REGION_INFO_FLAG_READ |
    (writable ? VFIO_REGION_INFO_FLAG_WRITE : 0) |
    ((options.mappable ?? true) ? VFIO_REGION_INFO_FLAG_MMAP : 0);
  const region = new Region(device, regionInfo({ index, flags, size: BigInt(size), offset: base }), true);
  if (!region.mapped) memory.close(); // the Region did not take it
  return {
    region,
    fd,
    calls,
    peek: (offset, length) => {
      const out = new Uint8Array(length);
      fs.readSync(fd, out, 0, length, offset);
      return out;
    },
    poke: (offset, bytes) => {
      fs.writeSync(fd, Uint8Array.from(bytes), 0, bytes.length, offset);
    },
    dispose: () => {
      region.close();
      fs.closeSync(fd);
    },
  };
}
