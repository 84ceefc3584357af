/**
 * A submission queue and its completion queue, in one DmaBuffer mapped
 * once in the controller's address space:
 *
 *   [ SQ: entries x 64 B ][ CQ: entries x 16 B ][ PRP list pages, per command ]
 *
 * (each part starting on a page). Every command gets an identifier (CID)
 * from a preallocated free list of `entries - 1`: the most a queue of
 * `entries` slots can hold, so neither ring can overflow and no flow control
 * on the SQ head is needed. The CQ is consumed by phase tag: an entry is new
 * when its phase bit equals the phase expected on this pass through the
 * ring, which flips at each wrap.
 *
 * The per-command path is lean: entries are written and read through one
 * Uint32Array over the rings, PRP entries are numbers written as 32-bit
 * halves, what the queue keeps of a command lives in typed arrays and plain
 * arrays indexed by CID, and a command submitted with a callback
 * ({@link QueuePair.transfer}, {@link QueuePair.send}) costs no object, no
 * closure and no promise. Submissions made in one synchronous run (or from
 * the callbacks of one reap) share one SQ tail doorbell write; a reap ends
 * with one CQ head doorbell write. {@link QueuePair.submit} is the same
 * path with a Promise around it.
 *
 * Commands past their deadline fail with ETIMEDOUT; their CID stays taken
 * until their completion arrives or the queue is reset, since the
 * controller may still carry them out. A watchdog (one interval timer while
 * commands are pending) checks deadlines and the controller's health; a
 * command's deadline is set when the watchdog first sees it (so no clock is
 * read per command): it fails between `timeoutMs` and `timeoutMs` plus two
 * watchdog periods after it was submitted, never before.
 *
 * A Read or Write into a DmaMapping keeps that mapping by CID until it
 * completes: peer memory (a P2P phys_list under iommufd) can be revoked
 * while the controller holds the command, and then the command fails with
 * an NvmeRevokedError naming the mapping, whatever the controller answered;
 * a command still waiting for a CID when its mapping is revoked is never
 * written.
 */
import { AddressSpace, DmaMapping } from '../../address-space';
import { VfioStateError } from '../../errors';
import { DmaBuffer } from '../../memory';
import { encodeCommand, NvmeCommand, writeSubmission } from './commands';
import { Completion, decodeCompletion } from './completion';
import { CompletionMode, Reaper } from './completion-modes';
import { CommandContext, describeCommand, NvmeError, NvmeRevokedError, NvmeStatusError } from './errors';
import { buildPrps, contiguousPrp2, DmaRange, listPagesFor, PrpListArea, rangesOf, revokedRefusal } from './prp';
import { CQ_ENTRY_SIZE, NvmeRegisters, SQ_ENTRY_SIZE } from './registers';
import { checkQueuePairOptions } from './queue-options';
import { kindOf } from '../../validate';

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

/** Options of {@link QueuePair.submit} and the other submissions. */
export interface SubmitOptions {
  /** Fail with ETIMEDOUT after this many milliseconds (from submission, waiting for a free slot included). */
  timeoutMs?: number;
}

/**
 * How a command submitted with a callback ends, called once: `error` is
 * undefined on success, else an {@link NvmeError} (an
 * {@link NvmeStatusError} for an error status; `ETIMEDOUT`,
 * `ERR_NVME_FATAL`, `ERR_NVME_ABORTED`; an {@link NvmeRevokedError}
 * `ERR_NVME_REVOKED` when its data mapping was revoked meanwhile) or a RangeError for a data pointer
 * PRPs cannot express. `tag` is what the submitter passed along (for
 * telling commands apart without a closure each), `result` the completion's
 * DW0 (0 when there was no completion).
 *
 * It is called from the queue's reap (on an event-loop turn in polled mode,
 * from the interrupt's callback in interrupt mode), never from inside the
 * call that submitted the command. It may submit again: those commands go
 * out with the reap's one doorbell write. What it throws is an uncaught
 * exception, as from an event listener.
 */
export type IoCallback<T = unknown> = (error: Error | undefined, tag: T, result: number) => void;

/** A settled-by-promise command: what its CID's tag holds. */
interface Waiter {
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
}

/** A Read or Write for {@link QueuePair.transferAsync}: the arguments of {@link QueuePair.transfer} but the callback. */
export interface Transfer {
  /** The opcode ({@link IoOpcode}). */
  opcode: number;
  /** Its name, for messages. */
  name: string;
  /** The namespace. */
  nsid: number;
  /** Command dword 10 (the starting LBA's low half). */
  cdw10: number;
  /** Command dword 11 (its high half). */
  cdw11: number;
  /** Command dword 12 (block count, 0's based; FUA). */
  cdw12: number;
  /** The data's IOVA: dword aligned, below 2^53. */
  address: number;
  /** The data's bytes (at least 1). */
  length: number;
  /** Its time-out (default: the controller's). */
  options?: SubmitOptions;
  /** The mapping the data is in, if any: the command fails with an {@link NvmeRevokedError} if it is revoked while in flight. */
  mapping?: DmaMapping;
}

