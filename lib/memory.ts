/**
 * DMA memory: page-aligned buffers a device can reach once mapped, exposed
 * to JavaScript as ArrayBuffers without copies.
 *
 * The memory is owned natively and shared: the DmaBuffer, its ArrayBuffer
 * and every IOMMU mapping of it each hold it. close() detaches the
 * ArrayBuffer (JavaScript loses its view) but the memory stays while a
 * device can reach it; it is released when the last mapping is unmapped.
 */
import * as fs from 'node:fs';
import { MemoryKindCode, native, NativeMemory } from './native';
import { kindOf, toLength } from './validate';
import { VfioStateError } from './errors';

/**
 * Where a {@link DmaBuffer}'s pages come from: `'anonymous'` (private
 * anonymous memory, 4 KiB pages), `'hugetlb'` (2 MiB huge pages from the
 * system's pool, see {@link freeHugePages}: fewer IOMMU entries for big
 * buffers), `'memfd'` (a memfd's shared pages; iommufd can map them through
 * the file, see {@link CpuFragmentInput.asFile}).
 */
export type DmaMemoryKind = 'anonymous' | 'hugetlb' | 'memfd';

/** The CPU page size in bytes (4096 on x86-64): the granule of every mapping's offset, length and IOVA. */
export const PAGE_SIZE = BigInt(native.pageSize);
/** The huge page size 'hugetlb' buffers use: 2 MiB, in bytes. */
export const HUGE_PAGE_SIZE = 2n << 20n;

const KIND_CODE: Record<DmaMemoryKind, MemoryKindCode> = {
  anonymous: MemoryKindCode.Anonymous,
  hugetlb: MemoryKindCode.Hugetlb,
  memfd: MemoryKindCode.Memfd,
};

/** Options of {@link DmaBuffer.allocate}. */
export interface DmaBufferOptions {
  /** Where the pages come from (default 'anonymous'). */
  kind?: DmaMemoryKind;
}

/** Free 2 MiB huge pages on this system (0 when there are none). */
/** Fields of /proc/meminfo in bytes (its "kB" figures times 1024; counts as they are), by name. */
export function readMeminfo(text = fs.readFileSync('/proc/meminfo', 'utf8')): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^(\w+(?:\(\w+\))?):\s+(\d+)(\s+kB)?$/gm)) out.set(m[1], Number(m[2]) * (m[3] ? 1024 : 1));
  return out;
}

/**
 * Refuses, before any system call, a buffer the system cannot hold: its
 * pages are populated at once (MAP_POPULATE), so one past what is free would
 * bring the OOM killer, or panic a small machine, instead of an error.
 * Anonymous and memfd memory must fit in MemAvailable; hugetlb memory in the
 * free huge pages.
 */
function checkRoom(length: bigint, kind: DmaMemoryKind): void {
  let info: Map<string, number>;
  try {
    info = readMeminfo();
  } catch {
    return; // no /proc: nothing to check against
  }
  const free = kind === 'hugetlb' ? BigInt(freeHugePages()) * HUGE_PAGE_SIZE : BigInt(info.get('MemAvailable') ?? Number.MAX_SAFE_INTEGER);
  if (length > free) {
    const what =
      kind === 'hugetlb'
        ? `${freeHugePages()} free 2 MiB huge pages (raise /proc/sys/vm/nr_hugepages)`
        : `${free} bytes of MemAvailable in /proc/meminfo`;
    throw new VfioStateError(`a ${length}-byte ${kind} DMA buffer does not fit: the system has ${what}`, 'ERR_VFIO_NO_MEMORY');
  }
}

/**
 * Free 2 MiB huge pages in the system's pool
 * (`/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages`; 0 when it
 * cannot be read): how many `hugetlb` DmaBuffers of 2 MiB can still be had.
 */
export function freeHugePages(): number {
  try {
    return Number(fs.readFileSync('/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages', 'utf8'));
  } catch {
    return 0;
  }
}

