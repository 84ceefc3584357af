/**
 * phys_list: fragments of memory of ONE kind, mapped as one DMA operation
 * into one contiguous IOVA range (the kernel's two-step DMA API: reserve an
 * IOVA range, then link the fragments into it).
 *
 * Kinds: 'cpu' (DMA buffers: anonymous, hugetlb, memfd), 'p2p' (ranges of a
 * peer device's BAR, reached through its P2PProvider), 'encrypted' (part of
 * the model; userspace has no backing for it, so mapping refuses it).
 *
 * Like the kernel's dma_iova_link(), only the outer ends may be unaligned:
 * the first fragment may start inside a page (the mapping's IOVA then has
 * the same offset in its page) and the last may end inside one; every inner
 * boundary must fall on a page boundary.
 */
import { DmaBuffer, PAGE_SIZE } from './memory';
import type { P2PProvider } from './p2p-provider';
import { VfioStateError } from './errors';
import { checkArray, checkObject, checkRangeFits, hex, kindOf, toBigInt } from './validate';

/** A range fragment, checked: an object with a non-negative `offset` and `length`. */
function rangeOf(f: RangeInput, i: number): P2PFragment {
  checkObject(f, `fragment ${i}`);
  return { offset: toBigInt(f.offset, `fragment ${i} offset`), length: toBigInt(f.length, `fragment ${i} length`) };
}

/**
 * The one kind of memory a {@link PhysList} holds: `'cpu'` (DmaBuffers),
 * `'p2p'` (ranges of a peer device's BAR, through a {@link P2PProvider}), or
 * `'encrypted'` (part of the model; mapping refuses it).
 */
export type PhysKind = 'cpu' | 'p2p' | 'encrypted';

/** A fragment of a CPU phys_list, as {@link PhysList.cpu} takes it: a DmaBuffer or a slice of it. */
export interface CpuFragmentInput {
  /** The buffer the fragment lies in; a mapping of the list holds it. */
  buffer: DmaBuffer;
  /** Byte offset in the buffer (default 0): page aligned, except in the list's first fragment. */
  offset?: number | bigint;
  /** Bytes (default: to the end of the buffer); must end on a page boundary, except in the list's last fragment. */
  length?: number | bigint;
  /**
   * Map a 'memfd' buffer through its file (IOMMU_IOAS_MAP_FILE) rather than
   * through its address (default false). iommufd only: the type1 backend maps
   * it through its address all the same.
   */
  asFile?: boolean;
}

/** A byte range of a region, for {@link PhysList.p2p} and {@link PhysList.encrypted}. */
export interface RangeInput {
  /** Byte offset from the region's start. */
  offset: number | bigint;
  /** Bytes in the range (not 0). */
  length: number | bigint;
}

/** A checked fragment of a CPU list. */
export interface CpuFragment {
  /** The buffer it lies in. */
  buffer: DmaBuffer;
  /** Byte offset in the buffer. */
  offset: bigint;
  /** Bytes. */
  length: bigint;
  /** Mapped through the memfd's file. */
  asFile: boolean;
}

/** A checked fragment of a P2P (or encrypted) list: a byte range of the provider's region. */
export interface P2PFragment {
  /** Byte offset inside the provider's region. */
  offset: bigint;
  /** Bytes. */
  length: bigint;
}

/** A fragment of a {@link PhysList}: {@link CpuFragment} in CPU lists, {@link P2PFragment} in the others. */
export type PhysFragment = CpuFragment | P2PFragment;

/**
 * A phys_list: fragments of memory of ONE kind, mapped as one operation into
 * one contiguous IOVA range ({@link IovaWindow.link}, or
 * {@link AddressSpace.mapPhysList} for both steps). The list itself is plain
 * data, checked when made: it maps nothing and holds nothing open; a mapping
 * of it holds its fragments' memory.
 *
 * Like the kernel's dma_iova_link(), only the outer ends may be unaligned:
 * the first fragment may start inside a page and the last may end inside
 * one; every inner boundary falls on a page boundary, so the fragments sit
 * at consecutive IOVAs with no gaps.
 */
