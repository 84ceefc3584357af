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
import { toLength } from './validate';
import { VfioStateError } from './errors';

export type DmaMemoryKind = 'anonymous' | 'hugetlb' | 'memfd';

export const PAGE_SIZE = BigInt(native.pageSize);
export const HUGE_PAGE_SIZE = 2n << 20n;

const KIND_CODE: Record<DmaMemoryKind, MemoryKindCode> = {
  anonymous: MemoryKindCode.Anonymous,
  hugetlb: MemoryKindCode.Hugetlb,
  memfd: MemoryKindCode.Memfd,
};

export interface DmaBufferOptions {
  kind?: DmaMemoryKind;
}

/** Free 2 MiB huge pages on this system (0 when there are none). */
export function freeHugePages(): number {
  try {
    return Number(fs.readFileSync('/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages', 'utf8'));
  } catch {
    return 0;
  }
}

export class DmaBuffer implements Disposable {
  /** @internal */
  readonly native: NativeMemory;
  readonly kind: DmaMemoryKind;
  readonly length: bigint;
  // Only close() closes the native memory: knowing it here spares a native call per check (per map, per fragment).
  private isClosed = false;

  private constructor(mem: NativeMemory, kind: DmaMemoryKind) {
    this.native = mem;
    this.kind = kind;
    this.length = mem.length;
  }

  /**
   * Allocates `length` bytes (a multiple of the page size; of 2 MiB for
   * hugetlb), zeroed and populated.
   */
  static allocate(length: number | bigint, options: DmaBufferOptions = {}): DmaBuffer {
    const kind = options.kind ?? 'anonymous';
    if (!(kind in KIND_CODE)) throw new TypeError(`kind must be one of ${Object.keys(KIND_CODE).join(', ')}, not ${String(kind)}`);
    const len = toLength(length, 'length', kind === 'hugetlb' ? HUGE_PAGE_SIZE : PAGE_SIZE);
    return new DmaBuffer(native.NativeMemory.allocate(len, KIND_CODE[kind], HUGE_PAGE_SIZE), kind);
  }

  /** The memory, zero-copy. Detached (byteLength 0) after close(). */
  get buffer(): ArrayBuffer {
    this.check();
    return this.native.arrayBuffer();
  }

  /** A Uint8Array over the whole buffer. */
  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer);
  }

  /** The process virtual address (for diagnostics). */
  get address(): bigint {
    this.check();
    return this.native.address;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  private check(): void {
    if (this.isClosed) throw new VfioStateError('DmaBuffer is closed', 'ERR_VFIO_CLOSED');
  }

  /** Drops JavaScript's hold; mappings keep the memory until unmapped. Idempotent. */
  close(): void {
    this.isClosed = true;
    this.native.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