/** A command that waits for a free CID (the slow path: it has an object). */
interface Request {
  cmd: NvmeCommand;
  /** Its data, checked; undefined for none (`cmd.prp1` and `prp2` may then be raw PRPs). */
  ranges: DmaRange[] | undefined;
  /** The mapping its data is in, when it came from one (checked for revocation when it is written and when it completes). */
  mapping?: DmaMapping;
  /** Undefined: a promise's command, whose {@link Waiter} is the tag. */
  callback: IoCallback | undefined;
  tag: unknown;
  timeoutMs: number;
  deadline: number;
}

/** The callback transferAsync hands to transfer: never called, it marks a promise's command. */
const AWAITED: IoCallback<Waiter> = () => undefined;

/** What a CID is doing. */
const FREE = 0;
const CALLBACK = 1;
const PROMISE = 2;
const KIND = 3;
/** Given up: its caller was told it failed, only its completion is still to come. */
const ABANDONED = 4;

const WATCHDOG_MS = 50;

const NO_SHADOW = new Uint32Array(0);

const roundUp = (n: number, page: number): number => Math.ceil(n / page) * page;

/** Counters of a queue pair since it was made. */
export interface QueueStats {
  /** Commands submitted (including those still waiting for a slot). */
  submitted: number;
  /** Commands completed by the controller, successfully or with an error status. */
  completed: number;
  /** Most commands held by the controller at once. */
  peakInFlight: number;
  /** Commands failed with ETIMEDOUT. */
  timedOut: number;
  /** Completions whose CID matched no command. */
  stray: number;
  /** Reaps that found completions (completed / reaps: completions per reap). */
  reaps: number;
  /** Doorbell register writes (SQ tail and CQ head; with shadow doorbells, only those the EventIdx asked for). */
  doorbellWrites: number;
}

