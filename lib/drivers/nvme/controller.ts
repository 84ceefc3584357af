/**
 * An NVMe controller driven from TypeScript (NVMe base specification,
 * "Controller Initialization" and "Shutdown"):
 *
 *   1. disable: CC.EN = 0, wait for CSTS.RDY = 0 (at most CAP.TO)
 *   2. the admin queue pair: AQA, ASQ, ACQ
 *   3. enable: CC with the NVM command set, the memory page size, 64-byte
 *      SQ and 16-byte CQ entries, EN = 1; wait for CSTS.RDY = 1
 *   4. Identify the controller, the active namespaces, each namespace
 *   5. Set Features (Number of Queues), then Create I/O Completion Queue and
 *      Create I/O Submission Queue for each I/O queue pair
 *   6. Doorbell Buffer Config, when the controller offers it (emulated
 *      controllers do): shadow doorbells, as Linux's driver uses them
 *
 * Completions are polled, or signalled by MSI-X vectors (vector 0 for the
 * admin queue, vector N for I/O queue N). Controller Fatal Status turns
 * every pending command into an ERR_NVME_FATAL rejection; reset() brings
 * the controller back. close() deletes the I/O queues, sends the normal
 * shutdown notification and disables the controller.
 */
import { AddressSpace, DmaMapping } from '../../address-space';
import { DeviceDependent, VfioPciDevice } from '../../device';
import { VfioStateError } from '../../errors';
import { checkInstance, checkInt, checkOptions, checkString, kindOf } from '../../validate';
import { IrqIndex, IrqVector } from '../../interrupts';
import { DmaBuffer, PAGE_SIZE } from '../../memory';
import * as cmds from './commands';
import { Completion } from './completion';
import { CompletionMode, InterruptCompletions, PolledCompletions } from './completion-modes';
import { NvmeError, NvmeStatusError } from './errors';
import { ControllerIdentity, parseControllerIdentity, parseNamespaceIdentity, parseNamespaceList } from './identify';
import { IoOptions, NamespaceHost, NvmeNamespace } from './namespace';
import { listPagesFor } from './prp';
import { QueuePair, SubmitOptions } from './queue-pair';
import { CC, ControllerStatus, CQ_ENTRY_SHIFT, NvmeRegisters, SQ_ENTRY_SHIFT } from './registers';

/** PCI class code of an NVMe controller: mass storage, non-volatile memory, NVM Express. */
export const NVME_CLASS_CODE = 0x010802;

/**
 * How a controller notices completions: `'polled'` (reap the completion
 * queues on every event-loop turn while commands are in flight; no
 * interrupts) or `'interrupt'` (MSI-X: one vector for the admin queue and one
 * per I/O queue).
 */
export type NvmeCompletionMode = 'polled' | 'interrupt';

/** Options of {@link NvmeController.open}. */
export interface NvmeControllerOptions {
  /** How completions are noticed: 'polled' (default) or 'interrupt' (MSI-X). */
  mode?: NvmeCompletionMode;
  /** I/O queue pairs to create (default 1); the controller may grant fewer. */
  ioQueues?: number;
  /** Entries per I/O queue (default 64: 63 commands in flight per queue); capped by CAP.MQES. */
  queueEntries?: number;
  /** Entries of the admin queues (default 32). */
  adminQueueEntries?: number;
  /** A command's time-out in milliseconds when its submitter gives none (default 30000). */
  timeoutMs?: number;
  /** Polled mode: 0 (default) polls on every event-loop turn, else every `pollIntervalMs`. */
  pollIntervalMs?: number;
  /** Cap on one command's transfer in bytes, below the controller's MDTS (default 2 MiB). */
  maxTransferBytes?: number;
  /**
   * Shadow doorbells (default true): when the controller offers Doorbell
   * Buffer Config (OACS bit 8, as emulated controllers do), the I/O queues
   * write their SQ tails and CQ heads to memory and a doorbell register only
   * when the controller's EventIdx asks for it, as Linux's driver does.
   */
  shadowDoorbells?: boolean;
}

const DEFAULTS = {
  ioQueues: 1,
  queueEntries: 64,
  adminQueueEntries: 32,
  timeoutMs: 30_000,
  pollIntervalMs: 0,
  maxTransferBytes: 2 << 20,
  shadowDoorbells: true,
};

