/**
 * A live IOMMU mapping, kept lean for the hot path: plain numbers (IOVAs are
 * below 2^53, where every number is exact), no per-mapping EventEmitter until
 * someone listens, and links of the address space's list of live mappings
 * in the object itself, so mapping and unmapping allocate nothing else.
 */
import { EventEmitter } from 'node:events';
import { kindOf } from './validate';

/** @internal What a mapping reports to when it leaves the IOMMU: its address space. */
export interface MappingOwner {
  /** Unmaps `m` in the kernel (unless `inKernel` is false: the kernel already did) and does the bookkeeping. */
  release(m: DmaMapping, inKernel: boolean): void;
}

/** The events of a {@link DmaMapping}. */
export type DmaMappingEvent = 'unmapped' | 'revoked';

/**
 * A live IOMMU mapping: `length` bytes of memory (or peer BAR) reachable by
 * the address space's devices from IOVA `iova`. Made by
 * {@link AddressSpace.map}, {@link AddressSpace.mapPhysList},
 * {@link AddressSpace.copyFrom} and {@link IovaWindow.link}.
 *
 * Lifetime: the mapping holds what it maps (`holds`), natively as well as in
 * JavaScript, so memory a device can reach is never freed: closing a
 * {@link DmaBuffer} that is still mapped only detaches its ArrayBuffer, and
 * the pages are released when the last mapping of them is unmapped.
 *
 * Events (`on`, `once`, `off`): `'unmapped'` once it leaves the IOMMU (by
 * {@link DmaMapping.unmap}, a covering {@link AddressSpace.unmapRange}, or
 * the address space closing); `'revoked'` when the kernel revoked the peer
 * memory behind it (see {@link DmaMapping.revoked}).
 */
export class DmaMapping implements Disposable {
  /** @internal the address space while mapped, null after */
  owner: MappingOwner | null;
  /** @internal the native pin record's id (what the native unmap drops) */
  readonly pin: number;
  /** @internal the first IOVA of the page-aligned range the kernel maps */
  readonly pageIova: number;
  /** @internal bytes of that range */
  readonly pageLength: number;
  /** @internal where the mapped bytes start inside the first page */
  readonly head: number;
  /** @internal bytes mapped from the IOVA */
  readonly size: number;
  /** @internal whether unmapping gives the IOVAs back to the allocator (else a window keeps them) */
  readonly ownsIova: boolean;
  /** @internal links of the owner's list of live mappings */
  prev: DmaMapping | null = null;
  /** @internal */
  next: DmaMapping | null = null;
  /** @internal run once when the mapping leaves the IOMMU (a window's or a provider's bookkeeping) */
  onUnmapped: ((m: DmaMapping) => void) | null = null;
  /** @internal what it holds: one object (a DmaBuffer, a PhysList) or an array of them */
  private readonly held: object;
  /**
   * True once the memory behind it was revoked: an iommufd P2P mapping whose
   * exporting device was reset or stopped decoding its BARs. iommufd removed
   * the IOMMU entries for good, so device accesses fault; unmap it and link
   * the list again (the {@link P2PProvider} exports fresh dma-bufs).
   */
  revoked = false;
  private events: EventEmitter | null = null;

  /** @internal */
  constructor(
    owner: MappingOwner,
    pin: number,
    pageIova: number,
    pageLength: number,
    head: number,
    size: number,
    ownsIova: boolean,
    held: object,
  ) {
    this.owner = owner;
    this.pin = pin;
    this.pageIova = pageIova;
    this.pageLength = pageLength;
    this.head = head;
    this.size = size;
    this.ownsIova = ownsIova;
    this.held = held;
  }

  /** What the device reaches through it (a DmaBuffer, a PhysList, dma-bufs, BAR mmaps): kept referenced while mapped. */
  get holds(): readonly object[] {
    return Array.isArray(this.held) ? (this.held as readonly object[]) : [this.held];
  }

  /** The IOVA of the first mapped byte, as devices address it. */
  get iova(): bigint {
    return BigInt(this.pageIova + this.head);
  }