/**
 * A submission queue and its completion queue, in one DmaBuffer mapped once
 * in the controller's address space, with the PRP list pages of every
 * command. A command completes through a callback ({@link QueuePair.transfer},
 * {@link QueuePair.send}: nothing allocated per command) or a promise
 * ({@link QueuePair.submit}); at most `entries - 1` are held by the
 * controller at once, the others wait in order for a slot. Submissions made
 * in one synchronous run share one doorbell write. A watchdog (one timer
 * while commands are pending) fails commands past their time-out, and all of
 * them when the controller reports a fatal status.
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
  readonly stats: QueueStats = { submitted: 0, completed: 0, peakInFlight: 0, timedOut: 0, stray: 0, reaps: 0, doorbellWrites: 0 };
  private readonly memory: DmaBuffer;
  private readonly mapping: DmaMapping;
  /** The rings and PRP lists as 32-bit words. */
  private readonly u32: Uint32Array;
  /** Word index of the CQ's first entry. */
  private readonly cqWord: number;
  private readonly pageSize: number;
  private readonly defaultTimeoutMs: number;
  private readonly registers: NvmeRegisters;
  private readonly sqDoorbell: number;
  private readonly cqDoorbell: number;
  /** CIDs: entries - 1. */
  private readonly slots: number;
  /** Free CIDs, a stack: the top `freeTop` entries. */
  private readonly freeCids: Uint16Array;
  private freeTop = 0;
  // What each CID holds, by CID: `meta`, one store per command: the kind
  // (FREE / CALLBACK / PROMISE), ABANDONED (its caller was told it failed,
  // only its completion is still to come) and the opcode; the callback and
  // tag (a PROMISE's tag is its Waiter); the name, for messages; time-out
  // (a plain array: small integers, no conversion to float) and deadline (0:
  // not yet seen by the watchdog).
  private readonly meta: Uint16Array;
  private readonly callbacks: (IoCallback | undefined)[];
  private readonly tags: unknown[];
  private readonly names: string[];
  /** The data mapping of each CID's command (null for none). */
  private readonly mappings: (DmaMapping | null)[];
  private readonly timeouts: number[];
  private readonly deadlines: Float64Array;
  private readonly areas: PrpListArea[] = [];
  /** PRP1 and PRP2 of the general path. */
  private readonly prp = new Float64Array(2);
  private backlog: Request[] = [];
  private sqTail = 0;
  private cqHead = 0;
  private phase = 1;
  private pending = 0;
  // Shadow doorbells (see useShadowDoorbells): the shadow and EventIdx
  // buffers as words, and the indexes of this queue's SQ tail and CQ head in
  // them (EventIdx at the same index plus `eventOffset`); -1 without.
  private shadow: Uint32Array = NO_SHADOW;
  private sqShadow = -1;
  private cqShadow = -1;
  private eventOffset = 0;
  /** The SQ tail moved since the doorbell was last written. */
  private sqDue = false;
  private reaping = false;
  /** handOn() is under way: a CID released meanwhile is only freed, the loop hands it on. */
  private handingOn = false;
  private watchdog?: NodeJS.Timeout;
  /** close() has begun: no new commands. */
  private closing = false;
  private closed = false;

  /**
   * Allocates and maps the rings and PRP list pages; the controller is told
   * of the queue separately (Create I/O CQ/SQ, or AQA/ASQ/ACQ for queue 0).
   *
   * @throws What {@link DmaBuffer.allocate} and {@link AddressSpace.map} throw.
   */
  constructor(private readonly o: QueuePairOptions) {
    checkQueuePairOptions(o);
    this.id = o.id;
    this.entries = o.entries;
    this.mode = o.mode;
    this.pageSize = o.pageSize;
    this.defaultTimeoutMs = o.defaultTimeoutMs;
    this.registers = o.registers;
    const sqBytes = roundUp(o.entries * SQ_ENTRY_SIZE, o.pageSize);
    const cqBytes = roundUp(o.entries * CQ_ENTRY_SIZE, o.pageSize);
    const prpBytes = o.prpPagesPerCommand * o.pageSize;
    this.slots = o.entries - 1;
    this.memory = DmaBuffer.allocate(roundUp(sqBytes + cqBytes + this.slots * prpBytes, o.pageSize));
    try {
      this.mapping = o.space.map(this.memory, { align: BigInt(o.pageSize) });
    } catch (err) {
      this.memory.close();
      throw err;
    }
    this.u32 = new Uint32Array(this.memory.buffer);
    this.sqIova = this.mapping.iova;
    this.cqIova = this.mapping.iova + BigInt(sqBytes);
    this.cqWord = sqBytes / 4;
    this.freeCids = new Uint16Array(this.slots);
    this.meta = new Uint16Array(this.slots);
    this.timeouts = new Array<number>(this.slots).fill(0);
    this.deadlines = new Float64Array(this.slots);
    this.callbacks = new Array<IoCallback | undefined>(this.slots).fill(undefined);
    this.tags = new Array<unknown>(this.slots).fill(undefined);
    this.names = new Array<string>(this.slots).fill('');
    this.mappings = new Array<DmaMapping | null>(this.slots).fill(null);
    for (let cid = 0; cid < this.slots; cid++) {
      const offset = sqBytes + cqBytes + cid * prpBytes;
      this.areas.push({ dmaAddress: this.mapping.dmaAddress + offset, words: this.u32, word: offset / 4, pages: o.prpPagesPerCommand });
    }
    this.freeAll();
    this.sqDoorbell = o.registers.sqTailDoorbell(o.id);
    this.cqDoorbell = o.registers.cqHeadDoorbell(o.id);
    this.mode.attach(this);
  }

  /** Every CID free, the lowest on top. */
  private freeAll(): void {
    for (let i = 0; i < this.slots; i++) this.freeCids[i] = this.slots - 1 - i;
    this.freeTop = this.slots;
  }

  /** Commands whose caller still waits (held by the controller or waiting for a slot). */
  get awaited(): number {
    return this.pending + this.backlog.length;
  }

  /** Commands the controller holds now (abandoned ones included). */
  get inFlight(): number {
    return this.slots - this.freeTop;
  }

  /**
   * Submits `cmd`: writes it into the submission queue (or queues it for a
   * free slot); the doorbell follows at the end of this synchronous run.
   *
   * @returns Its completion. Rejects with an {@link NvmeStatusError} for an error
   *   status, an {@link NvmeError} `ETIMEDOUT`, `ERR_NVME_FATAL` or `ERR_NVME_ABORTED`,
   *   an {@link NvmeRevokedError} `ERR_NVME_REVOKED` when its data mapping was revoked meanwhile,
   *   a RangeError for a bad `timeoutMs` or a data pointer PRPs cannot express,
   *   a TypeError or RangeError for a malformed `cmd` (no opcode in 0..255, no name).
   */
  submit(cmd: NvmeCommand, options: SubmitOptions = {}): Promise<Completion> {
    return new Promise<Completion>((resolve, reject) => {
      try {
        this.enqueue(cmd, undefined, { resolve, reject }, options);
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  /**
   * Submits `cmd`, which ends through `callback` (see {@link IoCallback}):
   * the same as {@link QueuePair.submit} without a promise.
   *
   * @throws TypeError when `callback` is not a function; TypeError or
   *   RangeError for a malformed `cmd` (no opcode in 0..255, no name);
   *   RangeError for a bad `timeoutMs` or data segments (before anything is submitted).
   */
  send<T>(cmd: NvmeCommand, callback: IoCallback<T>, tag: T, options: SubmitOptions = {}): void {
    if (typeof callback !== 'function') throw new TypeError('callback must be a function');
    this.enqueue(cmd, callback as IoCallback, tag, options);
  }

  private enqueue(cmd: NvmeCommand, callback: IoCallback | undefined, tag: unknown, options: SubmitOptions): void {
    checkCommand(cmd);
    const timeoutMs = this.timeoutOf(options);
    let bytes = 0;
    for (const s of cmd.data ?? []) bytes += s.length;
    const ranges = cmd.data ? rangesOf(cmd.data, bytes) : undefined;
    const r: Request = { cmd, ranges, callback, tag, timeoutMs, deadline: Date.now() + timeoutMs };
    if (this.closing) {
      this.refuse(r);
      return;
    }
    this.stats.submitted++;
    if (this.freeTop > 0) this.issue(this.freeCids[--this.freeTop], r);
    else this.wait(r);
  }

  /**
   * The lean path of Read and Write (what {@link NvmeNamespace.readInto}
   * uses): `length` bytes at IOVA `address`, contiguous, CDW10-12 as given;
   * completes through `callback`. Allocates nothing when a CID is free.
   *
   * @param opcode - The opcode ({@link IoOpcode}).
   * @param name - Its name, for messages.
   * @param nsid - The namespace.
   * @param cdw10 - Command dword 10 (the starting LBA's low half).
   * @param cdw11 - Command dword 11 (its high half).
   * @param cdw12 - Command dword 12 (block count, 0's based; FUA).
   * @param address - The data's IOVA: dword aligned, below 2^53.
   * @param length - The data's bytes (at least 1).
   * @param callback - Called once when it ends ({@link IoCallback}).
   * @param tag - Passed to `callback`.
   * @param options - Its time-out (default: the controller's).
   * @param mapping - The DmaMapping the data is in, if any (already checked
   *   by the caller to hold it): a revocation of it while the command is in
   *   flight fails the command with an {@link NvmeRevokedError}.
   * @throws TypeError when `callback` is not a function; RangeError for an
   *   unaligned `address`, a transfer longer than the PRP list pages cover,
   *   or a bad `timeoutMs` (nothing is submitted then).
   */
  transfer<T>(
    opcode: number,
    name: string,
    nsid: number,
    cdw10: number,
    cdw11: number,
    cdw12: number,
    address: number,
    length: number,
    callback: IoCallback<T>,
    tag: T,
    options?: SubmitOptions,
    mapping?: DmaMapping,
  ): void {
    if (typeof callback !== 'function') throw new TypeError('callback must be a function');
    if (
      typeof opcode !== 'number' ||
      typeof name !== 'string' ||
      typeof nsid !== 'number' ||
      typeof cdw10 !== 'number' ||
      typeof cdw11 !== 'number' ||
      typeof cdw12 !== 'number' ||
      typeof address !== 'number' ||
      typeof length !== 'number'
    )
      throw badTransfer({ opcode, name, nsid, cdw10, cdw11, cdw12, address, length });
    // transferAsync's commands are settled as a promise: their tag is their Waiter
    const kind = callback === AWAITED ? PROMISE : CALLBACK;
    const cb = kind === PROMISE ? undefined : (callback as IoCallback);
    const timeoutMs = options === undefined ? this.defaultTimeoutMs : this.timeoutOf(options);
    if (this.freeTop === 0 || this.closing) {
      // no free CID (or closing): the general path, with a request object;
      // what PRPs cannot express is refused now, not when a CID frees up
      this.checkContiguous(address, length);
      const cmd: NvmeCommand = { name, opcode, nsid, cdw10, cdw11, cdw12 };
      const r: Request = { cmd, ranges: [{ address, length }], mapping, callback: cb, tag, timeoutMs, deadline: Date.now() + timeoutMs };
      if (this.closing) return this.refuse(r);
      this.stats.submitted++;
      return this.wait(r);
    }
    const cid = this.freeCids[this.freeTop - 1];
    // PRP2, as contiguousPrp2 gives it, without a call for one or two pages
    // (integer operations only: an IOVA below 2^31 is a small integer)
    const second = address - (address & (this.pageSize - 1)) + this.pageSize;
    const end = address + length;
    const prp2 =
      (address & 3) === 0 && end <= second + this.pageSize
        ? end <= second
          ? 0
          : second
        : contiguousPrp2(address, length, this.pageSize, this.areas[cid]); // may throw: nothing taken yet
    this.freeTop--;
    this.stats.submitted++;
    this.occupy(cid, kind, cb, tag, name, opcode, timeoutMs, 0);
    if (mapping !== undefined) this.mappings[cid] = mapping;
    writeSubmission(this.u32, this.sqTail << 4, opcode, cid, nsid, address, prp2, cdw10, cdw11, cdw12, 0, 0, 0);
    this.advance();
  }

  /**
   * {@link QueuePair.transfer} settled as a promise: what
   * {@link NvmeNamespace.read} and {@link NvmeNamespace.write} use.
   *
   * @returns The completion; rejects as {@link QueuePair.submit} does.
   */
  transferAsync(t: Transfer): Promise<Completion> {
    if (t === null || typeof t !== 'object') return Promise.reject(new TypeError(`t must be a Transfer object, not ${kindOf(t)}`));
    return new Promise<Completion>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      this.transfer(t.opcode, t.name, t.nsid, t.cdw10, t.cdw11, t.cdw12, t.address, t.length, AWAITED, waiter, t.options, t.mapping);
    });
  }

  /**
   * What {@link contiguousPrp2} would refuse, checked without writing a list:
   * an IOVA that is not dword aligned, more PRP list pages than a command has.
   */
  private checkContiguous(address: number, length: number): void {
    if ((address & 3) !== 0) throw new RangeError(`the data starts at IOVA 0x${address.toString(16)}: NVMe needs it dword aligned`);
    const first = this.pageSize - (address & (this.pageSize - 1));
    const entries = length <= first ? 1 : 1 + Math.ceil((length - first) / this.pageSize);
    const pages = listPagesFor(entries, this.pageSize);
    const have = this.areas.length > 0 ? this.areas[0].pages : 0;
    if (pages > have) {
      throw new RangeError(`the transfer needs ${entries} PRP entries (${pages} list pages); this queue has ${have} per command`);
    }
  }

  private timeoutOf(options: SubmitOptions): number {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    const t = options.timeoutMs;
    if (t === undefined) return this.defaultTimeoutMs;
    if (typeof t !== 'number') throw new TypeError(`timeoutMs must be a number of milliseconds, not ${kindOf(t)}`);
    if (!(t >= 0) || t === Infinity) throw new RangeError(`timeoutMs must be a non-negative number of milliseconds, not ${t}`);
    return t;
  }

  /** A command submitted while the queue closes: ERR_NVME_ABORTED, asynchronously. */
  private refuse(r: Request): void {
    const context: CommandContext = { command: r.cmd.name, opcode: r.cmd.opcode, queue: this.id };
    const error = new NvmeError(`${describeCommand(context)}: the queue is closed`, 'ERR_NVME_ABORTED', context);
    if (r.callback) process.nextTick(r.callback, error, r.tag, 0);
    else (r.tag as Waiter).reject(error);
  }

  /** Queues `r` for a free CID. */
  private wait(r: Request): void {
    this.backlog.push(r);
    this.mode.kick();
    if (this.watchdog === undefined) this.armWatchdog();
  }

  /** Writes `r` into the SQ at the tail under `cid`; a data pointer PRPs cannot express fails it and hands the CID on. */
  private issue(cid: number, r: Request): void {
    if (r.mapping !== undefined && r.mapping.revoked) {
      // revoked while it waited for a CID: never written
      this.release(cid);
      this.deliver(r.callback ? CALLBACK : PROMISE, r.callback, r.tag, revokedRefusal(r.mapping));
      return;
    }
    try {
      buildPrps(r.ranges ?? [], this.pageSize, this.areas[cid], this.prp);
    } catch (err) {
      this.release(cid);
      this.deliver(r.callback ? CALLBACK : PROMISE, r.callback, r.tag, err as Error);
      return;
    }
    if (!r.ranges) {
      if (r.cmd.prp1 !== undefined) this.prp[0] = Number(r.cmd.prp1);
      if (r.cmd.prp2 !== undefined) this.prp[1] = Number(r.cmd.prp2);
    }
    this.occupy(cid, r.callback ? CALLBACK : PROMISE, r.callback, r.tag, r.cmd.name, r.cmd.opcode, r.timeoutMs, r.deadline);
    if (r.mapping !== undefined) this.mappings[cid] = r.mapping;
    encodeCommand(this.u32, this.sqTail << 4, r.cmd, cid, this.prp[0], this.prp[1]);
    this.advance();
  }

  private occupy(
    cid: number,
    kind: number,
    callback: IoCallback | undefined,
    tag: unknown,
    name: string,
    opcode: number,
    timeoutMs: number,
    deadline: number,
  ): void {
    this.meta[cid] = kind | (opcode << 8);
    this.callbacks[cid] = callback;
    this.tags[cid] = tag;
    this.names[cid] = name;
    this.timeouts[cid] = timeoutMs;
    this.deadlines[cid] = deadline;
  }

  /** After an entry was written at the tail: the tail moves, the doorbell is due, the mode and the watchdog are told. */
  private advance(): void {
    if (++this.sqTail === this.entries) this.sqTail = 0;
    this.pending++;
    const inFlight = this.slots - this.freeTop;
    if (inFlight > this.stats.peakInFlight) this.stats.peakInFlight = inFlight;
    if (!this.sqDue) {
      this.sqDue = true;
      if (!this.reaping) queueMicrotask(this.ringSq); // a reap rings once at its end
    }
    // the mode goes idle only when nothing is awaited: it needs a kick when the first command is
    if (this.pending === 1) this.mode.kick();
    if (this.watchdog === undefined) this.armWatchdog();
  }

  private readonly ringSq = (): void => {
    if (!this.sqDue) return;
    this.sqDue = false;
    if (!this.closed) this.ring(this.sqDoorbell, this.sqShadow, this.sqTail);
  };

  /** Writes `value` to the doorbell register `doorbell`, or to its shadow at `shadow` and then the register only if the EventIdx asks. */
  private ring(doorbell: number, shadow: number, value: number): void {
    if (shadow >= 0) {
      // as Linux does: the shadow first (ordered after the entries), a full
      // barrier (Atomics.store), then the EventIdx the controller last wrote
      const s = this.shadow;
      const old = s[shadow];
      Atomics.store(s, shadow, value);
      const event = Atomics.load(s, shadow + this.eventOffset);
      if (((value - event - 1) & 0xffff) >= ((value - old) & 0xffff)) return; // the controller will look by itself
    }
    this.stats.doorbellWrites++;
    try {
      this.registers.ring(doorbell, value);
    } catch (err) {
      // the registers cannot be reached (the device closed, memory decoding
      // off): what is pending fails through its callbacks and promises
      this.fail(unreachable(err));
    }
  }

  /** Whether it writes shadow doorbells (see useShadowDoorbells). */
  get shadowDoorbells(): boolean {
    return this.sqShadow >= 0;
  }

  /**
   * From now on, writes this queue's SQ tail and CQ head to shadow doorbells
   * first, and the doorbell registers only when the controller's EventIdx
   * asks for it (after Doorbell Buffer Config, which the controller sends).
   *
   * @param words - The shadow doorbell buffer as 32-bit words, laid out as
   *   the doorbell registers, followed at `eventOffset` words by the EventIdx buffer.
   * @param eventOffset - Words from a shadow doorbell to its EventIdx.
   * @throws TypeError or RangeError when `words` does not hold this queue's
   *   shadow doorbells and EventIdx entries at `eventOffset`.
   */
  useShadowDoorbells(words: Uint32Array, eventOffset: number): void {
    if (!(words instanceof Uint32Array)) throw new TypeError(`words must be a Uint32Array, not ${kindOf(words)}`);
    if (typeof eventOffset !== 'number') throw new TypeError(`eventOffset must be a number, not ${kindOf(eventOffset)}`);
    const base = this.registers.sqTailDoorbell(0);
    const sq = (this.sqDoorbell - base) / 4;
    const cq = (this.cqDoorbell - base) / 4;
    // Both of this queue's shadow doorbells and their EventIdx words must lie inside `words`.
    const last = Math.max(sq, cq) + eventOffset;
    if (!Number.isInteger(eventOffset) || eventOffset <= Math.max(sq, cq) || last >= words.length)
      throw new RangeError(
        `eventOffset ${eventOffset} and words (${words.length}) must hold queue ${this.id}'s shadow doorbells (words ${sq} and ${cq}) and their EventIdx entries after them`,
      );
    this.shadow = words;
    this.eventOffset = eventOffset;
    this.sqShadow = sq;
    this.cqShadow = cq;
  }

  /**
   * Consumes every new completion entry, ends their commands (callbacks
   * called, promises settled), then writes the CQ head doorbell once and the
   * SQ tail doorbell once if the callbacks submitted more.
   *
   * @returns How many entries it consumed (0 while a reap of this queue is under way).
   */
  reap(): number {
    if (this.closed || this.reaping) return 0;
    const cq = this.u32;
    let n = 0;
    this.reaping = true;
    try {
      for (;;) {
        const w = this.cqWord + (this.cqHead << 2);
        const dw3 = cq[w + 3];
        if (((dw3 >>> 16) & 1) !== this.phase) break;
        if (++this.cqHead === this.entries) {
          this.cqHead = 0;
          this.phase ^= 1;
        }
        n++;
        this.complete(dw3 & 0xffff, dw3 >>> 17, w);
      }
    } finally {
      this.reaping = false;
      if (n > 0 && !this.closed) {
        this.stats.reaps++;
        this.ring(this.cqDoorbell, this.cqShadow, this.cqHead);
      }
      this.ringSq();
    }
    return n;
  }

  /** The completion entry at word `w`: CID `cid` with status `status`. */
  private complete(cid: number, status: number, w: number): void {
    const meta = cid < this.slots ? this.meta[cid] : FREE;
    const kind = meta & KIND;
    if (kind === FREE) {
      this.stats.stray++;
      return;
    }
    const mapping = this.mappings[cid];
    if (mapping !== null) this.mappings[cid] = null;
    if ((meta & ABANDONED) !== 0) {
      this.meta[cid] = FREE;
      this.release(cid);
      return;
    }
    const callback = this.callbacks[cid];
    const tag = this.tags[cid];
    const result = this.u32[w];
    let error: NvmeError | undefined = status === 0 ? undefined : new NvmeStatusError(status, result, this.context(cid));
    if (mapping !== null && mapping.revoked) {
      // its memory went away while the controller held it: whatever it answered, the data did not reliably move
      error = new NvmeRevokedError(this.context(cid), mapping, error as NvmeStatusError | undefined);
    }
    const completion = kind === PROMISE && error === undefined ? decodeCompletion(this.u32, w) : undefined;
    this.meta[cid] = FREE;
    this.callbacks[cid] = undefined;
    this.tags[cid] = undefined;
    this.pending--;
    this.stats.completed++;
    this.release(cid);
    if (kind === CALLBACK) callback!(error, tag, result);
    else if (error) (tag as Waiter).reject(error);
    else (tag as Waiter).resolve(completion!);
  }

  /** Tells the submitter of a command that it failed. */
  private deliver(kind: number, callback: IoCallback | undefined, tag: unknown, error: Error): void {
    if (kind === CALLBACK) callback!(error, tag, 0);
    else (tag as Waiter).reject(error);
  }

  private context(cid: number): CommandContext {
    return { command: this.names[cid], opcode: this.meta[cid] >>> 8, queue: this.id, cid };
  }

  /** A free CID goes to the oldest waiting command, if any. */
  private release(cid: number): void {
    if (this.backlog.length === 0 || this.handingOn) this.freeCids[this.freeTop++] = cid;
    else this.handOn(cid);
  }

  /**
   * Hands `cid` to the oldest waiting command, and on to the next while a
   * command fails before it is written (its CID comes back through a
   * release() that only frees it): a loop, not a recursion, however long
   * the backlog of failing commands (20,000 overflowed the stack).
   */
  private handOn(cid: number): void {
    this.handingOn = true;
    try {
      this.freeCids[this.freeTop++] = cid;
      while (this.backlog.length > 0 && this.freeTop > 0) this.issue(this.freeCids[--this.freeTop], this.backlog.shift()!);
    } finally {
      this.handingOn = false;
    }
  }

  /**
   * Marks the command under `cid` as given up (its CID stays taken until its
   * completion comes) and returns how to tell its submitter; nothing is called yet.
   */
  private abandon(cid: number): [number, IoCallback | undefined, unknown, CommandContext] {
    const told: [number, IoCallback | undefined, unknown, CommandContext] = [
      this.meta[cid] & KIND,
      this.callbacks[cid],
      this.tags[cid],
      this.context(cid),
    ];
    this.meta[cid] |= ABANDONED;
    this.callbacks[cid] = undefined;
    this.tags[cid] = undefined;
    this.pending--;
    return told;
  }

  /** The CIDs of commands whose submitter still waits, held by the controller. */
  private awaitedCids(): number[] {
    const out: number[] = [];
    for (let cid = 0; cid < this.slots; cid++) if ((this.meta[cid] & KIND) !== FREE && (this.meta[cid] & ABANDONED) === 0) out.push(cid);
    return out;
  }

  private armWatchdog(): void {
    if (this.watchdog || this.awaited === 0) return;
    this.watchdog = setInterval(this.check, WATCHDOG_MS);
  }

  private readonly check = (): void => {
    if (this.closed) return this.idleIfDone();
    this.reap(); // what has arrived is not late
    let fatal: NvmeError | undefined;
    try {
      fatal = this.o.health();
    } catch (err) {
      fatal = unreachable(err); // CSTS cannot be read: nothing the controller holds will complete
    }
    if (fatal) {
      this.fail(fatal);
      return;
    }
    const now = Date.now();
    const late: ReturnType<QueuePair['abandon']>[] = [];
    for (const cid of this.awaitedCids()) {
      if (this.deadlines[cid] === 0)
        this.deadlines[cid] = now + this.timeouts[cid]; // first seen: submitted since the last check
      else if (this.deadlines[cid] <= now) late.push(this.abandon(cid));
    }
    const waitedTooLong = this.backlog.filter((r) => r.deadline <= now);
    if (waitedTooLong.length > 0) this.backlog = this.backlog.filter((r) => r.deadline > now);
    this.stats.timedOut += late.length + waitedTooLong.length;
    for (const [kind, callback, tag, context] of late) {
      const where = 'the controller still holds it (its identifier stays taken until it completes or the controller is reset)';
      this.deliver(kind, callback, tag, this.timeout(context, this.timeouts[context.cid!], where));
    }
    for (const r of waitedTooLong) {
      const context: CommandContext = { command: r.cmd.name, opcode: r.cmd.opcode, queue: this.id };
      this.deliver(r.callback ? CALLBACK : PROMISE, r.callback, r.tag, this.timeout(context, r.timeoutMs, 'it never got a free slot'));
    }
    this.idleIfDone();
  };

  private timeout(context: CommandContext, timeoutMs: number, where: string): NvmeError {
    return new NvmeError(`${describeCommand(context)}: no completion within ${timeoutMs} ms; ${where}`, 'ETIMEDOUT', context);
  }

  private idleIfDone(): void {
    if (this.awaited > 0) return;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    this.mode.idle();
  }

  /**
   * Fails every pending command with `error` (callbacks called, promises
   * rejected, each with a copy naming its command); the CIDs of those the
   * controller holds stay taken until their completions come or `resetRings()`.
   * Every command is told, also after a callback threw; the first callback's
   * error is thrown then.
   *
   * @throws TypeError when `error` is not an {@link NvmeError} (before any command is touched).
   */
  fail(error: NvmeError): void {
    if (!(error instanceof NvmeError)) throw new TypeError(`error must be an NvmeError, not ${kindOf(error)}`);
    const held = this.awaitedCids().map((cid) => this.abandon(cid));
    const waiting = this.backlog;
    this.backlog = [];
    let thrown: { error: unknown } | undefined;
    const tell = (kind: number, callback: IoCallback | undefined, tag: unknown, context: CommandContext): void => {
      try {
        this.deliver(kind, callback, tag, withContext(error, context));
      } catch (e) {
        thrown ??= { error: e };
      }
    };
    for (const [kind, callback, tag, context] of held) tell(kind, callback, tag, context);
    for (const r of waiting)
      tell(r.callback ? CALLBACK : PROMISE, r.callback, r.tag, { command: r.cmd.name, opcode: r.cmd.opcode, queue: this.id });
    this.idleIfDone();
    if (thrown) throw thrown.error;
  }

  /**
   * After the controller forgot this queue (a reset, or the queue deleted):
   * abandoned commands will not complete, so their CIDs are free again,
   * and the rings start over (zeroed CQ, phase 1).
   *
   * @throws {@link VfioStateError} `ERR_VFIO_BUSY` while commands are pending: fail() them first.
   */
  resetRings(): void {
    if (this.closed) throw new VfioStateError(`queue ${this.id} is closed`, 'ERR_VFIO_CLOSED');
    if (this.awaited > 0)
      throw new VfioStateError(`queue ${this.id}: resetRings() with ${this.awaited} commands pending: fail() them first`, 'ERR_VFIO_BUSY');
    this.meta.fill(FREE);
    this.mappings.fill(null);
    this.freeAll();
    this.u32.fill(0);
    this.sqTail = 0;
    this.cqHead = 0;
    this.phase = 1;
    this.sqDue = false;
    this.shadow = NO_SHADOW; // a reset controller forgot its doorbell buffers
    this.sqShadow = -1;
    this.cqShadow = -1;
  }

  /** Fails what is pending (ERR_NVME_ABORTED), detaches the mode, unmaps and frees the rings. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closing = true;
    try {
      this.fail(new NvmeError(`queue ${this.id} was closed`, 'ERR_NVME_ABORTED'));
    } finally {
      this.closed = true;
      this.mode.detach();
      this.mapping.unmap();
      this.memory.close();
    }
  }
}

/**
 * `cmd` is a command the queue can write and name: an object with an
 * integer opcode in 0..255 and a name (for messages). Checked when it is
 * submitted, before anything is taken: a malformed one used to be written,
 * and to throw from its completion where nobody could catch it.
 *
 * @throws TypeError or RangeError naming the field.
 */
function checkCommand(cmd: NvmeCommand): void {
  const kind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
  if (typeof cmd !== 'object' || cmd === null || Array.isArray(cmd))
    throw new TypeError(`cmd must be an NvmeCommand object ({ name, opcode, ... }), not ${kind(cmd)}`);
  if (typeof cmd.opcode !== 'number') throw new TypeError(`cmd.opcode must be a number, not ${kind(cmd.opcode)}`);
  if (!Number.isInteger(cmd.opcode) || cmd.opcode < 0 || cmd.opcode > 0xff)
    throw new RangeError(`cmd.opcode must be an integer in 0..255, not ${cmd.opcode}`);
  if (typeof cmd.name !== 'string')
    throw new TypeError(`cmd.name must be a string (the command's name, for messages), not ${kind(cmd.name)}`);
  if (cmd.data !== undefined && !Array.isArray(cmd.data))
    throw new TypeError(`cmd.data must be an array of { iova, length } segments, not ${kind(cmd.data)}`);
  cmd.data?.forEach((seg: unknown, i) => {
    const sg = seg as { iova?: unknown; length?: unknown } | null;
    if (sg === null || typeof sg !== 'object' || typeof sg.iova !== 'bigint' || typeof sg.length !== 'number')
      throw new TypeError(`cmd.data[${i}] must be an { iova: bigint, length: number } segment, not ${kind(seg)}`);
  });
  for (const k of ['nsid', 'cdw10', 'cdw11', 'cdw12', 'cdw13', 'cdw14', 'cdw15'] as const) {
    if (cmd[k] !== undefined && typeof cmd[k] !== 'number') throw new TypeError(`cmd.${k} must be a number, not ${kind(cmd[k])}`);
  }
  for (const k of ['prp1', 'prp2'] as const) {
    if (cmd[k] !== undefined && typeof cmd[k] !== 'bigint' && typeof cmd[k] !== 'number')
      throw new TypeError(`cmd.${k} must be a bigint, not ${kind(cmd[k])}`);
  }
}

/** What fails the pending commands when the controller's registers cannot be reached: `err`, as an NvmeError. */
function unreachable(err: unknown): NvmeError {
  const e = new NvmeError(`the controller cannot be reached: ${err instanceof Error ? err.message : String(err)}`, 'ERR_NVME_ABORTED');
  Object.defineProperty(e, 'cause', { value: err, configurable: true, writable: true });
  return e;
}

/** A copy of a queue-wide error, naming one command. */
function withContext(error: NvmeError, context: CommandContext): NvmeError {
  const copy = new NvmeError(`${describeCommand(context)}: ${error.message}`, error.code, context);
  if (error.cause !== undefined) Object.defineProperty(copy, 'cause', { value: error.cause, configurable: true, writable: true });
  return copy;
}

/** transfer()'s first argument that is not of its type (off the hot path: only once one is found). */
function badTransfer(fields: Record<string, unknown>): TypeError {
  const [field, value] = Object.entries(fields).find(([k, v]) => typeof v !== (k === 'name' ? 'string' : 'number'))!;
  return new TypeError(`${field} must be a ${field === 'name' ? 'string' : 'number'}, not ${kindOf(value)}`);
}
