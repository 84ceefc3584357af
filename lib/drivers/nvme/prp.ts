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
 */
import { DmaMapping } from '../../address-space';
import { hex, toBigInt } from '../../validate';

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

/** The first `byteLength` bytes of `data` as segments; RangeError when it holds fewer. */
export function segmentsOf(data: DataPointer, byteLength: number): IoSegment[] {
  if (Array.isArray(data)) return take(data as readonly IoSegment[], byteLength);
  const slice = data instanceof DmaMapping ? { mapping: data } : data as { mapping: DmaMapping; offset?: number | bigint };
  const { mapping } = slice;
  if (!(mapping instanceof DmaMapping)) throw new TypeError('data must be a DmaMapping, { mapping, offset } or an array of { iova, length } segments');
  const offset = toBigInt(slice.offset ?? 0, 'offset');
  if (!mapping.active) throw new RangeError('the DmaMapping is unmapped');
  if (offset + BigInt(byteLength) > mapping.length) {
    throw new RangeError(`the transfer needs ${byteLength} bytes at offset ${offset} of a ${mapping.length}-byte mapping`);
  }
  return [{ iova: mapping.iova + offset, length: byteLength }];
}

function take(segments: readonly IoSegment[], byteLength: number): IoSegment[] {
  const out: IoSegment[] = [];
  let left = byteLength;
  for (const s of segments) {
    if (left === 0) break;
    if (typeof s?.iova !== 'bigint' || !Number.isSafeInteger(s.length) || s.length <= 0) throw new TypeError('a segment is { iova: bigint, length: positive integer }');
    const n = Math.min(left, s.length);
    out.push({ iova: s.iova, length: n });
    left -= n;
  }
  if (left > 0) throw new RangeError(`the segments hold ${byteLength - left} bytes, the transfer needs ${byteLength}`);
  return out;
}

/** Memory for the PRP lists of one command: whole pages, mapped at `iova`. */
export interface PrpListArea {
  iova: bigint;
  view: DataView;
  /** Byte offset of the area in `view`. */
  offset: number;
  pages: number;
}

/** How many list pages a transfer of `entries` PRP entries needs (0 for at most 2). */
export function listPagesFor(entries: number, pageSize: number): number {
  if (entries <= 2) return 0;
  const perPage = pageSize / 8;
  return Math.ceil((entries - 2) / (perPage - 1)); // every list page but the last gives one slot to the chain pointer
}

/** The PRP entries of `segments`: the first may be unaligned, the others page addresses. */
export function prpEntries(segments: readonly IoSegment[], pageSize: number): bigint[] {
  const page = BigInt(pageSize);
  const entries: bigint[] = [];
  segments.forEach((s, i) => {
    const end = s.iova + BigInt(s.length);
    if (i === 0 && s.iova % 4n !== 0n) throw new RangeError(`the data starts at IOVA ${hex(s.iova)}: NVMe needs it dword aligned`);
    if (i > 0 && s.iova % page !== 0n) throw new RangeError(`segment ${i} starts at IOVA ${hex(s.iova)}, inside a page: only the first segment may`);
    if (i < segments.length - 1 && end % page !== 0n) throw new RangeError(`segment ${i} ends at IOVA ${hex(end)}, inside a page: only the last segment may`);
    entries.push(s.iova);
    for (let p = s.iova - (s.iova % page) + page; p < end; p += page) entries.push(p);
  });
  return entries;
}

/** PRP1 and PRP2 of a transfer, writing its PRP list (if it needs one) into `area`. */
export function buildPrps(segments: readonly IoSegment[], pageSize: number, area: PrpListArea): { prp1: bigint; prp2: bigint } {
  if (segments.length === 0) return { prp1: 0n, prp2: 0n };
  const entries = prpEntries(segments, pageSize);
  if (entries.length === 1) return { prp1: entries[0], prp2: 0n };
  if (entries.length === 2) return { prp1: entries[0], prp2: entries[1] };
  const pages = listPagesFor(entries.length, pageSize);
  if (pages > area.pages) {
    throw new RangeError(`the transfer needs ${entries.length} PRP entries (${pages} list pages); this queue has ${area.pages} per command`);
  }
  const perPage = pageSize / 8;
  let slot = 0; // entry index within the whole area
  for (let e = 1; e < entries.length; e++) {
    const last = e === entries.length - 1;
    if (slot % perPage === perPage - 1 && !last) {
      // the page's last slot chains to the next list page
      area.view.setBigUint64(area.offset + slot * 8, area.iova + BigInt((slot + 1) * 8), true);
      slot++;
    }
    area.view.setBigUint64(area.offset + slot * 8, entries[e], true);
    slot++;
  }
  return { prp1: entries[0], prp2: area.iova };
}
