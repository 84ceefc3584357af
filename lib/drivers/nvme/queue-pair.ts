/**
 * A submission queue and its completion queue, in one DmaBuffer mapped
 * once in the controller's address space:
 *
 *   [ SQ: entries x 64 B ][ CQ: entries x 16 B ][ PRP list pages, per command ]
 *
 * (each part starting on a page). Every command gets an identifier (CID)
 * from a pool of `entries - 1`: the most a queue of `entries` slots can
 * hold, so neither ring can overflow and no flow control on the SQ head is
 * needed. A command is a Promise, settled from its completion entry. The
 * CQ is consumed by phase tag: an entry is new when its phase bit equals
 * the phase expected on this pass through the ring, which flips at each
 * wrap. Submissions made in one synchronous run share one SQ doorbell
 * write; a reap ends with one CQ head doorbell write.
 *
 * Commands past their deadline are rejected with ETIMEDOUT; their CID
 * stays taken until their completion arrives or the queue is reset, since
 * the controller may still carry them out. A watchdog (one timer while
 * commands are pending) checks deadlines and the controller's health.
 */
import { AddressSpace, DmaMapping } from '../../address-space';
import { DmaBuffer } from '../../memory';
import { encodeCommand, NvmeCommand } from './commands';
import { Completion, decodeCompletion, phaseOf } from './completion';
import { CompletionMode, Reaper } from './completion-modes';
import { CommandContext, describeCommand, NvmeError, NvmeStatusError } from './errors';
import { buildPrps, PrpListArea } from './prp';
import { CQ_ENTRY_SIZE, NvmeRegisters, SQ_ENTRY_SIZE } from './registers';

/** What a {@link QueuePair} is made of; {@link NvmeController} fills it in. */
export interface QueuePairOptions {
  /** Queue ID: 0 is the admin queue pair. */
  id: number;
  /** Entries of each ring (2 .. CAP.MQES + 1). */
  entries: number;
  /** The controller's registers: the queue's doorbells are there. */
  registers: NvmeRegisters;
  /** The address space the rings are mapped in (the controller's). */
  space: AddressSpace;
  /** The controller's memory page size (CC.MPS). */
  pageSize: number;
  /** PRP list pages per command: 0 limits a transfer to two pages. */
  prpPagesPerCommand: number;
  /** What makes the queue reap its completions: polling or an interrupt. */
  mode: CompletionMode;
  /** A command's time-out in milliseconds when its submitter gives none. */
  defaultTimeoutMs: number;
  /** Checked by the watchdog: an error when the controller is gone (CSTS.CFS). */
  health: () => NvmeError | undefined;
}

/** Options of {@link QueuePair.submit}. */
export interface SubmitOptions {
  /** Reject with ETIMEDOUT after this many milliseconds (from submission, waiting for a free slot included). */
  timeoutMs?: number;
}

interface Waiter {
  cmd: NvmeCommand;
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
  timeoutMs: number;
  deadline: number;
}

interface Slot {
  cid: number;
  prp: PrpListArea;
  /** The command the controller holds in this slot. */
  command?: Waiter;
  /** Its promise was settled (time-out, failure): only the completion is still to come. */
  abandoned: boolean;
}

const WATCHDOG_MS = 50;

const roundUp = (n: number, page: number): number => Math.ceil(n / page) * page;

/** Counters of a queue pair since it was made. */
export interface QueueStats {
  /** Commands submitted (including those still waiting for a slot). */
  submitted: number;
  /** Commands completed by the controller, successfully or with an error status. */
  completed: number;
  /** Most commands held by the controller at once. */
  peakInFlight: number;
  /** Commands rejected with ETIMEDOUT. */
  timedOut: number;
  /** Completions whose CID matched no command. */
  stray: number;
}

/**
 * A submission queue and its completion queue, in one DmaBuffer mapped once
 * in the controller's address space, with the PRP list pages of every
 * command. Commands are promises settled from their completion entries; at
 * most `entries - 1` are held by the controller at once, the others wait in
 * order for a slot. Submissions made in one synchronous run share one
 * doorbell write. A watchdog (one timer while commands are pending) rejects
 * commands past their time-out and fails them all when the controller
 * reports a fatal status.
 */
export class QueuePair implements Reaper {
  /** The queue ID: 0 for the admin queue pair, 1.. for I/O queues. */
  readonly id: number;
  /** Entries of each ring. */
  readonly entries: number;
  /** How its completions are noticed. */
  readonly mode: CompletionMode;
  /** IOVA of the submission queue (64-byte entries). */
  readonly sqIova: bigint;
  /** IOVA of the completion queue (16-byte entries). */
  readonly cqIova: bigint;
  /** Counters since it was made. */
  readonly stats: QueueStats = { submitted: 0, completed: 0, peakInFlight: 0, timedOut: 0, stray: 0 };
  private readonly memory: DmaBuffer;
  private readonly mapping: DmaMapping;
  private readonly view: DataView;
  private readonly cqOffset: number;
  private readonly slots: Slot[] = [];
  private free: Slot[] = [];
  private backlog: Waiter[] = [];
  private sqTail = 0;
  private cqHead = 0;
  private phase = 1;
  private pending = 0;
  private doorbellDue = false;
  private watchdog?: NodeJS.Timeout;
  private closed = false;
  private readonly sqDoorbell: number;
  private readonly cqDoorbell: number;