/** OACS bit 8: the controller supports Doorbell Buffer Config. */
const OACS_DOORBELL_BUFFER_CONFIG = 1 << 8;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The options, checked before the device is opened: TypeError or RangeError naming the option. */
function checkControllerOptions(options: NvmeControllerOptions): void {
  const o = checkOptions(options);
  if (o.mode !== undefined && o.mode !== 'polled' && o.mode !== 'interrupt')
    throw new TypeError(`mode must be 'polled' or 'interrupt', not ${typeof o.mode === 'string' ? `'${o.mode}'` : kindOf(o.mode)}`);
  for (const k of ['ioQueues', 'queueEntries', 'adminQueueEntries', 'timeoutMs', 'maxTransferBytes'] as const) {
    if (o[k] !== undefined) checkInt(o[k], k, 1);
  }
  if (o.pollIntervalMs !== undefined) checkInt(o.pollIntervalMs, 'pollIntervalMs', 0, 0x7fffffff);
  if (o.shadowDoorbells !== undefined && typeof o.shadowDoorbells !== 'boolean')
    throw new TypeError(`shadowDoorbells must be a boolean, not ${kindOf(o.shadowDoorbells)}`);
}

/**
 * An NVMe controller driven from TypeScript over VFIO: reset and enable,
 * the admin queue pair, Identify, I/O queue pairs completed by polling or by
 * MSI-X, controller reset, and shutdown. Its namespaces read and write
 * blocks ({@link NvmeNamespace}); many commands can be in flight at once.
 *
 * Every command's promise rejects with an {@link NvmeError}: a status the
 * controller reported ({@link NvmeStatusError}), `ETIMEDOUT`,
 * `ERR_NVME_FATAL` (Controller Fatal Status: every pending command fails,
 * {@link NvmeController.reset} recovers) or `ERR_NVME_ABORTED`.
 *
 * @example
 * ```ts
 * using space = AddressSpace.open();
 * await using nvme = await NvmeController.open(space, '0000:00:05.0', { mode: 'interrupt', ioQueues: 2 });
 * using buf = DmaBuffer.allocate(4096);
 * await nvme.namespace(1).read(0n, 8, space.map(buf)); // 8 blocks of 512 bytes from LBA 0
 * ```
 */
export class NvmeController implements NamespaceHost, AsyncDisposable {
  /** The controller's registers in BAR0. */
  readonly registers: NvmeRegisters;
  /** The controller's memory page size (CC.MPS): the host's page size. */
  readonly pageSize: number;
  /** How completions are noticed. */
  readonly mode: NvmeCompletionMode;
  private readonly options: typeof DEFAULTS;
  private admin?: QueuePair;
  private ioQueues: QueuePair[] = [];
  private nextQueue = 0;
  private fatal?: NvmeError;
  private closed = false;
  /** The reset under way, which a second reset() joins. */
  private resetting?: Promise<void>;
  /** What the device tells when it closes under the controller (device.close(), or its address space closing). */
  private readonly dependent: DeviceDependent = { close: () => this.deviceClosed() };
  private identity_?: ControllerIdentity;
  private namespaces_ = new Map<number, NvmeNamespace>();
  private maxTransfer = 0;
  private vectors: IrqVector[] = [];
  /** The shadow doorbell and EventIdx pages, once allocated (kept across resets). */
  private shadow?: { buffer: DmaBuffer; mapping: DmaMapping; words: Uint32Array };

  private constructor(
    /** The address space its queues, PRP lists and Identify buffers are mapped in. */
    readonly space: AddressSpace,
    /** The PCI device. */
    readonly device: VfioPciDevice,
    options: NvmeControllerOptions = {},
  ) {
    if (device.pci.classCode !== NVME_CLASS_CODE) {
      throw new VfioStateError(
        `${device.bdf} has class code ${device.pci.classCode.toString(16).padStart(6, '0')}, not an NVMe controller (010802)`,
        'ERR_VFIO_WRONG_DEVICE',
      );
    }
    checkControllerOptions(options);
    this.options = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    this.mode = options.mode ?? 'polled';
    this.registers = new NvmeRegisters(device.bar(0));
    const cap = this.registers.cap;
    this.pageSize = Number(PAGE_SIZE);
    if (this.pageSize < cap.minPageSize || this.pageSize > cap.maxPageSize) {
      throw new VfioStateError(
        `the controller's memory page sizes are ${cap.minPageSize}..${cap.maxPageSize} bytes; this host's page is ${this.pageSize}`,
        'ERR_NVME_PAGE_SIZE',
      );
    }
    device.addDependent(this.dependent);
  }

