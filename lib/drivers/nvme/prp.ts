/**
 * Data pointers: from the library's DMA mappings to NVMe PRP entries.
 *
 * A transfer is a list of IOVA segments. A DmaMapping -- of a DmaBuffer, or
 * of a PhysList linked into an IovaWindow -- is one segment however many
 * fragments it has, since the IOMMU made it contiguous in IOVA space. PRP
 * rules (NVMe base specification, "Physical Region Page Entry and List"):
 * every entry but the first addresses the start of a memory page, so only
 * the first segment may start inside a page (at a dword boundary) and only
 * the last may end inside one -- the same rule a phys_list has.
 *
 * PRP1 is the first entry; PRP2 is the second entry when the transfer
 * touches two pages, else the IOVA of a PRP list: the remaining entries, a
 * page of them at a time, the last entry of a full list page pointing to
 * the next list page.
 *
 * Peer memory is data like any other: a DmaMapping of a PhysList.p2p()
 * linked into a window (a peer device's BAR, through a P2PProvider) is one
 * IOVA-contiguous segment, and its PRPs are built exactly as for CPU memory.
 * A phys_list holds one kind of memory only, so a mapping is all CPU memory
 * or all peer memory. What the controller cannot reach is refused before a
 * command is written: an unmapped mapping, one whose peer memory was revoked
 * (VfioStateError ERR_VFIO_REVOKED), bytes past its end, an IOVA that is not
 * dword aligned.
 *
 * IOVAs are numbers here (the library's allocator hands out IOVAs below
 * 2^53, where every integer is exact), and list entries are written as two
 * 32-bit halves into the queue's memory: no bigint arithmetic, and for a
 * transfer of one or two pages no allocation at all.
 */
import { DmaMapping } from '../../dma-mapping';
import { VfioStateError } from '../../errors';
import { hex, kindOf, toBigInt } from '../../validate';
import { describeMapping } from './errors';

/** A run of IOVA-contiguous bytes a command transfers. */
export interface IoSegment {
  /** Its first IOVA: dword aligned for the first segment, page aligned for the others. */
  iova: bigint;
  /** Bytes; every segment but the last must end on a page boundary. */
  length: number;
}

/**
 * Where a command's data is: a {@link DmaMapping} (from its start), a slice
 * of one, or IOVA segments. A mapping of a {@link PhysList} counts as one
 * segment: the IOMMU made it contiguous.
 */
export type DataPointer =
  | DmaMapping
  | {
      /** The mapping the data is in. */
      mapping: DmaMapping;
      /** Byte offset in the mapping (default 0); dword aligned. */
      offset?: number | bigint;
    }
  | readonly IoSegment[];

/** An IOVA segment with its address as a number: what the PRP builder walks. */
export interface DmaRange {
  /** The first IOVA (below 2^53). */
  address: number;
  /** Bytes. */
  length: number;
}

const TWO_32 = 2 ** 32;

/**
 * A revoked mapping, refused before a command is written: its peer memory is
 * gone from the IOMMU, so the controller would fault (or reach nothing).
 */
export function revokedRefusal(mapping: DmaMapping): VfioStateError {
  return new VfioStateError(
    `${describeMapping(mapping)} was revoked (the peer device exporting its memory was reset or stopped decoding it): ` +
      'the controller cannot reach it; unmap it and link its list again',
    'ERR_VFIO_REVOKED',
  );
}

/**
 * The IOVA of `byteLength` bytes at `offset` of `mapping`, checked: the
 * mapping is active, not revoked, and holds them. Alignment is the PRP
 * builder's check.
 *
 * @throws TypeError when `mapping` is not a DmaMapping or `offset` not a number; RangeError when it is
 *   unmapped, or `offset` is not a non-negative integer, or the bytes run past
 *   its end; {@link VfioStateError} `ERR_VFIO_REVOKED` when its peer memory was revoked.
 */
