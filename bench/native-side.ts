/**
 * The C side: builds bench/native-bench.cc (g++, C++17, against the
 * project's own uAPI headers) and runs it with a list of specs.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../vm/paths';

const SOURCE = path.join(PROJECT_ROOT, 'bench', 'native-bench.cc');
const UAPI = path.join(PROJECT_ROOT, 'native', 'uapi');
export const NATIVE_BENCH = path.join(PROJECT_ROOT, 'dist', 'bench', 'native-bench');

function mtime(file: string): number {
  return fs.statSync(file).mtimeMs;
}

/** Builds the program unless it is newer than its source and headers. */
export function buildNativeBench(log: (line: string) => void): string {
  const inputs = [SOURCE, ...fs.readdirSync(UAPI).map((f) => path.join(UAPI, f))];
  if (fs.existsSync(NATIVE_BENCH) && inputs.every((f) => mtime(f) <= mtime(NATIVE_BENCH))) return NATIVE_BENCH;
  log(`bench: g++ ${path.relative(PROJECT_ROOT, SOURCE)}`);
  fs.mkdirSync(path.dirname(NATIVE_BENCH), { recursive: true });
  execFileSync('g++', ['-std=c++17', '-O2', '-Wall', '-Wextra', '-o', NATIVE_BENCH, SOURCE], { stdio: 'inherit' });
  return NATIVE_BENCH;
}

export type Spec = Record<string, string | number>;

/** `op=map,id=...,size=4096`: one argv word per spec. */
export function specArg(spec: Spec): string {
  return Object.entries(spec)
    .map(([k, v]) => {
      const text = String(v);
      if (/[,=\s]/.test(text)) throw new RangeError(`spec value ${k}=${text} has a separator in it`);
      return `${k}=${text}`;
    })
    .join(',');
}

export interface NativeRun {
  /** Each spec's samples (ns per operation), by id. */
  samples: Map<string, number[]>;
  /** Set when the program failed: the specs without samples did not run. */
  error?: string;
}

/** Runs native-bench on `backend` with `devices` attached. */
export function runNativeBench(backend: string, devices: readonly string[], specs: Spec[]): NativeRun {
  let out: string;
  let error: string | undefined;
  try {
    out = execFileSync(NATIVE_BENCH, [backend, devices.join(','), ...specs.map(specArg)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 16 << 20,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    out = e.stdout ?? '';
    error = e.stderr?.trim() || e.message;
  }
  const samples = new Map<string, number[]>();
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const { id, ns } = JSON.parse(line) as { id: string; ns: number[] };
    samples.set(id, ns);
  }
  return { samples, error };
}
