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

/** The side of a queue pair a mode drives. */
export interface Reaper {
  /** Consumes the completions that arrived; returns how many. */
  reap(): number;
  /** Commands whose promise is still pending. */
  readonly awaited: number;
}

export interface CompletionMode {
  readonly kind: 'polled' | 'interrupt';
  /** The MSI-X vector the completion queue signals, or undefined for none. */
  readonly vector: number | undefined;
  attach(queue: Reaper): void;
  /** Commands were submitted: completions will follow. */
  kick(): void;
  detach(): void;
}

export class PolledCompletions implements CompletionMode {
  readonly kind = 'polled';
  readonly vector = undefined;
  private queue?: Reaper;
  private scheduled = false;

  /** `intervalMs` 0 (default): poll on every event-loop turn; else every `intervalMs`. */
  constructor(private readonly intervalMs = 0) {}

  attach(queue: Reaper): void {
    this.queue = queue;
  }

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
    q.reap();
    if (q.awaited > 0 && this.queue) this.schedule();
    else this.scheduled = false;
  };

  detach(): void {
    this.queue = undefined;
  }
}

/** Anything that says "an interrupt came": an IrqVector of lib/interrupts, or a test double. */
export interface InterruptSource {
  on(event: 'interrupt', listener: () => void): unknown;
  off(event: 'interrupt', listener: () => void): unknown;
}

export class InterruptCompletions implements CompletionMode {
  readonly kind = 'interrupt';
  private queue?: Reaper;
  private readonly onInterrupt = (): void => {
    this.queue?.reap();
  };

  constructor(readonly vector: number, private readonly source: InterruptSource) {}

  attach(queue: Reaper): void {
    this.queue = queue;
    this.source.on('interrupt', this.onInterrupt);
  }

  kick(): void {
    // the controller signals the vector when it posts completions
  }

  detach(): void {
    this.source.off('interrupt', this.onInterrupt);
    this.queue = undefined;
  }
}