export function mappedAddress(mapping: DmaMapping, offset: number, byteLength: number): number {
  if (!(mapping instanceof DmaMapping)) throw new TypeError('mapping must be a DmaMapping');
  if (!mapping.active) throw new RangeError('the DmaMapping is unmapped');
  if (mapping.revoked) throw revokedRefusal(mapping);
  if (typeof offset !== 'number') throw new TypeError(`offset must be a number, not ${kindOf(offset)}`);
  if (offset >>> 0 !== offset && !(offset >= 0 && Math.floor(offset) === offset)) {
    throw new RangeError(`offset must be a non-negative integer, not ${offset}`);
  }
  if (offset + byteLength > mapping.byteLength) {
    throw new RangeError(`the transfer needs ${byteLength} bytes at offset ${offset} of a ${mapping.byteLength}-byte mapping`);
  }
  return mapping.dmaAddress + offset;
}

/**
 * The first `byteLength` bytes of `data` as IOVA ranges.
 *
 * @throws TypeError for something that is no data pointer; RangeError when it
 *   holds fewer bytes, is unmapped, or a segment's IOVA is past 2^53.
 */
export function rangesOf(data: DataPointer, byteLength: number): DmaRange[] {
  if (Array.isArray(data)) return take(data as readonly IoSegment[], byteLength);
  const slice = data instanceof DmaMapping ? { mapping: data } : (data as { mapping: DmaMapping; offset?: number | bigint });
  const offset =
    slice.offset === undefined ? 0 : typeof slice.offset === 'number' ? slice.offset : Number(toBigInt(slice.offset, 'offset'));
  if (!(slice.mapping instanceof DmaMapping))
    throw new TypeError('data must be a DmaMapping, { mapping, offset } or an array of { iova, length } segments');
  return [{ address: mappedAddress(slice.mapping, offset, byteLength), length: byteLength }];
}