export class PhysList {
  private constructor(
    /** The kind of memory of every fragment. */
    readonly kind: PhysKind,
    /** The fragments, checked, in IOVA order. */
    readonly fragments: readonly PhysFragment[],
    /** Where a 'p2p' list's memory comes from; undefined for the other kinds. */
    readonly provider?: P2PProvider,
  ) {
    if (fragments.length === 0) throw new RangeError('a phys_list needs at least one fragment');
    fragments.forEach((f, i) => {
      if (f.length === 0n) throw new RangeError(`fragment ${i} has length 0`);
      if (i > 0 && f.offset % PAGE_SIZE !== 0n) {
        throw new RangeError(`fragment ${i} starts at offset ${hex(f.offset)}, inside a page: only the first fragment may start unaligned`);
      }
      if (i < fragments.length - 1 && (f.offset + f.length) % PAGE_SIZE !== 0n) {
        throw new RangeError(`fragment ${i} ends at ${hex(f.offset + f.length)}, inside a page: only the last fragment may end unaligned`);
      }
    });
  }

  /**
   * A list of CPU memory: DmaBuffers, or slices of them, of any kinds
   * (anonymous, hugetlb and memfd may be mixed).
   *
   * @param fragments - The fragments in IOVA order; at least one.
   * @throws TypeError when `fragments` is not an array, a `buffer` is not a
   *   DmaBuffer, or `asFile` is asked of a buffer that is not a memfd.
   * @throws RangeError for an empty fragment, one outside its buffer, or an
   *   inner boundary inside a page (the message names the fragment).
   */
  static cpu(fragments: readonly CpuFragmentInput[]): PhysList {
    checkArray(fragments, 'fragments');
    return new PhysList(
      'cpu',
      fragments.map((f, i) => {
        if (!(f?.buffer instanceof DmaBuffer)) throw new TypeError(`fragment ${i}: buffer must be a DmaBuffer`);
        const offset = toBigInt(f.offset ?? 0, `fragment ${i} offset`);
        const length = f.length === undefined ? f.buffer.length - offset : toBigInt(f.length, `fragment ${i} length`);
        if (offset + length > f.buffer.length) {
          throw new RangeError(`fragment ${i}: [${hex(offset)}, +${hex(length)}) is outside its ${f.buffer.length}-byte buffer`);
        }
        const asFile = f.asFile ?? false;
        if (asFile && f.buffer.kind !== 'memfd') throw new TypeError(`fragment ${i}: asFile needs a memfd buffer`);
        return { buffer: f.buffer, offset, length, asFile };
      }),
    );
  }

  /**
   * A list of peer-to-peer memory: byte ranges of the provider's region (a
   * peer device's BAR), in any order in the BAR; they become contiguous in IOVA.
   *
   * @param provider - The peer's region.
   * @param fragments - The ranges in IOVA order; at least one.
   * @throws TypeError when `provider` is not a P2PProvider.
   * @throws RangeError for an empty range, one outside the region, or an inner boundary inside a page.
   */
  static p2p(provider: P2PProvider, fragments: readonly RangeInput[]): PhysList {
    // (duck-typed: p2p-provider.ts is imported for its type only)
    if (provider === null || typeof provider !== 'object' || typeof provider.fragmentSource !== 'function')
      throw new TypeError(`provider must be a P2PProvider, not ${kindOf(provider)}`);
    return new PhysList(
      'p2p',
      checkArray(fragments, 'fragments').map((f, i) => {
        const { offset, length } = rangeOf(f, i);
        checkRangeFits(offset, length, `fragment ${i}`);
        if (offset + length > provider.size) {
          throw new RangeError(`fragment ${i}: [${hex(offset)}, +${hex(length)}) is outside the provider's ${provider.size}-byte region`);
        }
        return { offset, length };
      }),
      provider,
    );
  }

