/**
 * Interrupts as events. VFIO hands a device's interrupts to userspace
 * through eventfds (VFIO_DEVICE_SET_IRQS); each eventfd here is watched on
 * Node's own event loop by a native EventfdWatcher (no thread, no polling),
 * and surfaces as an IrqVector: an EventEmitter ('interrupt' with the count
 * the eventfd accumulated) and an async iterator that takes an AbortSignal.
 *
 * One DeviceInterrupts per device (`device.interrupts`) owns the vectors of
 * the one interrupt mode the device is in: INTx, MSI or MSI-X. INTx is
 * automasked by the kernel: the handler quiets the device, then unmask()s.
 * Everything is torn down when the device closes.
 */
import { EventEmitter, on } from 'node:events';
import type { VfioPciDevice } from './device';
import { VfioError, VfioStateError } from './errors';
import { native, NativeEventfdWatcher, NativeFile } from './native';
import { kindOf } from './validate';

/** An event name: a string or a symbol (TypeError naming it otherwise). */
function checkEventName(event: unknown): void {
  if (typeof event !== 'string' && typeof event !== 'symbol')
    throw new TypeError(`event must be a string or a symbol, not ${kindOf(event)}`);
}

/** vfio-pci's IRQ indexes (VFIO_PCI_*_IRQ_INDEX), for {@link DeviceInterrupts.info}. */
export const IrqIndex = {
  /** The legacy INTx pin: one level-triggered line, automasked by the kernel. */
  INTX: 0,
  /** MSI: up to 32 message-signalled vectors, enabled together. */
  MSI: 1,
  /** MSI-X: up to 2048 vectors, each with its own table entry. */
  MSIX: 2,
  /** PCIe AER error reporting: signalled when the device reports an error. */
  ERR: 3,
  /** The kernel requests the device back (e.g. to unbind it from vfio-pci). */
  REQ: 4,
} as const;
/** One of the {@link IrqIndex} values. */
export type IrqIndex = (typeof IrqIndex)[keyof typeof IrqIndex];
const NUM_IRQ_INDEXES = 5;
const INDEX_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];

/** struct vfio_irq_info flag: the index can signal an eventfd. */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
/** struct vfio_irq_info flag: the index can be masked and unmasked. */
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
/** struct vfio_irq_info flag: the kernel masks the interrupt when it fires (INTx). */
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
/** struct vfio_irq_info flag: vectors cannot be added while the index is enabled. */
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** struct vfio_irq_set data type: no data (the action applies to every vector in the range). */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
/** struct vfio_irq_set data type: one bool per vector (act on the true ones). */
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
/** struct vfio_irq_set data type: one eventfd per vector (-1 to free it). */
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
/** struct vfio_irq_set action: mask the interrupt. */
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
/** struct vfio_irq_set action: unmask the interrupt. */
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
/** struct vfio_irq_set action: set the eventfds signalled (DATA_EVENTFD), or fire them (DATA_BOOL, DATA_NONE). */
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

const SET_IRQS = 'ioctl(VFIO_DEVICE_SET_IRQS)';

/** An IRQ index's VFIO_DEVICE_GET_IRQ_INFO, decoded ({@link DeviceInterrupts.info}). */
export interface IrqInfo {
  /** The IRQ index ({@link IrqIndex}). */
  index: number;
  /** Vectors (interrupts) the index offers; 0 when the device lacks it. */
  count: number;
  /** The raw VFIO_IRQ_INFO_* flags. */
  flags: number;
  /** VFIO_IRQ_INFO_EVENTFD: it can signal an eventfd (every index this library enables does). */
  eventfd: boolean;
  /** VFIO_IRQ_INFO_MASKABLE: it can be masked and unmasked through VFIO. */
  maskable: boolean;
  /** The kernel masks the interrupt when it fires (INTx): unmask() after handling it. */
  automasked: boolean;
  /** MSI-X only: vectors can be added while enabled (dynamic MSI-X); else disable and enable anew. */
  resizable: boolean;
}

