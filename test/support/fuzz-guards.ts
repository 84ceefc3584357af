/**
 * Calls the fuzz does not make, because they are correct uses of the
 * library (or of a device's registers) whose effect is to take the test
 * machine down by design, not a defect to find:
 *
 *  - DMA buffers and pools past 16 MiB: allocations are populated at once,
 *    and a few of 1 GiB fill a 2 GiB guest (the library refuses what
 *    exceeds MemAvailable; memory-limits.test.ts covers that);
 *  - edu's DMA engine registers (BAR0 0x80-0x9f) written directly: edu
 *    aborts the whole QEMU for a transfer outside its buffer, so only
 *    EduDevice (which checks transfers) may write them; and P2P providers
 *    over edu's BAR (a peer's DMA into its registers would do the same);
 *  - EduDevice's `wholeBuffer` on a QEMU older than 10, whose edu aborts on
 *    a transfer reaching the buffer's last byte;
 *  - NVMe commands that change the controller or the medium for the rest of
 *    the suite (Format NVM, Sanitize, namespace management, firmware, Set
 *    Features, queue creation and deletion, Doorbell Buffer Config, Write
 *    Uncorrectable, ...): only reads, identify, log pages, get features,
 *    abort, async events, keep alive, reads, flush and compare are sent as
 *    raw commands, and opcodes no controller knows;
 *  - NVMe writes outside the fuzz's own blocks of the image (witness.ts's
 *    FUZZ_NVME_BLOCKS): later tests in the same guest read the rest as the
 *    host's pattern or as their own data. A namespace's write, writeFrom and
 *    writeZeroes may write there (raw Write and Write Zeroes commands, whose
 *    LBA is anywhere in their dwords, are not sent).
 */
import type { Entry, Guard } from './fuzz-driver';
import type { Region } from '../../lib/region';
import { FUZZ_NVME_BLOCKS, NVME_BLOCK } from './witness';

const BIG_ALLOCATION = 16 << 20;
const EDU_DEVICE_ID = 0x11e8;
const EDU_BAR0_SIZE = 1n << 20n;
const EDU_DMA_REGS: [number, number] = [0x80, 0xa0];

/** Admin opcodes that leave the controller and the medium as they were (and 0x03/0x07/0x0b/0xc1/0xff, which no controller has). */
const SAFE_ADMIN = new Set([0x02, 0x03, 0x06, 0x07, 0x08, 0x0a, 0x0b, 0x0c, 0x18, 0xc1, 0xff]);
/** I/O opcodes: flush, read, compare, and unknown ones. */
const SAFE_IO = new Set([0x00, 0x02, 0x05, 0x03, 0x7f, 0xfe]);

function numeric(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return undefined;
}

/** Whether an opcode may be sent: a value the library must refuse (not an integer) or one of the safe set. */
function opcodeAllowed(opcode: unknown, admin: boolean): boolean {
  if (typeof opcode !== 'number' || !Number.isInteger(opcode)) return true;
  return (admin ? SAFE_ADMIN : SAFE_IO).has(opcode & 0xff);
}

function commandOpcode(cmd: unknown): unknown {
  return cmd !== null && typeof cmd === 'object' ? Object.getOwnPropertyDescriptor(cmd, 'opcode')?.value : undefined;
}

const allocation: Guard = (e, _t, args) => {
  if (e.id !== 'DmaBuffer.allocate' && e.id !== 'DmaPool.create') return undefined;
  const n = numeric(args[0]);
  return n !== undefined && n > BIG_ALLOCATION ? 'allocation over 16 MiB' : undefined;
};

const nvmeCommands: Guard = (e, target, args) => {
  const qid = (target as { id?: unknown } | undefined)?.id;
  switch (e.id) {
    case 'NvmeController#adminCommand':
      return opcodeAllowed(commandOpcode(args[0]), true) ? undefined : 'NVMe admin opcode that changes the controller';
    case 'NvmeController#io':
      return opcodeAllowed(commandOpcode(args[0]), false) ? undefined : 'NVMe I/O opcode that changes the medium';
    case 'QueuePair#submit':
    case 'QueuePair#send':
      return opcodeAllowed(commandOpcode(args[0]), qid === 0) ? undefined : 'NVMe opcode that changes the controller';
    case 'QueuePair#transfer':
      return opcodeAllowed(args[0], qid === 0) ? undefined : 'NVMe opcode that changes the controller';
    case 'QueuePair#transferAsync':
      return opcodeAllowed(commandOpcode(args[0]), qid === 0) ? undefined : 'NVMe opcode that changes the controller';
  }
  return undefined;
};

