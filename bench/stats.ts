/** Summaries of timing samples (nanoseconds per operation). */

export interface Summary {
  /** Timed samples taken. */
  runs: number;
  /** Nanoseconds per operation. */
  min: number;
  median: number;
}

export function summarize(ns: readonly number[]): Summary {
  if (ns.length === 0) throw new RangeError('no samples');
  const sorted = [...ns].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { runs: sorted.length, min: round(sorted[0]), median: round(median) };
}

/** `a / b` of the medians (or of the minima), to 3 decimals. */
export function ratio(a: Summary, b: Summary, of: 'median' | 'min' = 'median'): number {
  return Math.round((a[of] / b[of]) * 1000) / 1000;
}

function round(ns: number): number {
  return Math.round(ns * 10) / 10;
}

/** 12.3 ns, 4.56 µs, 7.89 ms. */
export function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toPrecision(3)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toPrecision(3)} µs`;
  return `${ns.toPrecision(3)} ns`;
}
