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
  /** No command is awaited any more (they timed out or failed). */
  idle(): void;
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

  idle(): void {
    // the loop stops by itself once nothing is awaited
  }

  detach(): void {
    this.queue = undefined;
  }
}

/** Anything that says "an interrupt came": an IrqVector of lib/interrupts, or a test double. */
export interface InterruptSource {
  on(event: 'interrupt', listener: () => void): unknown;
  off(event: 'interrupt', listener: () => void): unknown;
}

/**
 * Listens to its vector only while commands are awaited, so that an idle
 * controller does not keep the event loop alive; a completion that comes
 * while nobody listens is reaped with the next one.
 */
export class InterruptCompletions implements CompletionMode {
  readonly kind = 'interrupt';
  private queue?: Reaper;
  private listening = false;
  private readonly onInterrupt = (): void => {
    const q = this.queue;
    if (!q) return;
    q.reap();
    if (q.awaited === 0) this.stopListening();
  };

  constructor(readonly vector: number, private readonly source: InterruptSource) {}

  attach(queue: Reaper): void {
    this.queue = queue;
  }

  kick(): void {
    if (this.listening || !this.queue) return;
    this.source.on('interrupt', this.onInterrupt);
    this.listening = true;
  }

  idle(): void {
    this.stopListening();
  }

  private stopListening(): void {
    if (!this.listening) return;
    this.source.off('interrupt', this.onInterrupt);
    this.listening = false;
  }

  detach(): void {
    this.stopListening();
    this.queue = undefined;
  }
}
