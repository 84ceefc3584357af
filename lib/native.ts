/**
 * The native addon and the types of what it exports. Only the library
 * talks to it; users see the classes built over it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { VfioError } from './errors';

import type { IovaRange } from './iova-allocator';

export type { IovaRange };

export const enum MemoryKindCode {
  Anonymous = 0,
  Hugetlb = 1,
  Memfd = 2,
  Device = 3,
}

export interface NativeMemory {
  readonly length: bigint;
  readonly address: bigint;
  readonly kind: MemoryKindCode;
  readonly fd: number;
  readonly closed: boolean;
  /** Its number in the environment's memory table, which the hot paths map by (stale once closed). */
  readonly handle: number;
  arrayBuffer(): ArrayBuffer;
  read8(offset: number | bigint): number;
  read16(offset: number | bigint): number;
  read32(offset: number | bigint): number;
  read64(offset: number | bigint): bigint;
  write8(offset: number | bigint, value: number): void;
  write16(offset: number | bigint, value: number): void;
  write32(offset: number | bigint, value: number): void;
  write64(offset: number | bigint, value: bigint): void;
  close(): void;
}

/**
 * A file descriptor the native layer owns: an eventfd, or a dma-buf exported
 * from a device region ({@link VfioPciDevice.exportDmaBuf}). Mappings made
 * from it keep their own reference, so closing it does not take memory away
 * from a device.
 */
export interface NativeFile {
  /** The file descriptor (-1 once closed). */
  readonly fd: number;
  /** What the file is: 'eventfd' or 'dma-buf'. */
  readonly kind: string;
  /** The file's size in bytes (lseek to its end): a dma-buf's length. */
  size(): bigint;
  /** Closes this reference to the file. Idempotent. */
  close(): void;
}

/** What a fragment of a mapList maps: user memory or a file (memfd, dma-buf). */
export type FragmentSource = NativeMemory | NativeFile;

/** A list for mapList: fragment i maps sources[i] from ranges[2i] for ranges[2i + 1] bytes, through its file if asFile[i]. */
export interface PackedFragments {
  sources: FragmentSource[];
  ranges: BigUint64Array;
  asFile: Uint8Array;
}

/**
 * The hot paths of one address space (native/fast_path.cc): functions bound
 * to it that take their numbers from `args`, filled just before each call.
 */
export interface NativeFastPath {
  readonly args: Float64Array;
  /** args = [memory handle, offset, length, iova, access bits (read 1, write 2)]; the pin id comes back in args[5] */
  mapUser(): void;
  /** args = [iova, access bits, count]; `fragments` holds (handle, offset, length) triples -> pin id */
  link(fragments: Float64Array): number;
  /** args = [pin id, iova, length] */
  unmap(): void;
  /** mapUser off the event loop; the memory is held from the call on -> pin id */
  mapUserAsync(handle: number, offset: number, length: number, iova: number, access: number): Promise<number>;
}

export interface NativeIommufd {
  readonly fd: number;
  ioasAlloc(): number;
  destroy(id: number): void;
  iovaRanges(ioas: number): { ranges: IovaRange[]; alignment: bigint };
  allowIovas(ioas: number, ranges: IovaRange[]): void;
  /** One mapping at `iova` (null: where the kernel chooses); returns the IOVA. Unmapped by range. */
  map(ioas: number, source: FragmentSource, offset: bigint, length: bigint, iova: bigint | null, flags: number, asFile: boolean): bigint;
  /** Returns the pin id. */
  mapList(ioas: number, iova: bigint, fragments: PackedFragments, flags: number): number;
  /** Returns the copy's pin id. */
  copy(dstIoas: number, srcIoas: number, srcIova: bigint, length: bigint, dstIova: bigint, flags: number): number;
  fastPath(ioas: number): NativeFastPath;
  unmap(ioas: number, iova: bigint, length: bigint): bigint;
  option(option: number, op: number, objectId: number, value: bigint): bigint;
  pinCount(): number;
  close(): void;
}

export interface NativeContainer {
  readonly fd: number;
  apiVersion(): number;
  checkExtension(extension: number): number;
  setIommu(type: number): void;
  iommuInfo(): { flags: number; iovaPgsizes: bigint; ranges?: IovaRange[]; dmaAvail?: number };
  /** One mapping at `iova`; unmapped by range. */
  mapDma(source: NativeMemory, offset: bigint, length: bigint, iova: bigint, flags: number): void;
  /** Returns the pin id. */
  mapList(iova: bigint, fragments: PackedFragments, flags: number): number;
  fastPath(): NativeFastPath;
  unmapDma(iova: bigint, length: bigint, flags: number): bigint;
  pinCount(): number;
  close(): void;
}

export interface NativeGroup {
  readonly fd: number;
  status(): number;
  setContainer(container: NativeContainer): void;
  unsetContainer(): void;
  getDevice(name: string): NativeDevice;
  close(): void;
}

