/**
 * type1 v1 (VFIO_TYPE1_IOMMU) never refuses an unmap that cuts a mapping:
 * VFIO's own driver unmaps, whole, every mapping that starts inside the
 * range (even past its end) and nothing at all when the range starts inside
 * a mapping; iommufd's compatibility container cuts mappings at the range's
 * ends. Either way the kernel then holds something other than what the
 * library's mappings say. So under v1 the type1 backend keeps the ranges it
 * mapped and refuses such an unmap itself, before the kernel sees it: an
 * unmap means what it means under v2, whole mappings or nothing.
 */
import { NativeFastPath } from '../native';
import { VfioStateError } from '../errors';
import { hex } from '../validate';

/** One mapped IOVA range: [iova, end). */
interface Span {
  iova: bigint;
  end: bigint;
}

/** The IOVA ranges mapped through a type1 v1 container, by pin id. */
export class V1Mappings {
  private readonly spans = new Map<number, Span>();
  /** Keys for mappings that have no pin id (the backend's map()): negative, never a pin id. */
  private nextKey = -1;

  /** Records a mapping of `length` bytes at `iova`, under `pin` (a pin id) or a key of its own. */
  add(iova: bigint | number, length: bigint | number, pin: number = this.nextKey--): void {
    const start = BigInt(iova);
    this.spans.set(pin, { iova: start, end: start + BigInt(length) });
  }

  /**
   * Refuses an unmap of [iova, iova + length) that would cut a recorded
   * mapping: VfioStateError `ERR_VFIO_CUTS_MAPPING`, nothing unmapped.
   */
  checkWhole(iova: bigint, length: bigint): void {
    const end = iova + length;
    for (const s of this.spans.values()) {
      if (s.iova < end && s.end > iova && (s.iova < iova || s.end > end)) {
        throw new VfioStateError(
          `[${hex(iova)}, ${hex(end)}) cuts the mapping at [${hex(s.iova)}, ${hex(s.end)}): an unmap must cover whole mappings, not cut one ` +
            "(type1 v1 would not refuse it: VFIO's driver unmaps whole what starts in the range, iommufd's compatibility container cuts)",
          'ERR_VFIO_CUTS_MAPPING',
        );
      }
    }
  }

  /** Forgets the mappings inside [iova, iova + length), which the kernel has just unmapped. */
  removeInside(iova: bigint, length: bigint): void {
    const end = iova + length;
    for (const [key, s] of this.spans) if (s.iova >= iova && s.end <= end) this.spans.delete(key);
  }

  /** The fast path with every map and unmap recorded here; `args` stays the native one. */
  wrap(fast: NativeFastPath): NativeFastPath {
    const args = fast.args;
    return {
      args,
      mapUser: (): void => {
        fast.mapUser();
        this.add(args[3], args[2], args[5]);
      },
      link: (fragments: Float64Array): number => {
        const iova = args[0];
        const count = args[2];
        const pin = fast.link(fragments);
        let length = 0;
        for (let i = 0; i < count; i++) length += fragments[3 * i + 2];
        this.add(iova, length, pin);
        return pin;
      },
      unmap: (): void => {
        const pin = args[0];
        fast.unmap();
        this.spans.delete(pin);
      },
      mapUserAsync: async (handle: number, offset: number, length: number, iova: number, access: number): Promise<number> => {
        const pin = await fast.mapUserAsync(handle, offset, length, iova, access);
        this.add(iova, length, pin);
        return pin;
      },
    };
  }
}