/** A namespace's writes: only into the fuzz's own blocks (the LBA and block count as numbers; anything else is the library's to refuse). */
const nvmeWrites: Guard = (e, target, args) => {
  if (e.id !== 'NvmeNamespace#write' && e.id !== 'NvmeNamespace#writeFrom' && e.id !== 'NvmeNamespace#writeZeroes') return undefined;
  const lba = numeric(args[0]);
  const blocks = numeric(args[1]);
  const blockBytes = (target as { blockSize?: unknown } | undefined)?.blockSize;
  if (lba === undefined || blocks === undefined || typeof blockBytes !== 'number') return undefined;
  const [first, end] = FUZZ_NVME_BLOCKS;
  const from = lba * blockBytes;
  const to = from + Math.max(blocks, 1) * blockBytes;
  return from >= first * NVME_BLOCK && to <= end * NVME_BLOCK ? undefined : "NVMe write outside the fuzz's blocks";
};

const eduPeer: Guard = (e, _t, args) => {
  if (e.id !== 'new P2PProvider') return undefined;
  const dev = args[0] as { pci?: { device?: unknown } } | undefined;
  return dev?.pci?.device === EDU_DEVICE_ID ? "P2P provider over edu's registers" : undefined;
};

const eduWholeBuffer = (qemuMajor: number): Guard => {
  return (e, _t, args) => {
    if (qemuMajor >= 10 || (e.id !== 'new EduDevice' && e.id !== 'EduDevice.open')) return undefined;
    const options = args[e.id === 'new EduDevice' ? 1 : 2] as { wholeBuffer?: unknown } | undefined;
    return options !== null && typeof options === 'object' && options.wholeBuffer === true ? 'edu wholeBuffer on QEMU < 10' : undefined;
  };
};

/** The guards, for a guest whose QEMU has major version `qemuMajor`. */
export function guards(qemuMajor: number): Guard[] {
  return [allocation, nvmeCommands, nvmeWrites, eduPeer, eduWholeBuffer(qemuMajor)];
}

/** Raised by a patched region for a write the fuzz must not make; counted as a skip. */
export class FuzzSkip extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'FuzzSkip';
  }
}

type Writer = (this: Region, offset: number | bigint, value: never) => unknown;
const WRITERS = ['write8', 'write16', 'write32', 'write64', 'writeBytes'] as const;
const WIDTH: Record<(typeof WRITERS)[number], number> = { write8: 1, write16: 2, write32: 4, write64: 8, writeBytes: 0 };

/** Region writes that touch [from, to) throw FuzzSkip, unless `allowed()`. */
function fence(region: Region, from: number, to: number, why: string, allowed: () => boolean): void {
  const own = region as unknown as Record<string, Writer>;
  for (const name of WRITERS) {
    const original = own[name];
    own[name] = function (this: Region, offset: number | bigint, value: never): unknown {
      const at = numeric(offset);
      const width = WIDTH[name] || ((value as unknown as { byteLength?: unknown })?.byteLength as number) || 0;
      if (!allowed() && at !== undefined && at < to && at + width > from) throw new FuzzSkip(why);
      return original.call(this, offset, value);
    };
  }
}

/**
 * Patches regions as the pool takes them in: edu's BAR0 refuses writes to
 * its DMA registers except from EduDevice's own methods (`inEdu()`). Config
 * space is written freely: the Command register's memory bit and the power
 * state (PMCSR) included, which the library tracks.
 */
export function regionFences(inEdu: () => boolean): (obj: object) => void {
  const done = new WeakSet<object>();
  const patch = (r: Region): void => {
    if (done.has(r)) return;
    done.add(r);
    try {
      if (r.index === 0 && r.size === EDU_BAR0_SIZE) fence(r, EDU_DMA_REGS[0], EDU_DMA_REGS[1], "edu's DMA registers", inEdu);
    } catch {
      // a closed region: it cannot be written either
    }
  };
  return (obj) => {
    const o = obj as { bar0?: unknown; registers?: { bar?: unknown }; index?: unknown; read8?: unknown };
    if (typeof o.read8 === 'function' && typeof o.index === 'number') patch(obj as Region);
    if (o.bar0 && typeof o.bar0 === 'object') patch(o.bar0 as Region);
  };
}

/** Whether `e` is an EduDevice method (during which edu's DMA registers may be written). */
export function isEduEntry(e: Entry): boolean {
  return e.owner === 'EduDevice' || e.id === 'EduDevice.open' || e.id === 'new EduDevice';
}
