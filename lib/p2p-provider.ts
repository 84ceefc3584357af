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
 * off, makes the kernel revoke the dma-bufs. iommufd then tears the IOMMU
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

export interface P2PSource {
  source: FragmentSource;
  offset: bigint;
  length: bigint;
  asFile: boolean;
}

export class P2PProvider extends EventEmitter implements Disposable {
  private dmaBufs = new Map<string, NativeFile>();
  private closed = false;
  readonly size: bigint;

  constructor(readonly device: VfioPciDevice, readonly regionIndex: number) {
    super();
    const info = device.regionInfo(regionIndex);
    if (info.size === 0n) throw new RangeError(`region ${regionIndex} of ${device.bdf} is empty`);
    this.size = info.size;
    const revoke = (): void => this.revoke();
    device.on('reset', revoke);
    device.on('memory-disabled', revoke);
    device.once('close', () => {
      device.off('reset', revoke);
      device.off('memory-disabled', revoke);
    });
  }

  /** Drops the dma-bufs (the kernel revoked them) and tells live mappings. */
  private revoke(): void {
    for (const f of this.dmaBufs.values()) f.close();
    this.dmaBufs.clear();
    this.emit('revoked');
  }

  /** How `backend` maps the fragment [offset, offset + length) of the region. */
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

  /** Closes the provider's dma-bufs (mappings made from them keep their own references). Idempotent. */
  close(): void {
    for (const f of this.dmaBufs.values()) f.close();
    this.dmaBufs.clear();
    this.closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