  /**
   * Opens the controller at `bdf` in `space`, disables and re-enables it
   * with the admin queue, identifies it and its active namespaces, and
   * creates the I/O queue pairs (as many as asked and granted).
   *
   * @param space - The address space; the device is opened in it.
   * @param bdf - The PCI address (default '0000:00:05.0', where the test guest has its NVMe).
   * @param options - Completion mode, queues, entries, time-outs.
   * @returns The controller, ready for I/O; close it (or `await using`) to shut it down.
   * @throws TypeError for a `mode` other than 'polled' or 'interrupt';
   *   RangeError for a count that is not a positive integer.
   * @throws {@link VfioStateError} `ERR_VFIO_WRONG_DEVICE` when the class code
   *   is not NVMe's, `ERR_NVME_PAGE_SIZE` when the controller cannot use the
   *   host's page size, `ERR_NVME_UNSUPPORTED` (no MSI-X in interrupt mode;
   *   entry sizes other than 64/16 bytes); what {@link AddressSpace.openDevice} throws.
   * @throws {@link NvmeError} `ETIMEDOUT` when CSTS.RDY does not follow CC.EN
   *   within CAP.TO, `ERR_NVME_FATAL`, or a failed admin command.
   *   On failure the device is closed again.
   */
  static async open(space: AddressSpace, bdf = '0000:00:05.0', options: NvmeControllerOptions = {}): Promise<NvmeController> {
    checkInstance(space, AddressSpace, 'space');
    checkString(bdf, 'bdf');
    checkControllerOptions(options);
    const device = space.openDevice(bdf);
    let controller: NvmeController | undefined;
    try {
      controller = new NvmeController(space, device, options);
      await controller.start();
      return controller;
    } catch (err) {
      if (controller) await controller.close().catch(() => undefined);
      else device.close();
      throw err;
    }
  }

  /**
   * Identify Controller data: model, serial, firmware, limits.
   *
   * @throws {@link VfioStateError} `ERR_NVME_NOT_READY` before the controller started.
   */
  get identity(): ControllerIdentity {
    if (!this.identity_) throw new VfioStateError('the controller is not started', 'ERR_NVME_NOT_READY');
    return this.identity_;
  }

  /** The active namespaces, by namespace ID. */
  get namespaces(): ReadonlyMap<number, NvmeNamespace> {
    return this.namespaces_;
  }

  /**
   * An active namespace.
   *
   * @param nsid - Its namespace ID (default 1).
   * @throws RangeError when it is not active on this controller (the message lists those that are).
   */
  namespace(nsid = 1): NvmeNamespace {
    if (typeof nsid !== 'number') throw new TypeError(`nsid must be a number, not ${kindOf(nsid)}`);
    const ns = this.namespaces_.get(nsid);
    if (!ns)
      throw new RangeError(
        `namespace ${nsid} is not active on this controller (active: ${[...this.namespaces_.keys()].join(', ') || 'none'})`,
      );
    return ns;
  }

  /** Largest transfer of one command in bytes: MDTS, capped by `options.maxTransferBytes`. */
  get maxTransferBytes(): number {
    return this.maxTransfer;
  }

  /** The I/O queue pairs (their stats, entries, mode). */
  get queues(): readonly QueuePair[] {
    return this.ioQueues;
  }

  /**
   * The admin queue pair (queue 0).
   *
   * @throws {@link VfioStateError} `ERR_NVME_NOT_READY` before start or after close.
   */
  get adminQueue(): QueuePair {
    if (!this.admin) throw new VfioStateError('the controller is not started', 'ERR_NVME_NOT_READY');
    return this.admin;
  }