  /**
   * {@link DmaMapping.iova} as a number, for hot paths that write it into
   * descriptors or registers: exact, since the allocator hands out IOVAs
   * below 2^53.
   */
  get dmaAddress(): number {
    return this.pageIova + this.head;
  }

  /** Bytes mapped from `iova`. */
  get length(): bigint {
    return BigInt(this.size);
  }

  /** {@link DmaMapping.length} as a number. */
  get byteLength(): number {
    return this.size;
  }

  /** @internal the page-aligned IOVA range the kernel maps */
  get pages(): { iova: bigint; length: bigint } {
    return { iova: BigInt(this.pageIova), length: BigInt(this.pageLength) };
  }

  /**
   * Whether the mapping is still in the IOMMU: false after {@link DmaMapping.unmap},
   * after an {@link AddressSpace.unmapRange} that covered it, and once the address
   * space closed.
   */
  get active(): boolean {
    return this.owner !== null;
  }

  /**
   * Removes the mapping from the IOMMU, gives its IOVAs back (to the
   * allocator, or to the {@link IovaWindow} it was linked into), lets go of
   * what it held, and emits `'unmapped'`. Idempotent; after the address space
   * closed it only does the bookkeeping.
   *
   * @throws {@link VfioError} when the kernel refuses the unmap
   * (syscall `ioctl(IOMMU_IOAS_UNMAP)` or `ioctl(VFIO_IOMMU_UNMAP_DMA)`); the mapping then stays active.
   */
  unmap(): void {
    const owner = this.owner;
    if (owner !== null) owner.release(this, true);
  }

  /** @internal the kernel already unmapped it (a covering unmapRange, a closing address space) */
  forget(): void {
    const owner = this.owner;
    if (owner !== null) owner.release(this, false);
  }

  /** @internal after the owner's bookkeeping: runs the hook and the listeners */
  released(): void {
    this.owner = null;
    const hook = this.onUnmapped;
    this.onUnmapped = null;
    if (hook !== null) hook(this);
    if (this.events !== null) this.events.emit('unmapped');
  }

  /** @internal marks it revoked and tells the listeners */
  revoke(): void {
    this.revoked = true;
    if (this.events !== null) this.events.emit('revoked');
  }

  /** The events a mapping has: TypeError naming `event` for anything else. */
  private static check(event: unknown): void {
    if (event !== 'unmapped' && event !== 'revoked')
      throw new TypeError(`event must be 'unmapped' or 'revoked', not ${typeof event === 'string' ? `'${event}'` : kindOf(event)}`);
  }

  private emitter(): EventEmitter {
    return (this.events ??= new EventEmitter());
  }

  /** Calls `listener` on every `event`. */
  on(event: DmaMappingEvent, listener: () => void): this {
    DmaMapping.check(event);
    this.emitter().on(event, listener);
    return this;
  }

  /** {@link DmaMapping.on}. */
  addListener(event: DmaMappingEvent, listener: () => void): this {
    return this.on(event, listener);
  }

  /** Calls `listener` on the next `event` only. */
  once(event: DmaMappingEvent, listener: () => void): this {
    DmaMapping.check(event);
    this.emitter().once(event, listener);
    return this;
  }

  /** Removes a listener added by `on` or `once`. */
  off(event: DmaMappingEvent, listener: () => void): this {
    DmaMapping.check(event);
    this.events?.off(event, listener);
    return this;
  }

  /** {@link DmaMapping.off}. */
  removeListener(event: DmaMappingEvent, listener: () => void): this {
    return this.off(event, listener);
  }

  /** Removes every listener (of `event`, when given). */
  removeAllListeners(event?: DmaMappingEvent): this {
    if (event !== undefined) DmaMapping.check(event);
    this.events?.removeAllListeners(event);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount(event: DmaMappingEvent): number {
    DmaMapping.check(event);
    return this.events?.listenerCount(event) ?? 0;
  }

  /** {@link DmaMapping.unmap}, for `using`. */
  [Symbol.dispose](): void {
    this.unmap();
  }
}
