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
import { checkRangeFits, hex, toBigInt } from './validate';

export type PhysKind = 'cpu' | 'p2p' | 'encrypted';

export interface CpuFragmentInput {
  buffer: DmaBuffer;
  offset?: number | bigint;
  /** Default: to the end of the buffer. */
  length?: number | bigint;
  /** Map a memfd buffer through its file (IOMMU_IOAS_MAP_FILE) rather than its address. */
  asFile?: boolean;
}

export interface RangeInput {
  offset: number | bigint;
  length: number | bigint;
}

export interface CpuFragment {
  buffer: DmaBuffer;
  offset: bigint;
  length: bigint;
  asFile: boolean;
}

export interface P2PFragment {
  /** Inside the provider's region. */
  offset: bigint;
  length: bigint;
}

export type PhysFragment = CpuFragment | P2PFragment;

export class PhysList {
  private constructor(
    readonly kind: PhysKind,
    readonly fragments: readonly PhysFragment[],
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

  /** CPU memory: DMA buffers, or slices of them. */
  static cpu(fragments: readonly CpuFragmentInput[]): PhysList {
    if (!Array.isArray(fragments)) throw new TypeError('fragments must be an array');
    return new PhysList('cpu', fragments.map((f, i) => {
      if (!(f?.buffer instanceof DmaBuffer)) throw new TypeError(`fragment ${i}: buffer must be a DmaBuffer`);
      const offset = toBigInt(f.offset ?? 0, `fragment ${i} offset`);
      const length = f.length === undefined ? f.buffer.length - offset : toBigInt(f.length, `fragment ${i} length`);
      if (offset + length > f.buffer.length) {
        throw new RangeError(`fragment ${i}: [${hex(offset)}, +${hex(length)}) is outside its ${f.buffer.length}-byte buffer`);
      }
      const asFile = f.asFile ?? false;
      if (asFile && f.buffer.kind !== 'memfd') throw new TypeError(`fragment ${i}: asFile needs a memfd buffer`);
      return { buffer: f.buffer, offset, length, asFile };
    }));
  }

  /** Peer-to-peer memory: ranges of the provider's region (a peer's BAR). */
  static p2p(provider: P2PProvider, fragments: readonly RangeInput[]): PhysList {
    if (!provider || typeof provider.fragmentSource !== 'function') throw new TypeError('provider must be a P2PProvider');
    return new PhysList('p2p', fragments.map((f, i) => {
      const offset = toBigInt(f.offset, `fragment ${i} offset`);
      const length = toBigInt(f.length, `fragment ${i} length`);
      checkRangeFits(offset, length, `fragment ${i}`);
      if (offset + length > provider.size) {
        throw new RangeError(`fragment ${i}: [${hex(offset)}, +${hex(length)}) is outside the provider's ${provider.size}-byte region`);
      }
      return { offset, length };
    }), provider);
  }

  /** Encrypted memory: representable, refused when mapped (no userspace backing yet). */
  static encrypted(fragments: readonly RangeInput[]): PhysList {
    return new PhysList('encrypted', fragments.map((f, i) => ({
      offset: toBigInt(f.offset, `fragment ${i} offset`),
      length: toBigInt(f.length, `fragment ${i} length`),
    })));
  }

  private bytes?: bigint;

  /** Bytes the list holds. */
  get length(): bigint {
    return (this.bytes ??= this.fragments.reduce((sum, f) => sum + f.length, 0n));
  }

  /** Offset of the first byte inside its page: the mapping's IOVA has the same offset. */
  get headOffset(): bigint {
    return this.fragments[0].offset % PAGE_SIZE;
  }

  /** IOVA space the list takes: whole pages from the first fragment's page to the last's. */
  get span(): bigint {
    const head = this.headOffset;
    return ((head + this.length + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE;
  }
}
