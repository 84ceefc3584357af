/**
 * The host lane's results: per metric the medians of the library's and the
 * C loop's samples, the overhead (library - C), the target and whether it is
 * met; as bench/results/host.json and as a Markdown table.
 */
import { formatNs, summarize } from '../stats';
import { HostMetric } from './metrics';

/** One metric's row of host.json. */
export interface HostRow {
  id: string;
  /** Median of the samples: CPU ns of the process per operation (irq.trigger.p50: wall-time latency, the median of the samples' p50s). */
  libraryNs: number;
  cNs: number;
  /** libraryNs - cNs. */
  overheadNs: number;
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

/** The row of `m` from both sides' samples (ns per operation). */
export function toRow(m: HostMetric, library: number[], c: number[]): HostRow {
  const lib = summarize(library).median;
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
  const lines = ['| metric | what | library | C | overhead | target | met | runs |', '| --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const r of rows) {
    const overhead = r.ratio === undefined ? formatDelta(r.overheadNs) : `${formatDelta(r.overheadNs)} (${r.ratio.toFixed(2)}×)`;
    const target = r.targetRatio === undefined ? `≤ ${formatNs(r.targetNs)}` : `≤ ${r.targetRatio.toFixed(2)}× C`;
    lines.push(
      `| ${r.id} | ${label.get(r.id) ?? ''} | ${formatNs(r.libraryNs)} | ${formatNs(r.cNs)} | ${overhead} | ${target} | ${r.met ? 'yes' : 'no'} | ${r.runs} |`,
    );
  }
  return lines.join('\n');
}