  /**
   * Submits an admin command on queue 0.
   *
   * @returns Its completion; rejects with an {@link NvmeError} (see the class), at once
   *   with `ERR_NVME_FATAL` while the controller is in Controller Fatal Status.
   */
  adminCommand(cmd: cmds.NvmeCommand, options: SubmitOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object')
      return Promise.reject(new TypeError(`options must be an object, not ${kindOf(options)}`));
    if (this.fatal) return Promise.reject(this.fatal);
    return this.adminQueue.submit(cmd, options);
  }

  /**
   * Submits an I/O command, on `options.queue` or the next queue in turn.
   *
   * @returns Its completion; rejects with an {@link NvmeError}, with a RangeError for
   *   a queue that does not exist, and with `ERR_NVME_NOT_READY` without I/O queues.
   */
  io(cmd: cmds.NvmeCommand, options: IoOptions = {}): Promise<Completion> {
    if (options === null || typeof options !== 'object')
      return Promise.reject(new TypeError(`options must be an object, not ${kindOf(options)}`));
    if (this.fatal) return Promise.reject(this.fatal);
    let q: QueuePair;
    try {
      q = this.ioQueue(options.queue);
    } catch (err) {
      return Promise.reject(err);
    }
    return q.submit(cmd, options);
  }

  /**
   * The I/O queue for one command: queue `queue` (a 1-based ID), or the next
   * in turn (round robin) when it is undefined.
   *
   * @throws RangeError for a queue that does not exist; {@link VfioStateError}
   *   `ERR_NVME_NOT_READY` when there are no I/O queues (not started, or closed).
   */
  ioQueue(queue?: number): QueuePair {
    if (queue !== undefined) {
      if (typeof queue !== 'number') throw new TypeError(`queue must be a number, not ${kindOf(queue)}`);
      const q = this.ioQueues[queue - 1];
      if (!q) throw new RangeError(`I/O queue ${queue} does not exist (1..${this.ioQueues.length})`);
      return q;
    }
    if (this.nextQueue >= this.ioQueues.length) this.nextQueue = 0; // round robin, no division
    const q = this.ioQueues[this.nextQueue++];
    if (!q) throw new VfioStateError('the controller has no I/O queues (not started, or closed)', 'ERR_NVME_NOT_READY');
    return q;
  }

  /**
   * The fatal error the controller was last found in, without reading CSTS
   * (the watchdogs read it while commands are pending); see {@link NvmeController.fatalError}.
   */
  get fatalSeen(): NvmeError | undefined {
    return this.fatal;
  }

  /**
   * Reaps every I/O queue now: completions that arrived are handed to their
   * callbacks and promises at once, without waiting for the next poll or
   * interrupt. For callers that drive completion from a loop of their own.
   *
   * @returns How many completions it consumed.
   */
  poll(): number {
    let n = 0;
    for (const q of this.ioQueues) n += q.reap();
    return n;
  }

  /**
   * Identify into a fresh, mapped 4 KiB buffer (unmapped again after).
   *
   * @param cns - Which structure ({@link IdentifyCns}).
   * @param nsid - The namespace, for namespace structures (default 0).
   * @returns A copy of the 4096 bytes.
   */
  async identify(cns: number, nsid = 0): Promise<Uint8Array> {
    using buffer = DmaBuffer.allocate(cmds.IDENTIFY_SIZE);
    const mapping = this.space.map(buffer);
    try {
      await this.adminCommand(cmds.identify(cns, [{ iova: mapping.iova, length: cmds.IDENTIFY_SIZE }], nsid));
      return buffer.bytes.slice();
    } finally {
      mapping.unmap();
    }
  }

  /** The MSI-X vectors in interrupt mode (vector N serves queue N), with their counts. */
  get interruptVectors(): readonly IrqVector[] {
    return this.vectors;
  }