  /**
   * A list of encrypted (confidential-computing) memory: representable,
   * and refused when linked with {@link VfioStateError} `ERR_VFIO_ENCRYPTED`,
   * since userspace has no source of such memory through VFIO yet.
   *
   * @throws RangeError for an empty range or an inner boundary inside a page.
   */
  static encrypted(fragments: readonly RangeInput[]): PhysList {
    return new PhysList('encrypted', checkArray(fragments, 'fragments').map(rangeOf));
  }

  private bytes?: bigint;

  /** Bytes the list holds: the sum of its fragments' lengths, and the length of a mapping of it. */
  get length(): bigint {
    return (this.bytes ??= this.fragments.reduce((sum, f) => sum + f.length, 0n));
  }

  /** Offset in bytes of the first byte inside its page: a mapping's IOVA has the same offset in its IOVA page. */
  get headOffset(): bigint {
    return this.fragments[0].offset % PAGE_SIZE;
  }

  /** Bytes of IOVA space the list takes: whole pages, from the first fragment's page to the end of the last's. */
  get span(): bigint {
    const head = this.headOffset;
    return ((head + this.length + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE;
  }

  private numbers?: { length: number; head: number; span: number };
  private packed?: Float64Array | null;

  /** @internal {@link PhysList.length}, {@link PhysList.headOffset} and {@link PhysList.span} as numbers, computed once */
  private sizes(): { length: number; head: number; span: number } {
    return (this.numbers ??= { length: Number(this.length), head: Number(this.headOffset), span: Number(this.span) });
  }

  /** @internal {@link PhysList.length} as a number */
  get lengthBytes(): number {
    return this.sizes().length;
  }

  /** @internal {@link PhysList.headOffset} as a number */
  get headBytes(): number {
    return this.sizes().head;
  }

  /** @internal {@link PhysList.span} as a number */
  get spanBytes(): number {
    return this.sizes().span;
  }

  /**
   * @internal What the native hot path links, packed once per list: for each
   * fragment of a CPU list (memory handle, offset, length), widened to whole
   * pages at the list's two ends as the IOMMU maps them. Null for lists the
   * hot path does not take (peer memory, memfds mapped as files).
   * @throws RangeError when the last fragment's page runs past its buffer.
   */
  packedCpu(): Float64Array | null {
    if (this.packed !== undefined) return this.packed;
    if (this.kind !== 'cpu' || (this.fragments as readonly CpuFragment[]).some((f) => f.asFile)) return (this.packed = null);
    const frags = this.fragments as readonly CpuFragment[];
    const out = new Float64Array(3 * frags.length);
    const head = this.headBytes;
    const last = frags.length - 1;
    for (let i = 0; i <= last; i++) {
      const f = frags[i];
      const offset = Number(f.offset);
      const length = Number(f.length);
      // The IOMMU maps whole pages: the first fragment from its page start, the last to its page end.
      const start = i === 0 ? offset - head : offset;
      const end = i === last ? Math.ceil((offset + length) / PAGE) * PAGE : offset + length;
      if (i === last && end > f.buffer.size)
        throw new RangeError(`fragment ${i} ends inside its buffer's last page, which the buffer does not fully hold`);
      out[3 * i] = f.buffer.handle;
      out[3 * i + 1] = start;
      out[3 * i + 2] = end - start;
    }
    return (this.packed = out);
  }

  /** @internal throws VfioStateError ERR_VFIO_CLOSED naming the first fragment whose DmaBuffer is closed */
  checkOpen(): void {
    const frags = this.fragments as readonly CpuFragment[];
    for (let i = 0; i < frags.length; i++) {
      if (frags[i].buffer.closed) throw new VfioStateError(`fragment ${i}: DmaBuffer is closed`, 'ERR_VFIO_CLOSED');
    }
  }
}

/** The page size as a number. */
const PAGE = Number(PAGE_SIZE);
