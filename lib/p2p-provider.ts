/**
 * p2p_provider: where peer-to-peer routing comes from, with no struct page:
 * a peer device's region (a BAR). It knows how each IOMMU backend reaches
 * that memory:
 *  - iommufd: a dma-buf exported by VFIO (VFIO_DEVICE_FEATURE_DMA_BUF) per
 *    fragment, mapped with IOMMU_IOAS_MAP_FILE (the kernel takes one range
 *    per dma-buf). Exported dma-bufs are kept and reused while the provider lives.
 *  - type1: the BAR's mmap, mapped as if it were memory (VFIO_IOMMU_MAP_DMA
 *    of a VM_PFNMAP range).
 *
 * Revocation: resetting the exporting device, or turning its memory decoding
 * off (however the Command register was written), makes the kernel revoke
 * the dma-bufs; the device tells its providers by a direct call, before any
 * listener of its own events runs. iommufd then tears the IOMMU
 * entries of the mapping down, and does not restore them when the dma-buf
 * becomes valid again. So the provider marks every live iommufd mapping of
 * it `revoked` (emitting 'revoked' on the mapping), forgets its dma-bufs,
 * and a new link exports fresh ones. Under type1 nothing is revoked: the
 * mapping holds the BAR's physical address, which a reset does not move.
 */
import { EventEmitter } from 'node:events';
import { VfioPciDevice } from './device';
import { VfioStateError } from './errors';
import { FragmentSource, NativeFile } from './native';
import { BackendKind } from './iommu/backend';
import { checkInstance, checkInt } from './validate';

/** How a backend reaches one fragment of a provider's region: what to map, from where, and whether through a file. */
export interface P2PSource {
  /** A dma-buf (iommufd) or the BAR's mmap (type1). */
  source: FragmentSource;
  /** Byte offset in `source`. */
  offset: bigint;
  /** Bytes. */
  length: bigint;
  /** Map through the file (IOMMU_IOAS_MAP_FILE), as iommufd does dma-bufs. */
  asFile: boolean;
}

/**
 * A p2p_provider: a peer device's region (a BAR) as the source of P2P
 * phys_list fragments ({@link PhysList.p2p}), with no struct page. Under
 * iommufd it exports each fragment as a dma-buf (VFIO_DEVICE_FEATURE_DMA_BUF)
 * mapped with IOMMU_IOAS_MAP_FILE, reusing a dma-buf while it lives; under
 * type1 it maps the BAR's mmap.
 *
 * Revocation (iommufd): when the device is reset or stops decoding memory,
 * the kernel revokes the dma-bufs and iommufd removes their IOMMU entries for
 * good. The provider forgets its dma-bufs and emits `'revoked'`, and every
 * live mapping of it is marked {@link DmaMapping.revoked} (emitting
 * `'revoked'`): unmap it and link the list again, which exports fresh ones.
 * Every `'revoked'` listener runs even when one throws; the first error is
 * thrown after, by the call that revoked (the device's reset(), or the write
 * that disabled its memory).
 *
 * The provider adds no listener to the device: the device calls it, and
 * closes it when the device closes. close() lets go of the device.
 *
 * @example
 * ```ts
 * using peer = space.openDevice('0000:00:04.0');
 * using provider = new P2PProvider(peer, 2); // BAR2
 * const m = space.mapPhysList(PhysList.p2p(provider, [{ offset: 0, length: 4096 }]));
 * ```
 */
export class P2PProvider extends EventEmitter implements Disposable {
  private dmaBufs = new Map<string, NativeFile>();
  private closed = false;
  /** The region's size in bytes: fragments must lie below it. */
  readonly size: bigint;

  /**
   * @param device - The peer device, opened in the same address space as the devices that will reach it.
   * @param regionIndex - The region: a BAR index (memory BARs only).
   * @throws RangeError when the region is empty (the device has no such BAR).
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the device is closed.
   * @throws {@link VfioError} from `ioctl(VFIO_DEVICE_GET_REGION_INFO)`.
   */
  constructor(
    /** The device whose region this is. */
    readonly device: VfioPciDevice,
    /** The region index (a BAR). */
    readonly regionIndex: number,
  ) {
    super();
    checkInstance(device, VfioPciDevice, 'device');
    checkInt(regionIndex, 'regionIndex', 0, 5);
    const info = device.regionInfo(regionIndex);
    if (info.size === 0n) throw new RangeError(`region ${regionIndex} of ${device.bdf} is empty`);
    this.size = info.size;
    device.addDependent(this);
  }

  /** Whether close() was called, or the device closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * @internal The device says the kernel revoked its BARs' dma-bufs: drops
   * them and tells the live mappings, calling every `'revoked'` listener even
   * when one throws, then throwing the first error.
   */
  memoryRevoked(): void {
    this.dropDmaBufs();
    let failure: { error: unknown } | undefined;
    for (const listener of this.rawListeners('revoked')) {
      try {
        (listener as () => void).call(this);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  private dropDmaBufs(): void {
    for (const f of this.dmaBufs.values()) f.close();
    this.dmaBufs.clear();
  }

  /**
   * @internal How `backend` maps the fragment [offset, offset + length) of
   * the region: a dma-buf of it (exported now, or reused) under iommufd, the
   * BAR's mmap under type1.
   */
  fragmentSource(backend: BackendKind, offset: bigint, length: bigint): P2PSource {
    if (this.closed) throw new VfioStateError('P2PProvider is closed', 'ERR_VFIO_CLOSED');
    if (backend === 'type1') {
      return { source: this.device.region(this.regionIndex).mem(), offset, length, asFile: false };
    }
    const key = `${offset}:${length}`;
    let buf = this.dmaBufs.get(key);
    if (!buf) {
      buf = this.device.exportDmaBuf(this.regionIndex, [{ offset, length }]);
      this.dmaBufs.set(key, buf);
    }
    return { source: buf, offset: 0n, length, asFile: true };
  }

  /**
   * Closes the provider's dma-bufs and lets go of the device; mappings made
   * from them keep their own references and stay valid. Lists of it can no
   * longer be linked. Idempotent; the device's close() does it too.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropDmaBufs();
    this.device.removeDependent(this);
  }

  /** {@link P2PProvider.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