  /** Steps 1-5 above. */
  private async start(): Promise<void> {
    this.device.setBusMaster(true);
    if (this.mode === 'interrupt' && this.vectors.length === 0) this.enableMsix();
    await this.disable();
    const o = this.options;
    this.admin ??= this.queuePair(0, Math.min(o.adminQueueEntries, this.registers.cap.maxQueueEntries, 4096), 1);
    this.registers.setAdminQueues(this.admin.sqIova, this.admin.entries, this.admin.cqIova, this.admin.entries);
    if (this.mode === 'polled') this.registers.maskInterrupts();
    await this.enable();

    this.identity_ = parseControllerIdentity(await this.identify(cmds.IdentifyCns.CONTROLLER));
    const id = this.identity_;
    if (id.sqEntrySize.required > SQ_ENTRY_SHIFT || id.cqEntrySize.required > CQ_ENTRY_SHIFT) {
      throw new VfioStateError(
        `the controller needs ${1 << id.sqEntrySize.required}-byte SQ and ${1 << id.cqEntrySize.required}-byte CQ entries; this driver writes 64 and 16`,
        'ERR_NVME_UNSUPPORTED',
      );
    }
    const mdtsBytes = id.mdts === 0 ? Infinity : 2 ** id.mdts * this.registers.cap.minPageSize;
    this.maxTransfer = Math.min(mdtsBytes, o.maxTransferBytes);

    this.namespaces_.clear();
    for (const nsid of parseNamespaceList(await this.identify(cmds.IdentifyCns.ACTIVE_NAMESPACES))) {
      const identity = parseNamespaceIdentity(await this.identify(cmds.IdentifyCns.NAMESPACE, nsid));
      if (identity.size > 0n) this.namespaces_.set(nsid, new NvmeNamespace(this, nsid, identity));
    }

    const granted = await this.adminCommand(cmds.setNumberOfQueues(o.ioQueues));
    const count = Math.min(o.ioQueues, (granted.result & 0xffff) + 1, (granted.result >>> 16) + 1);
    const entries = Math.min(o.queueEntries, this.registers.cap.maxQueueEntries);
    if (entries < 2) throw new RangeError('queueEntries must be at least 2');
    const prpPages = listPagesFor(Math.ceil(this.maxTransfer / this.pageSize) + 1, this.pageSize);
    for (let qid = 1; qid <= count; qid++) {
      const q = this.queuePair(qid, entries, prpPages);
      this.ioQueues.push(q);
      await this.adminCommand(cmds.createIoCq(qid, entries, q.cqIova, q.mode.vector));
      await this.adminCommand(cmds.createIoSq(qid, entries, q.sqIova, qid));
    }
    if (o.shadowDoorbells && (id.oacs & OACS_DOORBELL_BUFFER_CONFIG) !== 0) await this.configureShadowDoorbells();
  }

  /**
   * Doorbell Buffer Config (after the I/O queues exist, as Linux does): a
   * page of shadow doorbells and a page of EventIdx values, zeroed first (a
   * stale EventIdx would hold back a doorbell write the controller waits
   * for). A controller that refuses it keeps its plain doorbells.
   */
  private async configureShadowDoorbells(): Promise<void> {
    const stride = this.registers.cap.doorbellStride;
    if ((2 * this.ioQueues.length + 2) * stride > this.pageSize) return; // the doorbells of every queue fit in one page
    if (!this.shadow) {
      const buffer = DmaBuffer.allocate(2 * this.pageSize);
      try {
        const mapping = this.space.map(buffer, { align: BigInt(this.pageSize) });
        this.shadow = { buffer, mapping, words: new Uint32Array(buffer.buffer) };
      } catch (err) {
        buffer.close();
        throw err;
      }
    }
    const { mapping, words } = this.shadow;
    words.fill(0);
    try {
      await this.adminCommand(cmds.doorbellBufferConfig(mapping.iova, mapping.iova + BigInt(this.pageSize)));
    } catch (err) {
      if (err instanceof NvmeStatusError) return;
      throw err;
    }
    for (const q of this.ioQueues) q.useShadowDoorbells(words, this.pageSize / 4);
  }

  /** Whether the I/O queues use shadow doorbells (Doorbell Buffer Config was accepted). */
  get shadowDoorbells(): boolean {
    return this.ioQueues.some((q) => q.shadowDoorbells);
  }

  private queuePair(id: number, entries: number, prpPagesPerCommand: number): QueuePair {
    return new QueuePair({
      id,
      entries,
      prpPagesPerCommand,
      registers: this.registers,
      space: this.space,
      pageSize: this.pageSize,
      mode: this.completionMode(id),
      defaultTimeoutMs: this.options.timeoutMs,
      health: () => this.health(),
    });
  }

