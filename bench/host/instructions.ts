/**
 * npm run bench:host:instructions: what the library executes per operation
 * beyond C, counted instead of timed. This host's speed moves from minute to
 * minute by more than some targets are wide, and the library's code slows
 * down more than C's when it does; an instruction count does not move.
 *
 *   node dist/bench/host/instructions.js [--out FILE]
 *
 * For map4k and link1024 it runs each side (library-count.js in Node, the C
 * program c-count) under the fake kernel and valgrind's callgrind twice, with
 * a small and a large number of operations, and takes the difference of the
 * two totals per operation: start-up, warm-up and exit cancel out, what is
 * left is the steady state (the library's after V8 optimized it: Node runs
 * with --no-concurrent-recompilation, so that optimized code is installed
 * when compiled and not later under valgrind's one-thread-at-a-time
 * scheduling, and with fixed random and hash seeds, so that start-up does the
 * same work in both runs). Both sides' counts include the fake kernel's instructions,
 * which are the same for both; library − C is what the library adds. It
 * prints a table and writes bench/results/host-instructions.json. It needs
 * valgrind (Debian: the valgrind package); the run takes about two minutes.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../vm/paths';
import { buildCCount, buildFakeKernel } from './build';
import { createFakeSysfs, FAKE_DEVICE } from './fake-sysfs';
import { LINK_FRAGMENTS } from './plan';

/** The counted metrics: operations in the small and the large run, and what one operation is. */
const METRICS = [
  { id: 'map4k', small: 20_000, large: 70_000, per: 1, unit: 'map + unmap pair' },
  { id: 'link1024', small: 20, large: 70, per: LINK_FRAGMENTS, unit: 'fragment of a 1,024-fragment link + unmap' },
] as const;

/** One row of host-instructions.json. */
export interface InstructionRow {
  id: string;
  unit: string;
  libraryInstructions: number;
  cInstructions: number;
  overheadInstructions: number;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** Total instructions callgrind counted for `command`, run under the fake kernel. */
function collected(command: string[], shim: string, dir: string): number {
  const out = path.join(dir, `callgrind.${process.pid}.out`);
  const r = spawnSync('valgrind', ['--tool=callgrind', '--smc-check=all', `--callgrind-out-file=${out}`, ...command], {
    env: { ...process.env, LD_PRELOAD: shim, FAKE_KERNEL_SYSCALL: '0' },
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    timeout: 600_000,
  });
  fs.rmSync(out, { force: true });
  if (r.error) throw new Error(`valgrind: ${r.error.message} (Debian: apt-get install valgrind)`);
  const m = /Collected : (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m)
    throw new Error(
      `${path.basename(command.find((a) => a.endsWith('.js')) ?? command[0])} under callgrind failed (status ${r.status}): ${r.stderr.slice(-2000)}`,
    );
  return Number(m[1]);
}

function main(argv: string[]): void {
  let out = path.join(PROJECT_ROOT, 'bench', 'results', 'host-instructions.json');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = path.resolve(argv[++i]);
    else throw new RangeError(`unknown argument ${argv[i]}`);
  }
  const started = Date.now();
  const shim = buildFakeKernel(log);
  const cCount = buildCCount(log);
  const sysfs = createFakeSysfs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-vfio-callgrind-'));
  const rows: InstructionRow[] = [];
  try {
    for (const m of METRICS) {
      const library = (n: number): string[] => [
        process.execPath,
        '--no-concurrent-recompilation',
        // Fixed seeds: with random ones, start-up work differs from run to run (by millions of
        // instructions) and would not cancel out between the small and the large run.
        '--random-seed=1',
        '--hash-seed=1',
        path.join(__dirname, 'library-count.js'),
        sysfs.root,
        FAKE_DEVICE.bdf,
        m.id,
        String(n),
      ];
      const c = (n: number): string[] => [cCount, m.id, String(n)];
      const perOp = (side: (n: number) => string[]): number => {
        const small = collected(side(m.small), shim, dir);
        const large = collected(side(m.large), shim, dir);
        return Math.round((large - small) / ((m.large - m.small) * m.per));
      };
      log(`bench:host:instructions: ${m.id}`);
      const libraryInstructions = perOp(library);
      const cInstructions = perOp(c);
      rows.push({ id: m.id, unit: m.unit, libraryInstructions, cInstructions, overheadInstructions: libraryInstructions - cInstructions });
    }
  } finally {
    sysfs.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const valgrind = spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const report = { metrics: rows, machine: { node: process.version, valgrind, date: new Date().toISOString().slice(0, 10) } };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  const lines = ['| metric | per | library | C | library − C |', '| --- | --- | --- | --- | --- |'];
  for (const r of rows) lines.push(`| ${r.id} | ${r.unit} | ${r.libraryInstructions} | ${r.cInstructions} | ${r.overheadInstructions} |`);
  process.stdout.write(
    `${lines.join('\n')}\n\ninstructions per operation (callgrind), Node ${process.version}, ${valgrind}; ` +
      `${Math.round((Date.now() - started) / 1000)} s; written to ${path.relative(process.cwd(), out)}\n`,
  );
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench:host:instructions: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
