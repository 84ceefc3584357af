/**
 * What one round of the host lane runs, as both sides take it: the library's
 * child process (library-side.ts) and the C loop (c-loop.cc) get the same
 * `key=value` words, so the two sides do the same number of the same
 * operations per sample.
 */

/** Operations per timed sample, per kind of metric. */
export interface Batches {
  /** map + unmap pairs (map4k, map4k.live1000). */
  map: number;
  /** Links of the 1,024-fragment list (link1024). */
  link: number;
  /** Register accesses (each mmio row). */
  mmio: number;
  /** Events (irq.event). */
  irqEvent: number;
  /** Triggers whose latencies give one p50 (irq.trigger.p50). */
  irqTrigger: number;
}

/** One side's round: where the fake device is, how many samples, how long to warm up, how many operations per sample. */
export interface Plan {
  /** Root of the fake sysfs tree. */
  sysfs: string;
  /** The fake device's PCI address. */
  bdf: string;
  /** Timed samples per metric in this round. */
  samples: number;
  /** Least time each metric runs untimed first (V8 tiers hot code up meanwhile). */
  warmupMs: number;
  batch: Batches;
}

/** Mappings alive besides the measured one in map4k.live1000. */
export const LIVE_MAPPINGS = 1000;
/** Fragments of the list in link1024. */
export const LINK_FRAGMENTS = 1024;

const KEYS: Record<keyof Batches, string> = { map: 'map', link: 'link', mmio: 'mmio', irqEvent: 'irq_event', irqTrigger: 'irq_trigger' };

/** The plan as argv words: sysfs=... bdf=... samples=... warmup_ms=... map=... */
export function planArgs(p: Plan): string[] {
  return [
    `sysfs=${p.sysfs}`,
    `bdf=${p.bdf}`,
    `samples=${p.samples}`,
    `warmup_ms=${p.warmupMs}`,
    ...Object.entries(KEYS).map(([k, word]) => `${word}=${p.batch[k as keyof Batches]}`),
  ];
}

function positive(words: Map<string, string>, key: string): number {
  const n = Number(words.get(key));
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${key} must be a positive integer, not ${words.get(key)}`);
  return n;
}

/** The inverse of planArgs. */
export function parsePlan(argv: readonly string[]): Plan {
  const words = new Map(
    argv.map((a) => {
      const eq = a.indexOf('=');
      if (eq < 1) throw new RangeError(`arguments are key=value words, not ${a}`);
      return [a.slice(0, eq), a.slice(eq + 1)] as [string, string];
    }),
  );
  const text = (key: string): string => {
    const v = words.get(key);
    if (!v) throw new RangeError(`${key}= is missing`);
    return v;
  };
  const batch = Object.fromEntries(Object.entries(KEYS).map(([k, word]) => [k, positive(words, word)])) as unknown as Batches;
  return { sysfs: text('sysfs'), bdf: text('bdf'), samples: positive(words, 'samples'), warmupMs: positive(words, 'warmup_ms'), batch };
}