  /**
   * Allocates and maps the rings and PRP list pages; the controller is told
   * of the queue separately (Create I/O CQ/SQ, or AQA/ASQ/ACQ for queue 0).
   *
   * @throws What {@link DmaBuffer.allocate} and {@link AddressSpace.map} throw.
   */
  constructor(private readonly o: QueuePairOptions) {
    this.id = o.id;
    this.entries = o.entries;
    this.mode = o.mode;
    const sqBytes = roundUp(o.entries * SQ_ENTRY_SIZE, o.pageSize);
    const cqBytes = roundUp(o.entries * CQ_ENTRY_SIZE, o.pageSize);
    const prpBytes = o.prpPagesPerCommand * o.pageSize;
    this.memory = DmaBuffer.allocate(roundUp(sqBytes + cqBytes + (o.entries - 1) * prpBytes, o.pageSize));
    try {
      this.mapping = o.space.map(this.memory, { align: BigInt(o.pageSize) });
    } catch (err) {
      this.memory.close();
      throw err;
    }
    this.view = new DataView(this.memory.buffer);
    this.sqIova = this.mapping.iova;
    this.cqIova = this.mapping.iova + BigInt(sqBytes);
    this.cqOffset = sqBytes;
    for (let cid = 0; cid < o.entries - 1; cid++) {
      const offset = sqBytes + cqBytes + cid * prpBytes;
      this.slots.push({ cid, prp: { iova: this.mapping.iova + BigInt(offset), view: this.view, offset, pages: o.prpPagesPerCommand }, abandoned: false });
    }
    this.free = [...this.slots].reverse();
    this.sqDoorbell = o.registers.sqTailDoorbell(o.id);
    this.cqDoorbell = o.registers.cqHeadDoorbell(o.id);
    this.mode.attach(this);
  }

  /** Commands whose promise is pending (held by the controller or waiting for a slot). */
  get awaited(): number {
    return this.pending + this.backlog.length;
  }

  /** Commands the controller holds now (abandoned ones included). */
  get inFlight(): number {
    return this.slots.length - this.free.length;
  }

