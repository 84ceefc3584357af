/**
 * An NVMe controller's I/O side, played in JavaScript on a host without
 * VFIO, for the driver's queue pairs: its registers are a memfd Region (the
 * driver's doorbell writes land there), its "DMA" reaches the DmaBuffers a
 * fake address space mapped (at IOVAs above 4 GiB, so every PRP's high half
 * matters), and on each step it reads the SQ tail doorbells, fetches the new
 * submission entries, carries out Read and Write over the PRP entries and
 * lists the way the specification says, and posts completion entries with
 * the phase tag, never past the CQ head the driver rang. Its namespace's
 * block `lba` holds {@link blockByte}'s pattern until written.
 */
import { AddressSpace } from '../../lib/address-space';
import { DmaMapping, MappingOwner } from '../../lib/dma-mapping';
import { NvmeRegisters, NvmeReg } from '../../lib/drivers/nvme/registers';
import { DmaBuffer } from '../../lib/memory';
import { memfdRegion, MemfdRegion } from './memfd-region';

/** Byte `i` of logical block `lba` as the fake namespace holds it before any write. */
export function blockByte(lba: number, i: number): number {
  return (Math.imul(lba + 1, 0x9e3779b1) + Math.imul(i, 0x85ebca6b)) >>> 24;
}

/** The bytes of `blocks` logical blocks from `lba` as the fake holds them. */
export function fakeBlocks(lba: number, blocks: number, blockSize: number): Uint8Array {
  const out = new Uint8Array(blocks * blockSize);
  for (let b = 0; b < blocks; b++) for (let i = 0; i < blockSize; i++) out[b * blockSize + i] = blockByte(lba + b, i);
  return out;
}

/** An address space that maps DmaBuffers at IOVAs from 4 GiB up and lets the fake reach them. */
export class FakeSpace implements MappingOwner {
  readonly live = new Map<DmaMapping, DmaBuffer>();

  /** @param next - The first IOVA it hands out (default: above 4 GiB). */
  constructor(private next = 2 ** 32 + 0x10000) {}

  /** Maps `buffer` (whole) at the next free, page-aligned IOVA. */
  map(buffer: DmaBuffer): DmaMapping {
    const size = Number(buffer.length);
    const m = new DmaMapping(this, 0, this.next, size, 0, size, true, buffer);
    this.next += size + 0x1000; // a hole between mappings: a stray PRP faults
    this.live.set(m, buffer);
    return m;
  }

  /** The mapping's bookkeeping: it leaves the space. */
  release(m: DmaMapping): void {
    this.live.delete(m);
    m.released();
  }

  /** `length` bytes at `iova` as a view of the buffer behind them; throws like an IOMMU fault. */
  reach(iova: number, length: number): Uint8Array {
    for (const [m, b] of this.live) {
      const start = m.dmaAddress;
      if (iova >= start && iova + length <= start + m.byteLength) return b.bytes.subarray(iova - start, iova - start + length);
    }
    throw new Error(`DMA fault at IOVA 0x${iova.toString(16)} + ${length}`);
  }

  /** The space, typed as the driver wants it. */
  get asAddressSpace(): AddressSpace {
    return this as unknown as AddressSpace;
  }
}

interface FakeQueue {
  qid: number;
  entries: number;
  sq: number;
  cq: number;
  sqHead: number;
  cqTail: number;
  phase: number;
  /** The SQ tail doorbell register's value seen last: a change is a doorbell write. */
  sqRegister: number;
  /** Shadow doorbells: the SQ is being worked on (a doorbell write started it; it stops when the SQ is empty). */
  busy: boolean;
  /** Shadow doorbells: the CQ head as last read from the shadow. */
  cqHead: number;
}

/** Doorbell stride 4 bytes (CAP.DSTRD 0): SQ y tail at 1000h + 8y, CQ y head at 1000h + 8y + 4. */
const doorbell = (qid: number, cq: boolean): number => NvmeReg.DOORBELLS + 8 * qid + (cq ? 4 : 0);