/**
 * Page-aligned memory for DMA, owned natively and shown to JavaScript as an
 * ArrayBuffer over the same pages (no copies): what the CPU writes through
 * `bytes` a device reads through a mapping of it, and the other way round.
 *
 * Lifetime: the buffer, its ArrayBuffer and every IOMMU mapping of it each
 * hold the memory. {@link DmaBuffer.close} detaches the ArrayBuffer (its
 * `byteLength` becomes 0) and lets go of the buffer's own hold; the pages are
 * freed once no mapping holds them either, so a device can never reach freed
 * memory. A buffer that is garbage-collected without close() is freed the
 * same way, when its mappings are gone. Buffers are not inherited across
 * fork() (MADV_DONTFORK).
 */
export class DmaBuffer implements Disposable {
  /** @internal */
  readonly native: NativeMemory;
  /** Where its pages come from. */
  readonly kind: DmaMemoryKind;
  /** Its size in bytes: a multiple of the page size (of 2 MiB for 'hugetlb'). */
  readonly length: bigint;
  /** {@link DmaBuffer.length} as a number. */
  readonly size: number;
  /** @internal the native memory's handle, which the hot paths map by */
  readonly handle: number;
  // Only close() closes the native memory: knowing it here spares a native call per check (per map, per fragment).
  private isClosed = false;

  private constructor(mem: NativeMemory, kind: DmaMemoryKind) {
    this.native = mem;
    this.kind = kind;
    this.length = mem.length;
    this.size = Number(mem.length);
    this.handle = mem.handle;
  }

  /**
   * Allocates `length` bytes, zeroed and populated (every page present
   * before it is mapped).
   *
   * @param length - Bytes: a non-zero multiple of {@link PAGE_SIZE}, of
   *   {@link HUGE_PAGE_SIZE} for 'hugetlb'.
   * @param options - `kind`: anonymous (default), hugetlb or memfd.
   * @throws TypeError for an unknown `kind` or a `length` that is not a number or bigint.
   * @throws RangeError when `length` is 0, negative, or not a multiple of the page size.
   * @throws {@link VfioError} from the allocation (syscall `mmap`, `memfd_create`
   *   or `ftruncate`): ENOMEM, for hugetlb when no free huge pages are left
   *   (`echo N > /proc/sys/vm/nr_hugepages`).
   */
  static allocate(length: number | bigint, options: DmaBufferOptions = {}): DmaBuffer {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    const kind = options.kind ?? 'anonymous';
    if (typeof kind !== 'string' || !Object.hasOwn(KIND_CODE, kind))
      throw new TypeError(
        `kind must be one of ${Object.keys(KIND_CODE).join(', ')}, not ${typeof kind === 'string' ? `'${kind}'` : kindOf(kind)}`,
      );
    const len = toLength(length, 'length', kind === 'hugetlb' ? HUGE_PAGE_SIZE : PAGE_SIZE);
    checkRoom(len, kind);
    return new DmaBuffer(native.NativeMemory.allocate(len, KIND_CODE[kind], HUGE_PAGE_SIZE), kind);
  }

  /**
   * The memory as an ArrayBuffer over the same pages (zero-copy, one
   * ArrayBuffer per buffer). After close() the ArrayBuffer is detached:
   * views of it see `byteLength` 0.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  get buffer(): ArrayBuffer {
    this.check();
    return this.native.arrayBuffer();
  }

  /**
   * A fresh Uint8Array over the whole buffer (zero-copy).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer);
  }

  /**
   * The buffer's virtual address in this process, for diagnostics (a device
   * never sees it: it sees the IOVA of a mapping).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  get address(): bigint {
    this.check();
    return this.native.address;
  }

  /** Whether close() was called: the buffer can no longer be read, written or mapped. */
  get closed(): boolean {
    return this.isClosed;
  }

  private check(): void {
    if (this.isClosed) throw new VfioStateError('DmaBuffer is closed', 'ERR_VFIO_CLOSED');
  }

  /**
   * Drops JavaScript's hold: detaches the ArrayBuffer and releases the
   * buffer's reference to the memory. Mappings of it keep the memory until
   * they are unmapped; then it is freed. Idempotent.
   */
  close(): void {
    this.isClosed = true;
    this.native.close();
  }

  /** {@link DmaBuffer.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