/** The interrupt mode a device is in: at most one of INTx, MSI and MSI-X is enabled at a time. */
export type IrqMode = 'none' | 'intx' | 'msi' | 'msix';
const MODE_INDEX: Record<Exclude<IrqMode, 'none'>, IrqIndex> = { intx: IrqIndex.INTX, msi: IrqIndex.MSI, msix: IrqIndex.MSIX };

/** Options of {@link IrqVector.wait} and {@link EduDevice.handleInterrupt}. */
export interface IrqWaitOptions {
  /** Stop waiting when it aborts: the promise rejects with the signal's reason (an AbortError by default). */
  signal?: AbortSignal;
  /** Give up after this many milliseconds (an integer) with a {@link VfioStateError} of code 'ETIMEDOUT'. Default: wait forever. */
  timeoutMs?: number;
}

/** What a vector asks of its controller. */
interface VectorOwner {
  readonly device: VfioPciDevice;
  /** @internal */
  unmask(vector: IrqVector): void;
  /** @internal */
  mask(vector: IrqVector): void;
}

/** A listener of an {@link IrqVector}'s events, typed as EventEmitter types its listeners. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
export type Listener = (...args: any[]) => void;

/**
 * `signal` is undefined or an AbortSignal: anything else would fail only
 * once a timer and listeners were armed on it.
 *
 * @throws TypeError naming `signal` and what it is.
 */
function checkSignal(signal: unknown, name = 'signal'): void {
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new TypeError(
      `${name} must be an AbortSignal, not ${signal === null ? 'null' : typeof signal === 'object' ? 'a plain object' : typeof signal}`,
    );
}

function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, not ${value === null ? 'null' : typeof value}`);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer in ${min}..${max}, not ${value}`);
  return value;
}

/**
 * One interrupt vector: its own eventfd handed to the kernel
 * (VFIO_DEVICE_SET_IRQS), watched on Node's event loop by libuv: no thread,
 * no polling. Made by {@link DeviceInterrupts.enableIntx},
 * {@link DeviceInterrupts.enableMsi}, {@link DeviceInterrupts.enableMsix}
 * and {@link DeviceInterrupts.setVector}.
 *
 * Events: `'interrupt'` (with a count: how many times it fired since the
 * last event, more than 1 when interrupts came faster than the loop turned),
 * `'error'` (reading the eventfd failed), `'close'` (torn down: by
 * {@link DeviceInterrupts.disable}, by a setVector that replaced it, or by
 * the device closing; what the eventfd still held is delivered first).
 * While `'interrupt'` has listeners the vector keeps the event loop alive;
 * without, it does not.
 *
 * An interrupt reaches the `'interrupt'` listeners as `emit()` would call
 * them (in order; a listener added or removed meanwhile counts from the next
 * event; once() listeners once; one that throws is an uncaught exception),
 * with the promises and ticks they queue run right after, and in the async
 * context the vector was made in; it allocates nothing on the way. With
 * `EventEmitter.captureRejections` on when the vector was made, events go
 * through `emit()` itself.
 */
export class IrqVector extends EventEmitter {
  /** Every interrupt counted on this vector so far. */
  count = 0;
  private readonly eventfd: NativeFile;
  private readonly watcher: NativeEventfdWatcher;
  /** VFIO's loopback trigger of this vector, prepared when it is made. */
  private readonly loopback: () => void;
  private closed = false;
  /** Whether the watcher keeps the event loop alive (while 'interrupt' has listeners). */
  private holdsLoop = false;
  /**
   * The 'interrupt' listeners as emit() would call them (rawListeners: once()
   * wrappers included), taken at the first event after a change and kept
   * until the next change: an event allocates nothing.
   */
  private listening: Listener[] | undefined = undefined;
  /** EventEmitter.captureRejections when made: then every event goes through emit(), which handles listeners' promises. */
  private readonly capturing = EventEmitter.captureRejections;
  /**
   * What ends each pending wait() when the vector is torn down. Kept here,
   * not as 'close' listeners: removeAllListeners() or a throwing listener
   * must not leave a wait (and its timer) behind.
   */
  private readonly waiters = new Set<() => void>();