function take(segments: readonly IoSegment[], byteLength: number): DmaRange[] {
  const out: DmaRange[] = [];
  let left = byteLength;
  for (const s of segments) {
    if (left === 0) break;
    if (typeof s?.iova !== 'bigint' || !Number.isSafeInteger(s.length) || s.length <= 0)
      throw new TypeError('a segment is { iova: bigint, length: positive integer }');
    if (s.iova < 0n || s.iova + BigInt(s.length) > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RangeError(`segment IOVA ${hex(s.iova)} is outside 0..2^53`);
    const n = Math.min(left, s.length);
    out.push({ address: Number(s.iova), length: n });
    left -= n;
  }
  if (left > 0) throw new RangeError(`the segments hold ${byteLength - left} bytes, the transfer needs ${byteLength}`);
  return out;
}

/**
 * Memory for the PRP lists of one command: whole pages of the queue's
 * memory, which the controller reads at `dmaAddress`.
 */
export interface PrpListArea {
  /** The IOVA of the area's first byte. */
  dmaAddress: number;
  /** The queue's memory as 32-bit words. */
  words: Uint32Array;
  /** Index in `words` of the area's first word. */
  word: number;
  /** List pages in the area. */
  pages: number;
}

/** How many list pages a transfer of `entries` PRP entries needs (0 for at most 2). */
export function listPagesFor(entries: number, pageSize: number): number {
  if (entries <= 2) return 0;
  const perPage = pageSize / 8;
  return Math.ceil((entries - 2) / (perPage - 1)); // every list page but the last gives one slot to the chain pointer
}

/**
 * Writes `value` (an integer in 0..2^53) as the 64-bit little-endian entry at
 * word `i` of `words`: as it is with a high half of 0 when it is a small
 * integer (integer operations only), else split by a division.
 */
export function put64(words: Uint32Array, i: number, value: number): void {
  if ((value | 0) === value) {
    words[i] = value;
    words[i + 1] = 0;
  } else {
    words[i] = value >>> 0;
    words[i + 1] = (value - (value >>> 0)) / TWO_32;
  }
}

/**
 * The PRP entries of `ranges`: the first may be unaligned, the others page addresses.
 *
 * @param max - The most entries the caller can take: more is a RangeError
 *   before any is made (a huge length would otherwise grow the array past
 *   what the engine allows, which aborts the process).
 * @throws RangeError for ranges PRPs cannot express (see the module comment), or more than `max` entries.
 */
export function prpEntries(ranges: readonly DmaRange[], pageSize: number, max = Number.MAX_SAFE_INTEGER): number[] {
  const entries: number[] = [];
  ranges.forEach((s, i) => {
    const end = s.address + s.length;
    const count = Math.ceil((end - (s.address - (s.address % pageSize))) / pageSize);
    if (!(entries.length + count <= max))
      throw new RangeError(
        `the transfer needs more than ${max} PRP entries (segment ${i}: ${s.length} bytes); the queue takes at most ${max}`,
      );
    if (i === 0 && s.address % 4 !== 0) throw new RangeError(`the data starts at IOVA ${hex(s.address)}: NVMe needs it dword aligned`);
    if (i > 0 && s.address % pageSize !== 0)
      throw new RangeError(`segment ${i} starts at IOVA ${hex(s.address)}, inside a page: only the first segment may`);
    if (i < ranges.length - 1 && end % pageSize !== 0)
      throw new RangeError(`segment ${i} ends at IOVA ${hex(end)}, inside a page: only the last segment may`);
    entries.push(s.address);
    for (let p = s.address - (s.address % pageSize) + pageSize; p < end; p += pageSize) entries.push(p);
  });
  return entries;
}

/**
 * PRP2 of a transfer of `length` bytes (at least 1) at IOVA `address`, whose
 * PRP1 is `address` itself: 0 for one page, the second page for two, else
 * the list it writes into `area`. Allocates nothing up to two pages.
 *
 * @throws RangeError when `address` is not dword aligned, or the list needs
 *   more pages than `area` has.
 */
export function contiguousPrp2(address: number, length: number, pageSize: number, area: PrpListArea): number {
  // `&` takes the low 32 bits of an integer below 2^53 exactly, and a page
  // (a power of two below 2^32) divides 2^32: no floating-point modulo
  if ((address & 3) !== 0) throw new RangeError(`the data starts at IOVA ${hex(address)}: NVMe needs it dword aligned`);
  const second = address - (address & (pageSize - 1)) + pageSize;
  const end = address + length;
  if (end <= second) return 0;
  if (end <= second + pageSize) return second;
  return writePrpList(prpEntries([{ address, length }], pageSize, maxEntries(area, pageSize)), pageSize, area);
}

/**
 * PRP1 and PRP2 of a transfer over `ranges`, into `out` (PRP1, PRP2),
 * writing its PRP list (if it needs one) into `area`.
 *
 * @throws RangeError for ranges PRPs cannot express, or a list longer than `area`.
 */
export function buildPrps(ranges: readonly DmaRange[], pageSize: number, area: PrpListArea, out: Float64Array): void {
  const entries = ranges.length === 0 ? [0] : prpEntries(ranges, pageSize, maxEntries(area, pageSize));
  out[0] = entries[0];
  out[1] = entries.length === 1 ? 0 : entries.length === 2 ? entries[1] : writePrpList(entries, pageSize, area);
}

/**
 * A bound on the PRP entries made before writePrpList checks them exactly
 * against `area` (whose message says how many list pages were needed): far
 * above any area, far below an array the engine cannot grow.
 */
function maxEntries(area: PrpListArea, pageSize: number): number {
  return Math.max(1 << 20, 4 * area.pages * (pageSize / 8));
}

/** Writes entries 1.. of `entries` as a PRP list into `area` (chaining full list pages); returns the list's IOVA. */
function writePrpList(entries: readonly number[], pageSize: number, area: PrpListArea): number {
  const pages = listPagesFor(entries.length, pageSize);
  if (pages > area.pages) {
    throw new RangeError(
      `the transfer needs ${entries.length} PRP entries (${pages} list pages); this queue has ${area.pages} per command`,
    );
  }
  const perPage = pageSize / 8;
  let slot = 0; // entry index within the whole area
  for (let e = 1; e < entries.length; e++) {
    if (slot % perPage === perPage - 1 && e < entries.length - 1) {
      // the page's last slot chains to the next list page
      put64(area.words, area.word + 2 * slot, area.dmaAddress + (slot + 1) * 8);
      slot++;
    }
    put64(area.words, area.word + 2 * slot, entries[e]);
    slot++;
  }
  return area.dmaAddress;
}
