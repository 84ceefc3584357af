/**
 * The results: per metric the addon's and the C program's median and min
 * (ns per operation), their ratio, the runs, the target and whether it was
 * met; a JSON file and a Markdown table (the console's and the README's).
 */
import type { RawResult } from './guest';
import { PENDING } from './metrics/pending';
import { formatNs, ratio, summarize, Summary } from './stats';

export interface MeasuredRow {
  id: string;
  label: string;
  backend: string;
  addon: Summary;
  c: Summary;
  /** addon median / C median. */
  ratio: number;
  target: string;
  met: boolean;
  jsLoop?: Summary;
  /** JavaScript loop median / addon median. */
  jsLoopOverAddon?: number;
}

export interface OtherRow {
  id: string;
  label: string;
  target: string;
  /** Not measurable yet, and why. */
  pending?: string;
  /** Measurable but failed in this run. */
  error?: string;
}

export type Row = MeasuredRow | OtherRow;

export interface Report {
  date: string;
  machine: Record<string, string | number>;
  rounds: number;
  unit: 'ns per operation';
  metrics: Row[];
}

function targetText(maxRatio: number, minSpeedup?: number): string {
  return `≤ ${maxRatio.toFixed(2)}× C${minSpeedup ? `, JS loop ≥ ${minSpeedup}× addon` : ''}`;
}

export function toRows(raw: RawResult[]): Row[] {
  const rows: Row[] = raw.map(({ metric: m, samples, error }) => {
    const target = targetText(m.target.maxRatio, m.target.minSpeedupOverJsLoop);
    const label = m.label;
    if (error || samples.addon.length === 0 || samples.c.length === 0) {
      return { id: m.id, label, target, error: error ?? 'no samples' };
    }
    const addon = summarize(samples.addon);
    const c = summarize(samples.c);
    const row: MeasuredRow = { id: m.id, label, backend: m.backend, addon, c, ratio: ratio(addon, c), target, met: false };
    if (samples.jsLoop.length > 0) {
      row.jsLoop = summarize(samples.jsLoop);
      row.jsLoopOverAddon = ratio(row.jsLoop, addon);
    }
    row.met = row.ratio <= m.target.maxRatio &&
      (m.target.minSpeedupOverJsLoop === undefined || (row.jsLoopOverAddon ?? 0) >= m.target.minSpeedupOverJsLoop);
    return row;
  });
  return [...rows, ...PENDING.map(({ id, label, target, pending }) => ({ id, label, target, pending }))];
}

function isMeasured(r: Row): r is MeasuredRow {
  return 'addon' in r;
}

const HEADER = ['metric', 'backend', 'addon median', 'addon min', 'C median', 'C min', 'addon / C', 'runs', 'JS loop median (÷ addon)', 'target', 'met'];

function cells(r: Row): string[] {
  if (!isMeasured(r)) {
    const why = r.pending ? `pending: ${r.pending}` : `failed: ${r.error}`;
    return [r.label, '', '', '', '', '', '', '', '', r.target, why];
  }
  const js = r.jsLoop ? `${formatNs(r.jsLoop.median)} (${r.jsLoopOverAddon!.toFixed(1)}×)` : '';
  return [r.label, r.backend, formatNs(r.addon.median), formatNs(r.addon.min), formatNs(r.c.median), formatNs(r.c.min),
    `${r.ratio.toFixed(2)}×`, `${r.addon.runs} / ${r.c.runs}`, js, r.target, r.met ? 'yes' : 'no'];
}

/** A Markdown table of the report. */
export function table(report: Report): string {
  const lines = [HEADER, HEADER.map(() => '---'), ...report.metrics.map(cells)];
  return lines.map((l) => `| ${l.join(' | ')} |`).join('\n');
}