  /** @internal */
  constructor(
    private readonly owner: VectorOwner,
    /** Its IRQ index: {@link IrqIndex}.INTX, MSI or MSIX. */
    readonly index: IrqIndex,
    /** Its vector number within the index, from 0. */
    readonly vector: number,
  ) {
    super();
    this.loopback = native.EventfdWatcher.loopbackTrigger(owner.device.native, index, vector);
    this.eventfd = native.NativeFile.eventfd();
    try {
      this.watcher = new native.EventfdWatcher(
        this.eventfd,
        (n) => this.deliver(n),
        (err) => this.emit('error', err),
      );
    } catch (err) {
      this.eventfd.close();
      throw err;
    }
    this.watcher.unref();
  }

  /** The hot path: one event of `n` interrupts to the listeners, as emit('interrupt', n) would. */
  private deliver(n: number): void {
    this.count += n;
    if (this.capturing) {
      this.emit('interrupt', n);
      return;
    }
    const list = (this.listening ??= this.rawListeners('interrupt') as Listener[]);
    for (let i = 0; i < list.length; i++) list[i].call(this, n);
  }

  /** After any change to the listeners of `event` (undefined: of every event). */
  private listenersChanged(event: string | symbol | undefined): this {
    if (event !== 'interrupt' && event !== undefined) return this;
    this.listening = undefined;
    const hold = !this.closed && this.listenerCount('interrupt') > 0;
    if (hold !== this.holdsLoop) {
      this.holdsLoop = hold;
      if (hold) this.watcher.ref();
      else this.watcher.unref();
    }
    return this;
  }

  // Every way a listener comes or goes (once(), prependOnceListener() and
  // events.on() go through on() and prependListener(); a once() wrapper
  // removes itself through removeListener()). addListener and off are
  // EventEmitter's aliases of on and removeListener.

  /** EventEmitter's, noting the change. */
  override on(event: string | symbol, listener: Listener): this {
    checkEventName(event);
    super.on(event, listener);
    return this.listenersChanged(event);
  }

  /** {@link IrqVector.on}. */
  override addListener(event: string | symbol, listener: Listener): this {
    return this.on(event, listener);
  }

  /** EventEmitter's, noting the change. */
  override prependListener(event: string | symbol, listener: Listener): this {
    checkEventName(event);
    super.prependListener(event, listener);
    return this.listenersChanged(event);
  }

  /** EventEmitter's, noting the change. */
  override removeListener(event: string | symbol, listener: Listener): this {
    checkEventName(event);
    super.removeListener(event, listener);
    return this.listenersChanged(event);
  }

  /** {@link IrqVector.removeListener}. */
  override off(event: string | symbol, listener: Listener): this {
    return this.removeListener(event, listener);
  }

  /** EventEmitter's, noting the change (without an argument, of every event: EventEmitter tells by the argument count). */
  override removeAllListeners(...args: [event?: string | symbol]): this {
    if (args[0] !== undefined) checkEventName(args[0]);
    super.removeAllListeners(...args);
    return this.listenersChanged(args[0]);
  }

  /** For messages, e.g. 'MSI-X vector 3 of 0000:00:05.0'. */
  get name(): string {
    return `${INDEX_NAMES[this.index]} vector ${this.vector} of ${this.owner.device.bdf}`;
  }

  /** Whether it was torn down: its eventfd is closed and it fires no more. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** INTx: the kernel masks the line each time it fires; unmask() once the device is quiet. */
  get automasked(): boolean {
    return this.index === IrqIndex.INTX;
  }

  /** @internal the eventfd handed to VFIO_DEVICE_SET_IRQS */
  get file(): NativeFile {
    return this.eventfd;
  }

  /**
   * INTx: lets the line interrupt again (VFIO_IRQ_SET_ACTION_UNMASK).
   * Quiet the device first (acknowledge what it raised): if its line is
   * still asserted, it fires again at once.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_MODE` for an MSI or MSI-X
   *   vector (never masked by the kernel), `ERR_VFIO_CLOSED` once torn down.
   * @throws {@link VfioError} from `ioctl(VFIO_DEVICE_SET_IRQS)`.
   */
  unmask(): void {
    this.owner.unmask(this.live());
  }

