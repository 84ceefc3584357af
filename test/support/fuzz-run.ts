/**
 * Runs fuzz processes (test/fixtures/fuzz-child.js) and judges them: a
 * process must end on its own, by exit 0 and no signal, within its time,
 * with a report that has no internal error, no
 * uncaught exception and no unhandled rejection. A crash names the call it
 * died in (the trace file) and the seed that replays it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FuzzReport } from './fuzz-driver';

const CHILD = path.resolve(__dirname, '../fixtures/fuzz-child.js');
/** How long a child may take to end once it has closed everything and reported. */
const LINGER_MS = 20_000;

/** A child's report, with what the process saw. */
export interface ChildReport extends FuzzReport {
  world: string;
  epochs: number;
  /** ms from the process's start to its first call. */
  loadMs: number;
  worldFailures: string[];
  uncaught: { call: number; entry: string; args: string; error: string }[];
  unhandled: { call: number; entry: string; args: string; error: string }[];
  warnings: string[];
  active: string[];
  /** Where each timer still active at the end was made (the top of its creation stack). */
  timers: string[];
}

/** How one process ended. */
export interface ChildRun {
  report?: ChildReport;
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  /** It reported, everything closed, and did not end within LINGER_MS: something still held its event loop. */
  lingered: boolean;
  lastCall: string;
  output: string;
}

/** Runs one fuzz process to its end (or kills it after `timeoutMs`). */
export async function runFuzzChild(world: string, seed: number, calls: number, timeoutMs: number): Promise<ChildRun> {
  const trace = path.join(os.tmpdir(), `node-vfio-fuzz-${process.pid}-${world}-${seed}.trace`);
  const child = spawn(process.execPath, [CHILD, world, String(seed), String(calls), trace], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let lingered = false;
  let exitTimer: NodeJS.Timeout | undefined;
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString();
    // Everything is closed once the report is out: the process must end on its own, soon.
    if (exitTimer === undefined && output.includes('FUZZ-REPORT ')) {
      exitTimer = setTimeout(() => {
        lingered = true;
        child.kill('SIGKILL');
      }, LINGER_MS);
    }
  });
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const [status, signal] = await new Promise<[number | null, string | null]>((r) => child.on('close', (c, s) => r([c, s])));
  clearTimeout(timer);
  clearTimeout(exitTimer);
  let lastCall = '';
  try {
    lastCall = fs.readFileSync(trace, 'utf8').trim();
    fs.rmSync(trace);
  } catch {
    // no call was made
  }
  const line = output.split('\n').find((l) => l.startsWith('FUZZ-REPORT '));
  const report = line ? (JSON.parse(line.slice('FUZZ-REPORT '.length)) as ChildReport) : undefined;
  return { report, status, signal, timedOut, lingered, lastCall, output };
}

/** What is wrong with a run (empty when nothing is), for an assertion message. */
export function problems(run: ChildRun, replay: string): string[] {
  const out: string[] = [];
  const r = run.report;
  if (run.lingered)
    out.push(
      `hang: the process did not end within ${LINGER_MS / 1000} s of closing everything; still active then: ${r?.active.join(', ') || 'nothing'}; replay: ${replay}` +
        (r?.timers.length ? `\ntimers made at:\n${r.timers.join('\n--\n')}` : ''),
    );
  else if (run.signal)
    out.push(
      `killed by ${run.signal}${run.timedOut ? ' (hang: it did not end in time)' : ''}, in ${run.lastCall || '(no call)'}; replay: ${replay}`,
    );
  else if (run.status !== 0)
    out.push(`exit status ${run.status}, last call ${run.lastCall}; replay: ${replay}\n${run.output.slice(-3000)}`);
  if (!r) {
    out.push(`no report; last call ${run.lastCall}; replay: ${replay}\n${run.output.slice(-3000)}`);
    return out;
  }
  for (const f of r.internal)
    out.push(`engine-internal error (${f.count}x) in call #${f.call} ${f.entry}(${f.args}) ${f.how}: ${f.reason}\n${f.stack ?? ''}`);
  for (const u of r.uncaught) out.push(`uncaught exception after call #${u.call} ${u.entry}(${u.args}): ${u.error}`);
  for (const u of r.unhandled) out.push(`unhandled rejection after call #${u.call} ${u.entry}(${u.args}): ${u.error}`);
  return out;
}

/** The figures of a run, one line. */
export function fuzzFigures(label: string, seed: number, run: ChildRun): string {
  const r = run.report;
  const hung = run.lingered || run.timedOut ? 1 : 0;
  const crashed = !hung && (run.signal || run.status !== 0) ? 1 : 0;
  const internal = r ? r.internal.reduce((n, f) => n + f.count, 0) : 0;
  const refused = r ? Object.values(r.refused).reduce((a, b) => a + b, 0) : 0;
  const skipped = r ? Object.values(r.skipped).reduce((a, b) => a + b, 0) : 0;
  return (
    `fuzz ${label} seed ${seed}: ${r?.calls ?? 0} calls of ${r?.entries ?? 0} entries (${r ? r.entries - r.neverCalled.length : 0} reached), ` +
    `crashes ${crashed}, hangs ${hung}, uncaught ${r?.uncaught.length ?? 0}, unhandled ${r?.unhandled.length ?? 0}, engine-internal ${internal}` +
    `; ${r?.ok ?? 0} returned, ${refused} refused with the library's errors, ` +
    `${skipped} declined by the guards; ${r?.epochs ?? 0} worlds, ${Math.round((r?.durationMs ?? 0) / 100) / 10} s (+${Math.round((r?.loadMs ?? 0) / 100) / 10} s to load)`
  );
}

/** The fuzz's fixed seed: every run makes these calls, so a regression shows the same way each time. */
export const FIXED_SEED = 13;

/**
 * The seeds of a run: NODE_VFIO_FUZZ_SEED alone when it is set (to replay a
 * failure), else the fixed seed and a fresh one (new calls each run; every
 * failure prints its seed and the line that replays it).
 */
export function fuzzSeeds(): number[] {
  const env = process.env.NODE_VFIO_FUZZ_SEED;
  if (env !== undefined && env !== '') {
    const seed = Number(env);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new RangeError(`NODE_VFIO_FUZZ_SEED must be an integer in [0, 2^32), got ${env}`);
    return [seed];
  }
  return [FIXED_SEED, (Date.now() ^ (process.pid << 16)) >>> 0];
}