/** struct vfio_region_info with its capabilities, as VFIO_DEVICE_GET_REGION_INFO reports it. */
export interface RegionInfoRaw {
  /** The region index: 0-5 the BARs, 6 the ROM, 7 config space, 8 VGA (vfio-pci's numbering). */
  index: number;
  /** VFIO_REGION_INFO_FLAG_*: READ (1), WRITE (2), MMAP (4), CAPS (8). */
  flags: number;
  /** The region's size in bytes (0 when the device does not have it). */
  size: bigint;
  /** Where the region starts in the device file's offsets, for pread/pwrite and mmap. */
  offset: bigint;
  /**
   * VFIO_REGION_INFO_CAP_SPARSE_MMAP: the only parts that may be mmapped,
   * in bytes from the region's start (vfio-pci leaves out an MSI-X table that
   * lies in a BAR); absent when the whole region may be.
   */
  sparseAreas?: {
    /** Bytes from the region's start. */
    offset: bigint;
    /** Bytes in the area. */
    size: bigint;
  }[];
  /** VFIO_REGION_INFO_CAP_TYPE, for device-specific regions (indexes past 8). */
  type?: {
    /** The region type (VFIO_REGION_TYPE_*; bit 31 plus a PCI vendor ID for vendor types). */
    type: number;
    /** The subtype, within the type. */
    subtype: number;
  };
  /** VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: the MSI-X table in this BAR may be mmapped too. */
  msixMappable?: boolean;
}

export interface NativeDevice {
  readonly fd: number;
  bindIommufd(iommufd: NativeIommufd): number;
  attachPt(ptId: number): number;
  detachPt(): void;
  info(): { flags: number; numRegions: number; numIrqs: number };
  regionInfo(index: number): RegionInfoRaw;
  irqInfo(index: number): { index: number; flags: number; count: number };
  /** The ioctl's result: positive when MSI/MSI-X could not get `start + count` vectors (that many exist). */
  setIrqs(flags: number, index: number, start: number, count: number, data?: (NativeFile | null | boolean)[]): number;
  reset(): void;
  /** VFIO_DEVICE_RESET on a thread of libuv's pool. */
  resetAsync(): Promise<void>;
  pread(offset: bigint, target: Uint8Array): number;
  pwrite(offset: bigint, source: Uint8Array): number;
  mmap(offset: bigint, length: bigint, writable: boolean): NativeMemory;
  dmaBuf(regionIndex: number, ranges: { offset: bigint; length: bigint }[]): NativeFile;
  feature(flags: number, data?: Uint8Array): number;
  close(): void;
}

/** Watches an eventfd on this environment's libuv loop; calls back with the counter it read. */
export interface NativeEventfdWatcher {
  readonly active: boolean;
  /** Keep the event loop alive while watching (the default). */
  ref(): void;
  unref(): void;
  /** Stops watching (idempotent); returns what the counter still held. */
  close(): number;
}

export interface Addon {
  NativeMemory: { allocate(length: bigint, kind: MemoryKindCode, hugePageSize?: bigint): NativeMemory };
  NativeFile: { eventfd(): NativeFile };
  Iommufd: new (path?: string) => NativeIommufd;
  Container: new (path?: string) => NativeContainer;
  Group: new (path: string) => NativeGroup;
  Device: new (cdevPath: string) => NativeDevice;
  EventfdWatcher: {
    /** onCount gets the count alone; a read error stops the watch and goes to onError (without it: an uncaught exception). */
    new (eventfd: NativeFile, onCount: (count: number) => void, onError?: (error: Error) => void): NativeEventfdWatcher;
    /** VFIO's loopback trigger of one vector (SET_IRQS, DATA_BOOL | ACTION_TRIGGER), its argument prepared once. */
    loopbackTrigger(device: NativeDevice, index: number, vector: number): () => void;
  };
  setErrorClass(cls: typeof VfioError): void;
  pageSize: number;
}

/**
 * The package root: the nearest directory above this file that holds
 * binding.gyp (this file runs as dist/lib/native.js, two levels below it,
 * both in a checkout and in an installed package).
 */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`node-vfio: no binding.gyp in any directory above ${__dirname}`);
  }
}

/**
 * Where the addon is: the checkout's own build (build/Release, from
 * `npm install` or `node-gyp rebuild`) first, else the package's prebuild for
 * this platform (prebuilds/linux-x64/), as node-gyp-build chooses.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- node-gyp-build has no types; its path() is all we use
export const addonPath: string = (require('node-gyp-build') as { path(dir: string): string }).path(packageRoot());

function load(): Addon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a native addon is loaded by path
  const addon = require(addonPath) as Addon;
  addon.setErrorClass(VfioError);
  return addon;
}

/** Loaded once per environment (main thread or worker): the addon keeps no process-wide state. */
export const native: Addon = load();
