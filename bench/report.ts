/**
 * The results: per metric the addon's and the C program's median and min
 * (ns per operation), their ratio, the runs, the target and whether it was
 * met; a JSON file and a Markdown table (the console's and the README's).
 */
import type { RawResult } from './guest';
import type { Target } from './metrics/types';
import { formatNs, ratio, summarize, Summary } from './stats';

export interface MeasuredRow {
  id: string;
  label: string;
  backend: string;
  addon: Summary;
  c: Summary;
  /** addon median / C median. */
  ratio: number;
  /** addon min / C min: the least disturbed runs of each. */
  minRatio: number;
  target?: string;
  met?: boolean;
  jsLoop?: Summary;
  /** JavaScript loop median / addon median. */
  jsLoopOverAddon?: number;
  /** Operations per second at the medians, where that is the usual measure (I/O). */
  perSecond?: { addon: number; c: number };
}

export interface FailedRow {
  id: string;
  label: string;
  target?: string;
  /** Why it has no numbers in this run. */
  error: string;
}

export type Row = MeasuredRow | FailedRow;

export interface Report {
  date: string;
  machine: Record<string, string | number>;
  rounds: number;
  unit: 'ns per operation';
  metrics: Row[];
}

function targetText(t: Target): string {
  return `≤ ${t.maxRatio.toFixed(2)}× C${t.minSpeedupOverJsLoop ? `, JS loop ≥ ${t.minSpeedupOverJsLoop}× addon` : ''}`;
}

function met(row: MeasuredRow, t: Target): boolean {
  return row.ratio <= t.maxRatio && (t.minSpeedupOverJsLoop === undefined || (row.jsLoopOverAddon ?? 0) >= t.minSpeedupOverJsLoop);
}

export function toRows(raw: RawResult[]): Row[] {
  return raw.map(({ metric: m, samples, error }): Row => {
    const target = m.target && targetText(m.target);
    if (error || samples.addon.length === 0 || samples.c.length === 0) {
      return { id: m.id, label: m.label, target, error: error ?? 'no samples' };
    }
    const addon = summarize(samples.addon);
    const c = summarize(samples.c);
    const row: MeasuredRow = { id: m.id, label: m.label, backend: m.backend, addon, c, ratio: ratio(addon, c), minRatio: ratio(addon, c, 'min'), target };
    if (samples.jsLoop.length > 0) {
      row.jsLoop = summarize(samples.jsLoop);
      row.jsLoopOverAddon = ratio(row.jsLoop, addon);
    }
    if (m.perSecond) row.perSecond = { addon: Math.round(1e9 / addon.median), c: Math.round(1e9 / c.median) };
    if (m.target) row.met = met(row, m.target);
    return row;
  });
}

function isMeasured(r: Row): r is MeasuredRow {
  return 'addon' in r;
}

const HEADER = ['metric', 'backend', 'addon median', 'addon min', 'C median', 'C min', 'addon / C', 'mins: addon / C', 'runs', 'JS loop median (÷ addon)', 'target', 'met'];

function cells(r: Row): string[] {
  if (!isMeasured(r)) return [r.label, '', '', '', '', '', '', '', '', '', r.target ?? '', `failed: ${r.error}`];
  const rate = (ns: number, perSecond?: number): string => `${formatNs(ns)}${perSecond ? ` (${perSecond} /s)` : ''}`;
  const js = r.jsLoop ? `${formatNs(r.jsLoop.median)} (${r.jsLoopOverAddon!.toFixed(1)}×)` : '';
  return [r.label, r.backend, rate(r.addon.median, r.perSecond?.addon), formatNs(r.addon.min), rate(r.c.median, r.perSecond?.c),
    formatNs(r.c.min), `${r.ratio.toFixed(2)}×`, `${r.minRatio.toFixed(2)}×`, `${r.addon.runs} / ${r.c.runs}`, js, r.target ?? '—', r.met === undefined ? '—' : r.met ? 'yes' : 'no'];
}

/** The report as JSON, one metric a line: small, and diffs read well. */
export function toJson(report: Report): string {
  const { metrics, ...head } = report;
  const top = JSON.stringify(head);
  return `${top.slice(0, -1)},"metrics":[\n${metrics.map((m) => JSON.stringify(m)).join(',\n')}\n]}\n`;
}

/** A Markdown table of the report. */
export function table(report: Report): string {
  const lines = [HEADER, HEADER.map(() => '---'), ...report.metrics.map(cells)];
  return lines.map((l) => `| ${l.join(' | ')} |`).join('\n');
}