  /** One MSI-X vector for the admin queue and one per I/O queue asked for, as far as the device has them. */
  private enableMsix(): void {
    const irqs = this.device.interrupts;
    const available = irqs.info(IrqIndex.MSIX).count;
    if (available === 0) throw new VfioStateError(`${this.device.bdf} offers no MSI-X: use mode 'polled'`, 'ERR_NVME_UNSUPPORTED');
    this.vectors = irqs.enableMsix(Math.min(available, 1 + this.options.ioQueues));
  }

  /** Queue N completes on vector N (queues share vectors when the device has fewer). */
  private completionMode(qid: number): CompletionMode {
    if (this.mode === 'polled') return new PolledCompletions(this.options.pollIntervalMs);
    const v = this.vectors[qid % this.vectors.length];
    return new InterruptCompletions(v.vector, v);
  }

  /** CSTS.CFS, checked by the queues' watchdogs: on the first sight, every pending command fails. */
  private health(): NvmeError | undefined {
    if (this.fatal || this.closed) return this.fatal;
    const csts = this.registers.csts;
    if (!csts.fatal && csts.raw !== 0xffffffff) return undefined;
    const why =
      csts.raw === 0xffffffff
        ? 'CSTS reads all ones: the controller is gone from the bus'
        : `the controller reports Controller Fatal Status (CSTS 0x${csts.raw.toString(16)}, CFS set)`;
    this.fatal = new NvmeError(`${why}; pending commands are failed, and the controller needs reset()`, 'ERR_NVME_FATAL');
    for (const q of this.queuesAll()) q.fail(this.fatal);
    return this.fatal;
  }

  /** The fatal error the controller is in (Controller Fatal Status, or gone from the bus), if any: reset() clears it. */
  get fatalError(): NvmeError | undefined {
    return this.health();
  }

  private queuesAll(): QueuePair[] {
    return this.admin ? [this.admin, ...this.ioQueues] : [...this.ioQueues];
  }

  /** Polls CSTS until `done`, for at most CAP.TO; ETIMEDOUT, or ERR_NVME_FATAL when `failOnFatal` and CFS shows. */
  private async waitStatus(done: (csts: ControllerStatus) => boolean, what: string, failOnFatal: boolean): Promise<void> {
    const limit = Math.max(this.registers.cap.readyTimeoutMs, 500);
    const deadline = Date.now() + limit;
    for (;;) {
      const csts = this.registers.csts;
      if (done(csts)) return;
      if (failOnFatal && csts.fatal)
        throw new NvmeError(`${what}: the controller reports Controller Fatal Status (CSTS 0x${csts.raw.toString(16)})`, 'ERR_NVME_FATAL');
      if (Date.now() > deadline)
        throw new NvmeError(`${what}: not done within ${limit} ms (CAP.TO); CSTS is 0x${csts.raw.toString(16)}`, 'ETIMEDOUT');
      await sleep(1);
    }
  }

  /** CC.EN = 0 and CSTS.RDY = 0: the controller drops every queue but the admin queue registers. */
  private async disable(): Promise<void> {
    const cc = this.registers.cc;
    if ((cc & CC.EN) !== 0 && !this.registers.csts.ready) {
      // EN must not go 1 -> 0 before RDY followed it to 1 (unless the controller failed)
      await this.waitStatus((s) => s.ready || s.fatal, 'waiting for CSTS.RDY = 1 before disabling', false);
    }
    this.registers.cc = cc & ~CC.EN;
    await this.waitStatus((s) => !s.ready, 'disabling the controller (CSTS.RDY -> 0)', false);
  }

  private async enable(): Promise<void> {
    const mps = Math.log2(this.pageSize) - 12;
    this.registers.cc =
      CC.EN |
      (CC.CSS_NVM << CC.CSS_SHIFT) |
      (mps << CC.MPS_SHIFT) |
      (CC.AMS_ROUND_ROBIN << CC.AMS_SHIFT) |
      (SQ_ENTRY_SHIFT << CC.IOSQES_SHIFT) |
      (CQ_ENTRY_SHIFT << CC.IOCQES_SHIFT);
    await this.waitStatus((s) => s.ready, 'enabling the controller (CSTS.RDY -> 1)', true);
    this.fatal = undefined;
  }