  /**
   * INTx: masks the line (VFIO_IRQ_SET_ACTION_MASK) until unmask().
   *
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_MODE` for an MSI or MSI-X
   *   vector, `ERR_VFIO_CLOSED` once torn down.
   */
  mask(): void {
    this.owner.mask(this.live());
  }

  /**
   * Signals this vector from the kernel, as if the device had interrupted
   * (VFIO's loopback trigger: VFIO_IRQ_SET_DATA_BOOL | ACTION_TRIGGER); for
   * tests. Its ioctl argument was prepared when the vector was made.
   *
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` once torn down.
   */
  trigger(): void {
    this.live().loopback();
  }

  /**
   * Waits for the next `'interrupt'` event.
   *
   * @param options - `timeoutMs` and an AbortSignal.
   * @returns The event's count: the interrupts the eventfd counted since the previous event.
   * @throws TypeError or RangeError (synchronously, before anything is armed)
   *   when `timeoutMs` is not an integer in 0..2^31-1, or `signal` is not an AbortSignal.
   * Rejects with a {@link VfioStateError}: `ETIMEDOUT` after `timeoutMs`, `ERR_VFIO_CLOSED`
   * when the vector is (or gets) torn down; with the signal's reason when it aborts.
   */
  wait(options: IrqWaitOptions = {}): Promise<number> {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    const { signal, timeoutMs } = options;
    if (timeoutMs !== undefined) checkInteger(timeoutMs, 'timeoutMs', 0, 2 ** 31 - 1);
    checkSignal(signal);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (fn: () => void): void => {
        this.off('interrupt', onInterrupt);
        this.waiters.delete(onClose);
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(timer);
        fn();
      };
      const onInterrupt = (n: number): void => settle(() => resolve(n));
      const onClose = (): void => settle(() => reject(new VfioStateError(`${this.name} was torn down`, 'ERR_VFIO_CLOSED')));
      const onAbort = (): void => settle(() => reject(signal!.reason));
      if (this.closed) return onClose();
      if (signal?.aborted) return onAbort();
      this.on('interrupt', onInterrupt);
      this.waiters.add(onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      // armed last: nothing above can leave it running
      if (timeoutMs !== undefined)
        timer = setTimeout(
          () => settle(() => reject(new VfioStateError(`no interrupt on ${this.name} within ${timeoutMs} ms`, 'ETIMEDOUT'))),
          timeoutMs,
        );
    });
  }

  /**
   * The interrupts as an async iterator of counts, buffered from this call
   * on (none is missed while the consumer is busy). It ends when the vector
   * is torn down and throws an AbortError when `signal` aborts. Breaking
   * out of the loop stops listening.
   *
   * @throws TypeError when `signal` is given and is not an AbortSignal.
   * @example
   * ```ts
   * for await (const n of vector.events({ signal: AbortSignal.timeout(5000) })) {
   *   handle(n);
   * }
   * ```
   */
  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<number> {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, not ${kindOf(options)}`);
    checkSignal(options.signal);
    const source = on(this, 'interrupt', { signal: options.signal, close: ['close'] }) as AsyncIterableIterator<unknown[]>;
    if (this.closed) void source.return?.();
    const done = { done: true, value: undefined } as IteratorReturnResult<undefined>;
    const iterator: AsyncIterableIterator<number> = {
      next: async () => {
        const r = await source.next();
        return r.done ? done : { done: false, value: r.value[0] as number };
      },
      return: async () => {
        await source.return?.();
        return done;
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** `events()` without a signal: `for await (const n of vector)`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<number> {
    return this.events();
  }

  private live(): this {
    if (this.closed) throw new VfioStateError(`${this.name} was torn down`, 'ERR_VFIO_CLOSED');
    return this;
  }

  /**
   * @internal Stops watching and closes the eventfd (after the kernel let go
   * of it). What the eventfd still held is delivered, then pending waits
   * are rejected and 'close' emitted, all on the next tick; the waits also
   * when a listener of that last 'interrupt' throws.
   */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    const rest = this.watcher.close();
    this.eventfd.close();
    if (rest > 0) this.count += rest;
    process.nextTick(() => {
      try {
        if (rest > 0) this.emit('interrupt', rest);
      } finally {
        for (const end of [...this.waiters]) end();
        this.emit('close');
      }
    });
  }
}

/**
 * A device's interrupts: info about each IRQ index, and one interrupt mode
 * at a time (INTx, MSI or MSI-X) with its vectors, each an {@link IrqVector}.
 * Get it as {@link VfioPciDevice.interrupts}; it is torn down with the
 * device, and by close().
 */
export class DeviceInterrupts implements VectorOwner, Disposable {
  private currentMode: IrqMode = 'none';
  private readonly armed = new Map<number, IrqVector>();
  /** Vectors the kernel allocated when the mode was enabled. */
  private allocated = 0;
  private closed = false;

  /**
   * Takes charge of `device`'s interrupts; prefer {@link VfioPciDevice.interrupts},
   * which makes one per device.
   *
   * @param device - The device, open; its close tears these interrupts down.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` when the device is closed.
   */
  constructor(readonly device: VfioPciDevice) {
    // (duck-typed: interrupts.ts and device.ts import each other)
    if (device === null || typeof device !== 'object' || typeof (device as { addDependent?: unknown }).addDependent !== 'function')
      throw new TypeError(`device must be a VfioPciDevice, not ${kindOf(device)}`);
    if (device.isClosed) throw new VfioStateError(`device ${device.bdf} is closed`, 'ERR_VFIO_CLOSED');
    device.addDependent(this); // the device's close() calls close()
  }

  /** Whether close() was called (or the device closed). */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The interrupt mode the device is in. */
  get mode(): IrqMode {
    return this.currentMode;
  }

  /** The live vectors, by vector number. */
  get vectors(): IrqVector[] {
    return [...this.armed.values()].sort((a, b) => a.vector - b.vector);
  }

  /** The live vector number `n` of the enabled mode, or undefined. */
  vector(n: number): IrqVector | undefined {
    return this.armed.get(n);
  }

  /**
   * VFIO_DEVICE_GET_IRQ_INFO for an IRQ index, decoded.
   *
   * @param index - {@link IrqIndex}.INTX, MSI, MSIX, ERR or REQ.
   * @throws TypeError or RangeError when `index` is not an integer in 0..4.
   * @throws {@link VfioStateError} `ERR_VFIO_CLOSED` after close().
   */
  info(index: number): IrqInfo {
    checkInteger(index, 'index', 0, NUM_IRQ_INDEXES - 1);
    const { count, flags } = this.live().irqInfo(index);
    return {
      index,
      count,
      flags,
      eventfd: (flags & VFIO_IRQ_INFO_EVENTFD) !== 0,
      maskable: (flags & VFIO_IRQ_INFO_MASKABLE) !== 0,
      automasked: (flags & VFIO_IRQ_INFO_AUTOMASKED) !== 0,
      resizable: index === IrqIndex.MSIX && (flags & VFIO_IRQ_INFO_NORESIZE) === 0,
    };
  }

  /**
   * Enables INTx with an eventfd. The kernel masks the line each time it
   * fires: handle the interrupt, quiet the device, then `vector.unmask()`.
   *
   * @returns The one INTx vector.
   * @throws RangeError when the device has no INTx pin.
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_BUSY` when another mode is enabled (disable() it first).
   * @throws {@link VfioError} from `ioctl(VFIO_DEVICE_SET_IRQS)`.
   */
  enableIntx(): IrqVector {
    return this.enable('intx', 1)[0];
  }

  /**
   * Enables MSI with `n` vectors, each with its own eventfd.
   *
   * @param n - Vectors, 1..`info(IrqIndex.MSI).count` (default 1).
   * @returns The vectors, numbered 0..n-1.
   * @throws TypeError or RangeError when `n` is not an integer in that range, or the device has no MSI.
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_BUSY` when another mode is enabled.
   * @throws {@link VfioError} `ENOSPC` when the kernel granted fewer vectors than asked;
   *   errors of `ioctl(VFIO_DEVICE_SET_IRQS)`.
   */
  enableMsi(n = 1): IrqVector[] {
    return this.enable('msi', n);
  }

  /**
   * Enables MSI-X with `n` vectors, each with its own eventfd.
   *
   * @param n - Vectors, 1..`info(IrqIndex.MSIX).count`.
   * @returns The vectors, numbered 0..n-1.
   * @throws TypeError or RangeError when `n` is not an integer in that range, or the device has no MSI-X.
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_BUSY` when another mode is enabled.
   * @throws {@link VfioError} `ENOSPC` when the kernel granted fewer vectors than asked;
   *   errors of `ioctl(VFIO_DEVICE_SET_IRQS)`.
   */
  enableMsix(n: number): IrqVector[] {
    return this.enable('msix', n);
  }

  private enable(mode: Exclude<IrqMode, 'none'>, n: number): IrqVector[] {
    const index = MODE_INDEX[mode];
    const what = `${INDEX_NAMES[index]} vectors`;
    checkInteger(n, what, 1, 2 ** 32 - 1);
    const { count } = this.info(index);
    if (count === 0) throw new RangeError(`${this.device.bdf} has no ${INDEX_NAMES[index]}`);
    checkInteger(n, what, 1, count);
    if (this.currentMode !== 'none') {
      throw new VfioStateError(
        `${this.device.bdf} is in ${INDEX_NAMES[MODE_INDEX[this.currentMode]]} mode: disable() it first`,
        'ERR_VFIO_IRQ_BUSY',
      );
    }
    const vectors: IrqVector[] = [];
    try {
      for (let i = 0; i < n; i++) vectors.push(new IrqVector(this, index, i));
      const got = this.setIrqs(
        VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index,
        0,
        n,
        vectors.map((v) => v.file),
      );
      if (got > 0) {
        throw new VfioError(`ENOSPC: ${this.device.bdf} got ${got} of the ${n} ${INDEX_NAMES[index]} vectors asked for, ${SET_IRQS}`, {
          code: 'ENOSPC',
          errno: -28,
          syscall: SET_IRQS,
        });
      }
    } catch (err) {
      for (const v of vectors) v.dispose();
      throw err;
    }
    this.currentMode = mode;
    this.allocated = n;
    for (const v of vectors) this.armed.set(v.vector, v);
    return vectors;
  }

  /**
   * Changes one vector of the enabled mode: a fresh eventfd (and IrqVector)
   * for vector `n`, or, with null, none (the kernel frees its handler). The
   * vector it replaces is torn down; the others are untouched. Without
   * dynamic MSI-X (`info().resizable`), n must be below the count enabled.
   *
   * @param n - The vector number.
   * @returns The new vector, with a fresh eventfd.
   * @throws RangeError when `n` is out of range for the mode.
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_MODE` when no mode is enabled.
   * @throws {@link VfioError} from `ioctl(VFIO_DEVICE_SET_IRQS)`.
   */
  setVector(n: number): IrqVector;
  /**
   * Frees vector `n` of the enabled mode: the kernel releases its handler,
   * and the IrqVector that had it is torn down.
   *
   * @param n - The vector number.
   * @param value - `null`.
   * @returns undefined.
   * @throws As the other form does.
   */
  setVector(n: number, value: null): undefined;
  setVector(n: number, value?: null): IrqVector | undefined {
    const index = this.modeIndex('setVector');
    const info = this.info(index);
    const limit = info.resizable ? info.count : this.allocated;
    checkInteger(n, 'vector', 0, 2 ** 32 - 1);
    if (n >= limit) {
      throw new RangeError(
        `${INDEX_NAMES[index]} of ${this.device.bdf} has ${limit} vectors${info.resizable ? '' : ' enabled and cannot grow (VFIO_IRQ_INFO_NORESIZE): disable and enable more'}; ${n} is out of range`,
      );
    }
    const fresh = value === null ? undefined : new IrqVector(this, index, n);
    try {
      this.setIrqs(VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, n, 1, [fresh?.file ?? null]);
    } catch (err) {
      fresh?.dispose();
      throw err;
    }
    this.armed.get(n)?.dispose();
    this.armed.delete(n);
    if (fresh) this.armed.set(n, fresh);
    return fresh;
  }

  /**
   * Signals vectors from the kernel without the device (VFIO's loopback
   * trigger), one ioctl for all; for tests.
   *
   * @param vectors - A vector number or several, each armed in the enabled mode.
   * @throws RangeError for a vector that is not armed.
   * @throws {@link VfioStateError} `ERR_VFIO_IRQ_MODE` when no mode is enabled.
   */
  trigger(vectors: number | Iterable<number>): void {
    if (
      typeof vectors !== 'number' &&
      (vectors === null || typeof vectors !== 'object' || typeof (vectors as Partial<Iterable<number>>)[Symbol.iterator] !== 'function')
    )
      throw new TypeError(`vectors must be a vector number or an iterable of them, not ${kindOf(vectors)}`);
    const index = this.modeIndex('trigger');
    if (typeof vectors === 'number') {
      this.armedVector(index, vectors).trigger(); // its own prepared ioctl
      return;
    }
    const list = [...vectors];
    if (list.length === 0) return;
    let start = Infinity;
    let end = -Infinity;
    for (const v of list) {
      this.armedVector(index, v);
      start = Math.min(start, v);
      end = Math.max(end, v);
    }
    const fire = new Array<boolean>(end - start + 1).fill(false);
    for (const v of list) fire[v - start] = true;
    this.setIrqs(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, index, start, fire.length, fire);
  }

  private armedVector(index: IrqIndex, v: number): IrqVector {
    checkInteger(v, 'vector', 0, 2 ** 32 - 1);
    const vector = this.armed.get(v);
    if (!vector) throw new RangeError(`${INDEX_NAMES[index]} vector ${v} of ${this.device.bdf} is not armed`);
    return vector;
  }

  /** @internal */
  unmask(vector: IrqVector): void {
    this.intxAction(vector, VFIO_IRQ_SET_ACTION_UNMASK, 'unmask');
  }

  /** @internal */
  mask(vector: IrqVector): void {
    this.intxAction(vector, VFIO_IRQ_SET_ACTION_MASK, 'mask');
  }

  private intxAction(vector: IrqVector, action: number, what: string): void {
    if (vector.index !== IrqIndex.INTX) {
      throw new VfioStateError(`${what}() is for INTx: ${vector.name} is not masked by the kernel`, 'ERR_VFIO_IRQ_MODE');
    }
    this.setIrqs(VFIO_IRQ_SET_DATA_NONE | action, IrqIndex.INTX, 0, 1);
  }

  /**
   * Disables the enabled mode (VFIO_IRQ_SET_DATA_NONE | ACTION_TRIGGER with
   * count 0) and tears its vectors down, even when the kernel refused. Does
   * nothing when no mode is enabled.
   *
   * @throws {@link VfioError} when the kernel refused (the vectors are torn down all the same).
   */
  disable(): void {
    if (this.currentMode === 'none') return;
    const index = MODE_INDEX[this.currentMode];
    try {
      if (!this.device.isClosed) this.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, 0);
    } finally {
      for (const v of this.armed.values()) v.dispose();
      this.armed.clear();
      this.currentMode = 'none';
      this.allocated = 0;
    }
  }

  /** Disables interrupts and lets go of the device. Idempotent; the device's close does it too. */
  close(): void {
    if (this.closed) return;
    try {
      this.disable();
    } finally {
      this.closed = true;
      this.device.removeDependent(this);
    }
  }

  /** {@link DeviceInterrupts.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  private live(): VfioPciDevice {
    if (this.closed) throw new VfioStateError(`the interrupts of ${this.device.bdf} are closed`, 'ERR_VFIO_CLOSED');
    return this.device;
  }

  private modeIndex(what: string): IrqIndex {
    this.live();
    if (this.currentMode === 'none')
      throw new VfioStateError(`${what}(): no interrupt mode is enabled on ${this.device.bdf}`, 'ERR_VFIO_IRQ_MODE');
    return MODE_INDEX[this.currentMode];
  }

  private setIrqs(flags: number, index: number, start: number, count: number, data?: (NativeFile | null | boolean)[]): number {
    return this.live().native.setIrqs(flags, index, start, count, data);
  }
}
