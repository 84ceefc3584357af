/**
 * The host lane's results: per metric the medians of the library's and the
 * C side's samples, the overhead (library - C), the target and whether it is
 * met; as bench/results/host.json and as a Markdown table.
 *
 * For the DMA metrics the C side also runs inside the library's process, in
 * turns with it (c-same-process.cc): there `cNs` is that C's median and the
 * overhead the median of the pairs' differences, each pair timed back to
 * back; `cProgramNs` keeps the C loop's own-process median beside it.
 */
import { formatNs, summarize } from '../stats';
import { HostMetric } from './metrics';

/** One metric's row of host.json. */
export interface HostRow {
  id: string;
  /** Median of the samples: CPU ns of the process per operation (irq.trigger.p50: wall-time latency, the median of the samples' p50s). */
  libraryNs: number;
  cNs: number;
  /** libraryNs - cNs; for paired rows, the median of the pairs' differences. */
  overheadNs: number;
  /** Paired rows: the median of the C loop's samples in its own process. */
  cProgramNs?: number;
  /** Paired rows: 'same-process' (the C side timed in the library's process, in turns with it). */
  pairing?: 'same-process';
  /** The most overheadNs may be (irq.event: what its ratio target allows at this cNs). */
  targetNs: number;
  met: boolean;
  /** Samples behind each median (per side). */
  runs: number;
  /** irq.event: libraryNs / cNs, and the most it may be. */
  ratio?: number;
  targetRatio?: number;
}

/** bench/results/host.json: the rows, and the machine and conditions of the run. */
export interface HostReport {
  metrics: HostRow[];
  machine: Record<string, string | number | boolean>;
}

const round = (ns: number): number => Math.round(ns * 10) / 10;

/**
 * The row of `m` from both sides' samples (ns per operation). `paired`: the
 * same-process C side's samples, pair by pair with `library` (the DMA rows);
 * then `c` is the C loop's own-process samples, kept as cProgramNs.
 */
export function toRow(m: HostMetric, library: number[], c: number[], paired?: number[]): HostRow {
  const lib = summarize(library).median;
  if (paired && paired.length > 0) {
    if (paired.length !== library.length) throw new Error(`${m.id}: ${library.length} library samples, ${paired.length} paired C samples`);
    const cNs = summarize(paired).median;
    const overheadNs = round(summarize(library.map((x, i) => x - paired[i])).median);
    const targetNs = 'ratio' in m.target ? round((m.target.ratio - 1) * cNs) : m.target.overheadNs;
    return {
      id: m.id,
      libraryNs: lib,
      cNs,
      overheadNs,
      targetNs,
      met: overheadNs <= targetNs,
      runs: library.length,
      cProgramNs: summarize(c).median,
      pairing: 'same-process',
    };
  }
  const cNs = summarize(c).median;
  const overheadNs = round(lib - cNs);
  const runs = Math.min(library.length, c.length);
  if ('ratio' in m.target) {
    const targetNs = round((m.target.ratio - 1) * cNs);
    const ratio = Math.round((lib / cNs) * 1000) / 1000;
    return { id: m.id, libraryNs: lib, cNs, overheadNs, targetNs, met: ratio <= m.target.ratio, runs, ratio, targetRatio: m.target.ratio };
  }
  const targetNs = m.target.overheadNs;
  return { id: m.id, libraryNs: lib, cNs, overheadNs, targetNs, met: overheadNs <= targetNs, runs };
}

/** host.json: one metric a line, so that diffs of it read well. */
export function toJson(r: HostReport): string {
  const metrics = r.metrics.map((m) => `    ${JSON.stringify(m)}`).join(',\n');
  return `{\n  "metrics": [\n${metrics}\n  ],\n  "machine": ${JSON.stringify(r.machine)}\n}\n`;
}

/** formatNs for a difference, which may be negative. */
function formatDelta(ns: number): string {
  return ns < 0 ? `−${formatNs(-ns)}` : formatNs(ns);
}

/** The Markdown table (the console's and the README's). */
export function table(rows: readonly HostRow[], metrics: readonly HostMetric[]): string {
  const label = new Map(metrics.map((m) => [m.id, m.label]));
  const lines = [
    '| metric | what | library | C | overhead | target | met | runs | C as its own program |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const overhead = r.ratio === undefined ? formatDelta(r.overheadNs) : `${formatDelta(r.overheadNs)} (${r.ratio.toFixed(2)}×)`;
    const target = r.targetRatio === undefined ? `≤ ${formatNs(r.targetNs)}` : `≤ ${r.targetRatio.toFixed(2)}× C`;
    lines.push(
      `| ${r.id} | ${label.get(r.id) ?? ''} | ${formatNs(r.libraryNs)} | ${formatNs(r.cNs)}${r.pairing ? ' ¹' : ''} | ${overhead} | ${target} | ${r.met ? 'yes' : 'no'} | ${r.runs} | ${r.cProgramNs === undefined ? 'the same' : formatNs(r.cProgramNs)} |`,
    );
  }
  if (rows.some((r) => r.pairing))
    lines.push(
      '',
      "¹ C inside the library's process, timed in turns with it; the overhead is the median of the pairs' differences (library − C, sample by sample).",
    );
  return lines.join('\n');
}