/** The fake controller (see the file's comment). */
export class FakeNvme {
  /** Its address space: what the driver maps, the fake reaches. */
  readonly space: FakeSpace;
  /** BAR0: CAP, and the doorbells the driver writes. */
  readonly bar: MemfdRegion;
  /** The driver's view of BAR0, for its queue pairs. */
  readonly registers: NvmeRegisters;
  /** Logical blocks written, by LBA. */
  readonly written = new Map<number, Uint8Array>();
  /** Commands fetched, by opcode. */
  readonly fetched = new Map<number, number>();
  /** Commands it fetches but never completes, while this says so (by LBA): to make time-outs. */
  swallow: (lba: number) => boolean = () => false;
  /** Commands it fetched and holds, to complete later with {@link FakeNvme.release}. */
  readonly held: { q: FakeQueue; cid: number }[] = [];
  private readonly queues: FakeQueue[] = [];
  private running = false;

  /**
   * @param blockSize - Bytes per logical block.
   * @param blocks - Logical blocks in the namespace: reads past it get LBA Out of Range.
   * @param iovaBase - The first IOVA its address space hands out (default: above 4 GiB).
   */
  constructor(
    readonly blockSize = 512,
    readonly blocks = 1 << 20,
    iovaBase?: number,
  ) {
    this.space = new FakeSpace(iovaBase);
    this.bar = memfdRegion({ size: 8192 });
    // CAP: MQES 1023, CQR, TO 1 (500 ms), DSTRD 0, CSS NVM, MPSMIN 0 (4 KiB), MPSMAX 0
    const cap = new Uint8Array(8);
    new DataView(cap.buffer).setBigUint64(0, 1023n | (1n << 16n) | (1n << 24n) | (1n << 37n), true);
    this.bar.poke(0, cap);
    this.registers = new NvmeRegisters(this.bar.region);
  }

  /** Serves queue pair `qid` from now on, as a Create I/O CQ and SQ would have asked. */
  attach(qid: number, entries: number, sqIova: bigint, cqIova: bigint): void {
    this.queues.push({
      qid,
      entries,
      sq: Number(sqIova),
      cq: Number(cqIova),
      sqHead: 0,
      cqTail: 0,
      phase: 1,
      sqRegister: 0,
      busy: false,
      cqHead: 0,
    });
  }

  /**
   * Shadow doorbells from now on, as QEMU's controller does them after Doorbell
   * Buffer Config: the shadow page at IOVA `shadow`, the EventIdx page after it.
   * A doorbell register write starts work on an SQ; while busy, the
   * controller reads the shadow SQ tail after each entry and writes the tail
   * it knew as the EventIdx, and stops when the SQ is empty. Before posting a
   * completion it writes the CQ head it knew as the CQ's EventIdx and reads
   * the shadow head. `budget` entries per step at the most: a controller
   * that lags behind, so that the driver may skip doorbell writes.
   */
  useShadow(shadow: number, budget = Infinity): void {
    this.shadowAt = shadow;
    this.budget = budget;
  }

  private shadowAt = -1;
  private budget = Infinity;

  private dword(iova: number): DataView {
    const b = this.space.reach(iova, 4);
    return new DataView(b.buffer, b.byteOffset, 4);
  }

  /** Processes what the doorbells announce: fetches the new entries and completes them. Returns how many it fetched. */
  step(): number {
    let n = 0;
    for (const q of this.queues) {
      const register = this.bar.region.read32(doorbell(q.qid, false));
      const rung = register !== q.sqRegister;
      q.sqRegister = register;
      if (this.shadowAt < 0) {
        while (q.sqHead !== register) n += this.fetch(q);
        continue;
      }
      if (rung) q.busy = true;
      if (!q.busy) continue;
      const at = this.shadowAt + (doorbell(q.qid, false) - NvmeReg.DOORBELLS);
      let tail = this.dword(at).getUint32(0, true);
      for (let budget = this.budget; q.sqHead !== tail && budget > 0; budget--) {
        n += this.fetch(q);
        this.dword(at + 4096).setUint32(0, tail, true); // EventIdx: the tail it knew
        tail = this.dword(at).getUint32(0, true);
      }
      if (q.sqHead === tail) q.busy = false;
    }
    return n;
  }

  /** Fetches and executes the entry at the SQ head. */
  private fetch(q: FakeQueue): number {
    const sqe = new DataView(this.space.reach(q.sq + 64 * q.sqHead, 64).slice().buffer);
    q.sqHead = (q.sqHead + 1) % q.entries;
    this.execute(q, sqe);
    return 1;
  }

  /** Runs {@link FakeNvme.step} on every event-loop turn until stop(). */
  start(): void {
    this.running = true;
    const turn = (): void => {
      if (!this.running) return;
      this.step();
      setImmediate(turn);
    };
    setImmediate(turn);
  }

