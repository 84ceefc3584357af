/**
 * What makes a queue pair look at its completion queue. A queue pair only
 * knows how to reap (consume every new completion entry); a mode decides
 * when that happens:
 *
 *   - PolledCompletions: while commands are awaited, reap on every turn of
 *     the event loop (setImmediate), or every `intervalMs`. Nothing else
 *     needed; a CPU spins while I/O is in flight.
 *   - InterruptCompletions: reap when an interrupt source fires (an MSI-X
 *     vector's eventfd); the completion queue is created with interrupts
 *     enabled on that vector.
 */
import { checkFunction, checkInt, checkObject, kindOf } from '../../validate';

/** The side of a queue pair a mode drives. */
export interface Reaper {
  /** Consumes the completions that arrived; returns how many. */
  reap(): number;
  /** Commands whose promise is still pending. */
  readonly awaited: number;
}

/** What makes a queue pair reap its completion queue, and when. */
export interface CompletionMode {
  /** Which mode this is. */
  readonly kind: 'polled' | 'interrupt';
  /** The MSI-X vector the completion queue signals, or undefined for none. */
  readonly vector: number | undefined;
  /** The queue pair this mode drives (called once, by its constructor). */
  attach(queue: Reaper): void;
  /** Commands were submitted: completions will follow. */
  kick(): void;
  /** No command is awaited any more (they timed out or failed). */
  idle(): void;
  /** The queue pair is closing: stop driving it. */
  detach(): void;
}

/** The longest delay a Node timer takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 0x7fffffff;

/** `queue` must have reap() (and `awaited`): TypeError naming it otherwise, before a timer could call it. */
function checkReaper(queue: Reaper): Reaper {
  checkObject(queue, 'queue');
  checkFunction(queue.reap, 'queue.reap');
  if (typeof queue.awaited !== 'number') throw new TypeError(`queue.awaited must be a number, not ${kindOf(queue.awaited)}`);
  return queue;
}

/**
 * Completions by polling: while commands are awaited, the queue is reaped on
 * every turn of the event loop (setImmediate), or every `intervalMs`. No
 * interrupts; a CPU spins while I/O is in flight. Nothing runs while idle.
 */
export class PolledCompletions implements CompletionMode {
  /** Polled. */
  readonly kind = 'polled';
  /** No interrupt vector: the completion queue is created with interrupts off. */
  readonly vector = undefined;
  private queue?: Reaper;
  private scheduled = false;

  /** `intervalMs` 0 (default): poll on every event-loop turn; else every `intervalMs`. */
  constructor(private readonly intervalMs = 0) {
    checkInt(intervalMs, 'intervalMs', 0, MAX_TIMER_MS);
  }

  /** Drives `queue` (a {@link QueuePair}, or any {@link Reaper}). */
  attach(queue: Reaper): void {
    this.queue = checkReaper(queue);
  }

  /** Starts polling, unless it already is. */
  kick(): void {
    if (this.scheduled || !this.queue) return;
    this.scheduled = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.intervalMs > 0) setTimeout(this.tick, this.intervalMs);
    else setImmediate(this.tick);
  }

  private readonly tick = (): void => {
    const q = this.queue;
    if (!q) {
      this.scheduled = false;
      return;
    }
    try {
      q.reap();
    } finally {
      // a callback that threw is an uncaught exception; the polling goes on
      if (q.awaited > 0 && this.queue) this.schedule();
      else this.scheduled = false;
    }
  };

  /** Nothing to do: the polling stops by itself once nothing is awaited. */
  idle(): void {
    // the loop stops by itself once nothing is awaited
  }

  /** Stops polling the queue. */
  detach(): void {
    this.queue = undefined;
  }
}

/** Anything that says "an interrupt came": an IrqVector of lib/interrupts, or a test double. */
export interface InterruptSource {
  /** Adds a listener called on every interrupt. */
  on(event: 'interrupt', listener: () => void): unknown;
  /** Removes it. */
  off(event: 'interrupt', listener: () => void): unknown;
}

/**
 * Listens to its vector only while commands are awaited, so that an idle
 * controller does not keep the event loop alive; a completion that comes
 * while nobody listens is reaped with the next one.
 */
export class InterruptCompletions implements CompletionMode {
  /** Interrupt-driven. */
  readonly kind = 'interrupt';
  private queue?: Reaper;
  private listening = false;
  private readonly onInterrupt = (): void => {
    const q = this.queue;
    if (!q) return;
    try {
      q.reap(); // every completion that arrived, one CQ head doorbell write
    } finally {
      if (q.awaited === 0) this.stopListening();
    }
  };

  /**
   * Reaps on the interrupts of `source`.
   *
   * @param vector - The MSI-X vector number the completion queue is created with.
   * @param source - What fires on that vector: its {@link IrqVector}.
   */
  constructor(
    /** The MSI-X vector the completion queue signals. */
    readonly vector: number,
    private readonly source: InterruptSource,
  ) {
    checkInt(vector, 'vector', 0, 2047);
    const s = checkObject<InterruptSource>(source, 'source');
    checkFunction(s.on, 'source.on');
    checkFunction(s.off, 'source.off');
  }

  /** Drives `queue` (a {@link QueuePair}, or any {@link Reaper}). */
  attach(queue: Reaper): void {
    this.queue = checkReaper(queue);
  }

  /** Starts listening to the vector, unless it already does. */
  kick(): void {
    if (this.listening || !this.queue) return;
    this.source.on('interrupt', this.onInterrupt);
    this.listening = true;
  }

  /** Stops listening: an idle controller does not keep the event loop alive. */
  idle(): void {
    this.stopListening();
  }

  private stopListening(): void {
    if (!this.listening) return;
    this.source.off('interrupt', this.onInterrupt);
    this.listening = false;
  }

  /** Stops listening and forgets the queue. */
  detach(): void {
    this.stopListening();
    this.queue = undefined;
  }
}