  /**
   * Controller reset: fails what is pending (ERR_NVME_ABORTED), disables and
   * re-enables the controller, and creates the I/O queues again. The way
   * out of ERR_NVME_FATAL, and out of commands that timed out. A reset()
   * while one is under way joins it.
   */
  reset(): Promise<void> {
    try {
      this.live();
    } catch (err) {
      return Promise.reject(err);
    }
    this.resetting ??= this.resetOnce().finally(() => (this.resetting = undefined));
    return this.resetting;
  }

  /**
   * Fails what every queue holds or has waiting with `error`: a callback
   * that throws is an uncaught exception, as from an event listener, and
   * keeps no other command from being told.
   */
  private failAll(error: NvmeError): void {
    for (const q of this.queuesAll()) {
      try {
        q.fail(error);
      } catch (thrown) {
        process.nextTick(() => {
          throw thrown;
        });
      }
    }
  }

  private async resetOnce(): Promise<void> {
    const aborted = new NvmeError('the controller is being reset', 'ERR_NVME_ABORTED');
    this.failAll(aborted);
    await this.disable(); // the controller forgets its queues: their memory can go
    this.live();
    this.failAll(aborted); // what was submitted while it disabled
    for (const q of this.ioQueues) q.close();
    this.ioQueues = [];
    this.admin?.resetRings();
    this.fatal = undefined;
    await this.start();
  }

  private live(): void {
    if (this.closed) throw new VfioStateError('the NVMe controller is closed', 'ERR_VFIO_CLOSED');
  }

  /**
   * Deletes the I/O queues, sends the normal shutdown notification (CC.SHN)
   * and waits for CSTS.SHST, disables the controller, frees the queues and
   * closes the device. Pending commands fail with ERR_NVME_ABORTED. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const healthy = !this.health() && this.registers.csts.ready;
    if (healthy) {
      try {
        for (const q of [...this.ioQueues].reverse()) {
          q.fail(new NvmeError('the controller is closing', 'ERR_NVME_ABORTED'));
          await this.adminCommand(cmds.deleteIoSq(q.id), { timeoutMs: 5000 });
          await this.adminCommand(cmds.deleteIoCq(q.id), { timeoutMs: 5000 });
        }
        this.registers.cc = (this.registers.cc & ~CC.SHN_MASK) | CC.SHN_NORMAL;
        await this.waitStatus((s) => s.shutdownComplete, 'shutdown notification (CSTS.SHST -> complete)', true);
      } catch {
        // a controller that cannot shut down cleanly is still disabled below
      }
    }
    this.closed = true;
    try {
      await this.disable();
    } catch (err) {
      if (!this.device.isClosed) throw err; // closed under it meanwhile: deviceClosed() did the rest
    } finally {
      this.releaseQueues();
      this.device.close(); // and its interrupts
    }
  }

  /**
   * The device closed under the controller (device.close(), or its address
   * space closing) without controller.close(): every pending command fails
   * with ERR_NVME_ABORTED, the queues stop (no timer or listener is left),
   * their memory is freed, and the controller counts as closed. The
   * controller is disabled first where its registers can still be reached,
   * so that it stops using the rings.
   */
  private deviceClosed(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.registers.cc = this.registers.cc & ~CC.EN;
    } catch {
      // the registers are unreachable (memory decoding off): the device's own close resets it
    }
    try {
      this.failAll(new NvmeError(`the device ${this.device.bdf} was closed under its NVMe controller`, 'ERR_NVME_ABORTED'));
    } finally {
      this.releaseQueues();
    }
  }

  /** Closes every queue (their timers and listeners go) and frees the shadow doorbells' memory. */
  private releaseQueues(): void {
    for (const q of this.queuesAll()) q.close();
    this.ioQueues = [];
    this.admin = undefined;
    this.vectors = [];
    this.shadow?.mapping.unmap();
    this.shadow?.buffer.close();
    this.shadow = undefined;
  }

  /** {@link NvmeController.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