  /**
   * Submits `cmd`: writes it into the submission queue (or queues it for a
   * free slot); the doorbell follows at the end of this synchronous run.
   *
   * @returns Its completion. Rejects with an {@link NvmeStatusError} for an error
   *   status, an {@link NvmeError} `ETIMEDOUT`, `ERR_NVME_FATAL` or `ERR_NVME_ABORTED`,
   *   a RangeError for a bad `timeoutMs` or a data pointer PRPs cannot express.
   */
  submit(cmd: NvmeCommand, options: SubmitOptions = {}): Promise<Completion> {
    return new Promise<Completion>((resolve, reject) => {
      if (this.closed) {
        reject(new NvmeError(`${describeCommand(this.context(cmd))}: the queue is closed`, 'ERR_NVME_ABORTED', this.context(cmd)));
        return;
      }
      const timeoutMs = options.timeoutMs ?? this.o.defaultTimeoutMs;
      if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
        reject(new RangeError(`timeoutMs must be a non-negative number of milliseconds, not ${timeoutMs}`));
        return;
      }
      const waiter: Waiter = { cmd, resolve, reject, timeoutMs, deadline: Date.now() + timeoutMs };
      this.stats.submitted++;
      const slot = this.free.pop();
      if (slot) this.issue(slot, waiter);
      else this.backlog.push(waiter);
      this.armWatchdog();
    });
  }

  private context(cmd: NvmeCommand, cid?: number): CommandContext {
    return { command: cmd.name, opcode: cmd.opcode, queue: this.id, cid };
  }

  /** Writes the command into the SQ at the tail; the doorbell follows at the end of this synchronous run. */
  private issue(slot: Slot, w: Waiter): void {
    let prp: { prp1: bigint; prp2: bigint };
    try {
      prp = w.cmd.data ? buildPrps(w.cmd.data, this.o.pageSize, slot.prp) : { prp1: w.cmd.prp1 ?? 0n, prp2: 0n };
    } catch (err) {
      w.reject(err as Error); // a data pointer PRPs cannot express: the slot goes on to the next command
      this.release(slot);
      return;
    }
    encodeCommand(this.view, this.sqTail * SQ_ENTRY_SIZE, w.cmd, slot.cid, prp.prp1, prp.prp2);
    this.sqTail = (this.sqTail + 1) % this.entries;
    slot.command = w;
    slot.abandoned = false;
    this.pending++;
    this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.inFlight);
    if (!this.doorbellDue) {
      this.doorbellDue = true;
      queueMicrotask(this.ringSq);
    }
    this.mode.kick();
  }

  private readonly ringSq = (): void => {
    this.doorbellDue = false;
    if (!this.closed) this.o.registers.ring(this.sqDoorbell, this.sqTail);
  };

  /** Consumes every new completion entry, settles their commands, then writes the CQ head doorbell once. */
  reap(): number {
    if (this.closed) return 0;
    let n = 0;
    for (;;) {
      const at = this.cqOffset + this.cqHead * CQ_ENTRY_SIZE;
      if (phaseOf(this.view, at) !== this.phase) break;
      const c = decodeCompletion(this.view, at);
      if (++this.cqHead === this.entries) {
        this.cqHead = 0;
        this.phase ^= 1;
      }
      n++;
      this.complete(c);
    }
    if (n > 0) this.o.registers.ring(this.cqDoorbell, this.cqHead);
    return n;
  }

  private complete(c: Completion): void {
    const slot = this.slots[c.cid];
    const w = slot?.command;
    if (!slot || !w) {
      this.stats.stray++;
      return;
    }
    slot.command = undefined;
    const abandoned = slot.abandoned;
    slot.abandoned = false;
    this.release(slot);
    if (abandoned) return;
    this.pending--;
    this.stats.completed++;
    if (c.status === 0) w.resolve(c);
    else w.reject(new NvmeStatusError(c.status, c.result, this.context(w.cmd, c.cid)));
  }

  /** A free slot goes to the oldest waiting command, if any. */
  private release(slot: Slot): void {
    const next = this.backlog.shift();
    if (next) this.issue(slot, next);
    else this.free.push(slot);
  }

  private armWatchdog(): void {
    if (this.watchdog || this.awaited === 0) return;
    this.watchdog = setInterval(this.check, WATCHDOG_MS);
  }

  private readonly check = (): void => {
    this.reap(); // what has arrived is not late
    const fatal = this.o.health();
    if (fatal) {
      this.fail(fatal);
      return;
    }
    const now = Date.now();
    for (const slot of this.slots) {
      const w = slot.command;
      if (!w || slot.abandoned || w.deadline > now) continue;
      slot.abandoned = true;
      this.pending--;
      this.stats.timedOut++;
      w.reject(this.timeout(w, slot.cid));
    }
    const late = this.backlog.filter((w) => w.deadline <= now);
    if (late.length > 0) {
      this.backlog = this.backlog.filter((w) => w.deadline > now);
      for (const w of late) {
        this.stats.timedOut++;
        w.reject(this.timeout(w));
      }
    }
    if (this.awaited === 0) {
      this.disarmWatchdog();
      this.mode.idle();
    }
  };

  private timeout(w: Waiter, cid?: number): NvmeError {
    const where = cid === undefined ? 'it never got a free slot' : 'the controller still holds it (its identifier stays taken until it completes or the controller is reset)';
    return new NvmeError(`${describeCommand(this.context(w.cmd, cid))}: no completion within ${w.timeoutMs} ms; ${where}`, 'ETIMEDOUT', this.context(w.cmd, cid));
  }

  private disarmWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** Rejects every pending command with `error`; their slots stay taken until `resetRings()`. */
  fail(error: NvmeError): void {
    for (const slot of this.slots) {
      const w = slot.command;
      if (!w || slot.abandoned) continue;
      slot.abandoned = true;
      this.pending--;
      w.reject(withContext(error, this.context(w.cmd, slot.cid)));
    }
    const waiting = this.backlog;
    this.backlog = [];
    for (const w of waiting) w.reject(withContext(error, this.context(w.cmd)));
    this.disarmWatchdog();
    this.mode.idle();
  }

  /**
   * After the controller forgot this queue (a reset, or the queue deleted):
   * abandoned commands will not complete, so their slots are free again,
   * and the rings start over (zeroed CQ, phase 1).
   */
  resetRings(): void {
    if (this.pending > 0 || this.backlog.length > 0) throw new Error('resetRings() with commands pending: fail() them first');
    for (const slot of this.slots) {
      slot.command = undefined;
      slot.abandoned = false;
    }
    this.free = [...this.slots].reverse();
    new Uint8Array(this.memory.buffer).fill(0);
    this.sqTail = 0;
    this.cqHead = 0;
    this.phase = 1;
  }

  /** Fails what is pending (ERR_NVME_ABORTED), detaches the mode, unmaps and frees the rings. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.fail(new NvmeError(`queue ${this.id} was closed`, 'ERR_NVME_ABORTED'));
    this.closed = true;
    this.mode.detach();
    this.mapping.unmap();
    this.memory.close();
  }
}

/** A copy of a queue-wide error, naming one command. */
function withContext(error: NvmeError, context: CommandContext): NvmeError {
  return new NvmeError(`${describeCommand(context)}: ${error.message}`, error.code, context);
}