  /** Stops the loop of start(). */
  stop(): void {
    this.running = false;
  }

  /** Completes the commands it held (as successes). */
  release(): void {
    for (const h of this.held.splice(0)) this.post(h.q, h.cid, 0);
  }

  private execute(q: FakeQueue, sqe: DataView): void {
    const cdw0 = sqe.getUint32(0, true);
    const opcode = cdw0 & 0xff;
    const cid = cdw0 >>> 16;
    this.fetched.set(opcode, (this.fetched.get(opcode) ?? 0) + 1);
    const lba = Number(sqe.getBigUint64(40, true));
    const blocks = (sqe.getUint32(48, true) & 0xffff) + 1;
    if (this.swallow(lba)) {
      this.held.push({ q, cid });
      return;
    }
    if (opcode !== 1 && opcode !== 2) return this.post(q, cid, 0x01); // Invalid Command Opcode
    if (lba + blocks > this.blocks) return this.post(q, cid, 0x80); // LBA Out of Range
    const bytes = blocks * this.blockSize;
    const pages = this.prpPages(Number(sqe.getBigUint64(24, true)), Number(sqe.getBigUint64(32, true)), bytes);
    let at = 0;
    for (const p of pages) {
      const chunk = this.space.reach(p.iova, p.length);
      for (let i = 0; i < p.length; i++, at++) {
        const block = lba + Math.floor(at / this.blockSize);
        const within = at % this.blockSize;
        if (opcode === 2) chunk[i] = this.written.get(block)?.[within] ?? blockByte(block, within);
        else {
          if (!this.written.has(block)) this.written.set(block, new Uint8Array(this.blockSize));
          this.written.get(block)![within] = chunk[i];
        }
      }
    }
    this.post(q, cid, 0);
  }

  /** The memory a transfer of `bytes` reaches through PRP1, PRP2 and the lists, page by page. */
  private prpPages(prp1: number, prp2: number, bytes: number): { iova: number; length: number }[] {
    const page = 4096;
    if (prp1 % 4 !== 0) throw new Error('PRP1 not dword aligned');
    const first = Math.min(bytes, page - (prp1 % page));
    const out = [{ iova: prp1, length: first }];
    let left = bytes - first;
    if (left === 0) return out;
    if (left <= page) {
      if (prp2 % page !== 0) throw new Error('PRP2 entry not page aligned');
      out.push({ iova: prp2, length: left });
      return out;
    }
    let list = prp2;
    const perPage = page / 8;
    for (let slot = 0; left > 0; slot++) {
      const entry = Number(new DataView(this.space.reach(list + 8 * (slot % perPage), 8).slice().buffer).getBigUint64(0, true));
      if (slot % perPage === perPage - 1 && left > page) {
        list = entry; // the last entry of a full list page points to the next list page
        continue;
      }
      if (entry % page !== 0) throw new Error('PRP list entry not page aligned');
      const n = Math.min(left, page);
      out.push({ iova: entry, length: n });
      left -= n;
    }
    return out;
  }

  /** Posts a completion entry (phase tag last, as one 16-byte write would land), unless the CQ is full. */
  private post(q: FakeQueue, cid: number, status: number): void {
    let head = this.bar.region.read32(doorbell(q.qid, true));
    if (this.shadowAt >= 0) {
      const at = this.shadowAt + (doorbell(q.qid, true) - NvmeReg.DOORBELLS);
      this.dword(at + 4096).setUint32(0, q.cqHead, true); // EventIdx: the head it knew
      q.cqHead = head = this.dword(at).getUint32(0, true);
    }
    if ((q.cqTail + 1) % q.entries === head)
      throw new Error(`CQ ${q.qid} overflow: the driver holds more commands than its CQ has room for`);
    const cqe = new DataView(this.space.reach(q.cq + 16 * q.cqTail, 16).buffer, this.space.reach(q.cq + 16 * q.cqTail, 16).byteOffset, 16);
    cqe.setUint32(0, 0x1234, true);
    cqe.setUint32(4, 0, true);
    cqe.setUint32(8, (q.qid << 16) | q.sqHead, true);
    cqe.setUint32(12, cid | (q.phase << 16) | (status << 17), true);
    if (++q.cqTail === q.entries) {
      q.cqTail = 0;
      q.phase ^= 1;
    }
  }
}
