/**
 * The Identify data structures this driver reads (4 KiB each; byte offsets
 * as in the NVMe base specification and the NVM command set
 * specification, and in Linux's struct nvme_id_ctrl / struct nvme_id_ns):
 * the controller, a namespace, and the active namespace ID list.
 */

/** Identify Controller data (CNS 01h), the fields this driver reads. */
export interface ControllerIdentity {
  /** PCI vendor ID. */
  vendorId: number;
  /** PCI subsystem vendor ID. */
  subsystemVendorId: number;
  /** Serial number: ASCII, space padding removed. */
  serial: string;
  /** Model number, e.g. 'QEMU NVMe Ctrl': ASCII, space padding removed. */
  model: string;
  /** Firmware revision: ASCII, space padding removed. */
  firmware: string;
  /** IEEE OUI (as the three bytes read as a little-endian number). */
  ieeeOui: number;
  /** Maximum Data Transfer Size: 2^mdts minimum-size pages per command; 0 means no limit. */
  mdts: number;
  /** Controller ID within the NVM subsystem. */
  controllerId: number;
  /** The version the controller reports here (0 before NVMe 1.2). */
  version: {
    /** Major version number. */
    major: number;
    /** Minor version number. */
    minor: number;
    /** Tertiary version number. */
    tertiary: number;
  };
  /** Optional Admin Command Support. */
  oacs: number;
  /** Asynchronous Event Request Limit (0's based). */
  aerl: number;
  /** Required and maximum submission queue entry sizes, as log2 of bytes (6: 64 bytes). */
  sqEntrySize: {
    /** The size entries must at least have. */
    required: number;
    /** The largest size the controller takes. */
    maximum: number;
  };
  /** Required and maximum completion queue entry sizes, as log2 of bytes (4: 16 bytes). */
  cqEntrySize: {
    /** The size entries must at least have. */
    required: number;
    /** The largest size the controller takes. */
    maximum: number;
  };
  /** Maximum outstanding commands (0: not reported). */
  maxCommands: number;
  /** Number of Namespaces: the largest namespace ID. */
  namespaceCount: number;
  /** Optional NVM Command Support (bit 2 Dataset Management, bit 3 Write Zeroes, ...). */
  oncs: number;
  /** A volatile write cache is present (Flush then matters). */
  volatileWriteCache: boolean;
  /** SGL support (0: none; this driver always uses PRPs). */
  sgls: number;
  /** The NVM Subsystem NVMe Qualified Name. */
  subsystemNqn: string;
}

/** One LBA format a namespace supports. */
export interface LbaFormat {
  /** Metadata bytes per logical block. */
  metadataSize: number;
  /** Logical block size in bytes (2^LBADS). */
  blockSize: number;
  /** Relative performance: 0 best .. 3 degraded. */
  relativePerformance: number;
}

/** Identify Namespace data (CNS 00h), the fields this driver reads. */
export interface NamespaceIdentity {
  /** Namespace Size (NSZE): logical blocks in the namespace. */
  size: bigint;
  /** Namespace Capacity (NCAP): logical blocks that may be allocated. */
  capacity: bigint;
  /** Namespace Utilization (NUSE): logical blocks allocated now. */
  utilization: bigint;
  /** Namespace Features (NSFEAT) bits. */
  features: number;
  /** The LBA formats the namespace supports. */
  lbaFormats: LbaFormat[];
  /** The LBA format in use (from FLBAS). */
  formatIndex: number;
  /** Bytes per logical block, in the format in use. */
  blockSize: number;
  /** Metadata bytes per logical block, in the format in use. */
  metadataSize: number;
  /** Namespace Globally Unique Identifier (16 bytes; zeros when not reported). */
  nguid: Uint8Array;
  /** IEEE Extended Unique Identifier (8 bytes; zeros when not reported). */
  eui64: Uint8Array;
}

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + offset, length)
    .toString('latin1')
    .replace(/[\0 ]+$/, '');
}

function view(bytes: Uint8Array): DataView {
  if (bytes.length < 4096) throw new RangeError(`an Identify structure is 4096 bytes, got ${bytes.length}`);
  return new DataView(bytes.buffer, bytes.byteOffset, 4096);
}

/** Parses Identify Controller data; RangeError when `bytes` holds fewer than 4096 bytes. */
export function parseControllerIdentity(bytes: Uint8Array): ControllerIdentity {
  const v = view(bytes);
  const ver = v.getUint32(80, true);
  const sqes = v.getUint8(512);
  const cqes = v.getUint8(513);
  return {
    vendorId: v.getUint16(0, true),
    subsystemVendorId: v.getUint16(2, true),
    serial: ascii(bytes, 4, 20),
    model: ascii(bytes, 24, 40),
    firmware: ascii(bytes, 64, 8),
    ieeeOui: v.getUint8(73) | (v.getUint8(74) << 8) | (v.getUint8(75) << 16),
    mdts: v.getUint8(77),
    controllerId: v.getUint16(78, true),
    version: { major: ver >>> 16, minor: (ver >>> 8) & 0xff, tertiary: ver & 0xff },
    oacs: v.getUint16(256, true),
    aerl: v.getUint8(259),
    sqEntrySize: { required: sqes & 0xf, maximum: sqes >>> 4 },
    cqEntrySize: { required: cqes & 0xf, maximum: cqes >>> 4 },
    maxCommands: v.getUint16(514, true),
    namespaceCount: v.getUint32(516, true),
    oncs: v.getUint16(520, true),
    volatileWriteCache: (v.getUint8(525) & 1) !== 0,
    sgls: v.getUint32(536, true),
    subsystemNqn: ascii(bytes, 768, 256),
  };
}

/** Parses Identify Namespace data; RangeError for fewer than 4096 bytes or a format index beyond the formats. */
export function parseNamespaceIdentity(bytes: Uint8Array): NamespaceIdentity {
  const v = view(bytes);
  const nlbaf = v.getUint8(25) + 1; // 0's based
  const flbas = v.getUint8(26);
  const lbaFormats: LbaFormat[] = [];
  for (let i = 0; i < Math.min(nlbaf, 64); i++) {
    const at = 128 + 4 * i;
    lbaFormats.push({
      metadataSize: v.getUint16(at, true),
      blockSize: 2 ** v.getUint8(at + 2),
      relativePerformance: v.getUint8(at + 3) & 3,
    });
  }
  // FLBAS: format index bits 3:0, and bits 5:4 of it in FLBAS bits 6:5 (when more than 16 formats).
  const formatIndex = (flbas & 0xf) | ((flbas & 0x60) >> 1);
  const format = lbaFormats[formatIndex];
  if (!format) throw new RangeError(`the namespace's format index ${formatIndex} is beyond its ${nlbaf} LBA formats`);
  return {
    size: v.getBigUint64(0, true),
    capacity: v.getBigUint64(8, true),
    utilization: v.getBigUint64(16, true),
    features: v.getUint8(24),
    lbaFormats,
    formatIndex,
    blockSize: format.blockSize,
    metadataSize: format.metadataSize,
    nguid: bytes.slice(104, 120),
    eui64: bytes.slice(120, 128),
  };
}

/** The Active Namespace ID list: up to 1024 IDs, ascending, ended by a 0. */
export function parseNamespaceList(bytes: Uint8Array): number[] {
  const v = view(bytes);
  const ids: number[] = [];
  for (let at = 0; at < 4096; at += 4) {
    const id = v.getUint32(at, true);
    if (id === 0) break;
    ids.push(id);
  }
  return ids;
}
