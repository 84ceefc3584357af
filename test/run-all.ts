/**
 * `npm test`: every suite, guest included, and one closing line
 * `tests: N passed, N failed` counted from their real results.
 *
 *  host     pure TypeScript and the ABI check, on this machine
 *  harness  the guest harness itself: boots guests, kills them, reads device files
 *  guest    the library against real VFIO, in a guest on the project's kernel (bundled QEMU 10)
 *  robust   the process-level robustness tests (fuzz, cycles, kill, workers, second process),
 *           in a second guest on the project's kernel, beside the first
 *  stock    the same suite on Debian's stock kernel (legacy type1 only), on the system's QEMU,
 *           but for the files in STOCK_SKIPS
 *  lint     eslint, prettier and clang-format over the sources (one test)
 *
 * A suite that cannot run (no kernel, a dead guest) counts as failed with its reason.
 * The four suites that boot guests run side by side, and beside the host
 * suite and the linters (a guest mostly waits on its devices' timers); each
 * suite's output is printed whole when it ends.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runInGuest } from '../vm/guest';
import { KernelKind } from '../vm/kernel';
import { PROJECT_ROOT } from '../vm/paths';
import { prepareGuest } from '../vm/prepare';
import { QemuChoice } from '../vm/qemu';
import { fuzzSeedEnv } from './support/fuzz-seed-env';
import { prepareWitnessFiles } from './support/witness';

interface Counts {
  passed: number;
  failed: number;
  pending: number;
  failures: string[];
  /** What the suite's tests measured (test/support/figures.ts), for the summary. */
  figures?: string[];
}

const ROOT = PROJECT_ROOT;
const MOCHA = path.join(ROOT, 'node_modules/mocha/bin/mocha.js');
const REPORTER = path.join(ROOT, 'dist/test/support/count-reporter.js');
const resultsDir = path.join(ROOT, '.vm', 'results');
const log = (line: string): void => {
  process.stdout.write(`[run-all] ${line}\n`);
};

/** Which test files of a directory a suite runs: all but `skip`, or `only` these (names without `.test.ts`). */
interface Selection {
  skip?: readonly string[];
  only?: readonly string[];
}

function mochaArgs(dir: string, select: Selection = {}): string[] {
  const file = (name: string): string => `dist/test/${dir}/${name}.test.js`;
  const specs = select.only ? select.only.map(file) : [`dist/test/${dir}/**/*.test.js`];
  const ignores = (select.skip ?? []).flatMap((name) => ['--ignore', file(name)]);
  return ['--expose-gc', MOCHA, '--reporter', REPORTER, '--timeout', '120000', ...ignores, ...specs];
}

/**
 * Guest tests the stock kernel's suite leaves to the project kernel's: they
 * test the tooling around the library (the CLI, the README's programs), or
 * spawn many processes, and do the same on both kernels; what depends on the
 * kernel (backends, DMA, phys_list, P2P, interrupts, NVMe, lifecycle, modes)
 * runs on both. Of the process-level robustness files, `cycles` (2,000
 * opens and closes per backend, minutes under TCG) and `workers` (threads)
 * test the library's own bookkeeping through the same type1 calls the
 * project kernel's type1 cell makes; `kill` (the kernel releasing what a
 * killed process held) and `second-process` (the kernel's busy answers)
 * run on both.
 */
const STOCK_SKIPS = ['cli', 'readme-examples', 'worker-terminate', 'dma-pool', 'cycles', 'workers'];

/**
 * The project kernel's long process-level robustness tests: they run in a
 * guest of their own beside the rest of that suite (a guest is one emulated
 * CPU, so two use both of the host's cores once the shorter suites are done).
 */
const ROBUSTNESS = ['fuzz', 'cycles', 'kill', 'workers', 'second-process'];

function readCounts(file: string, why: string): Counts {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Counts;
  } catch {
    return { passed: 0, failed: 1, pending: 0, failures: [why] };
  }
}

/** A suite's output, kept whole and printed at once so parallel suites do not interleave. */
class Transcript {
  private chunks: string[] = [];
  constructor(private readonly title: string) {}
  write = (text: string | Buffer): void => {
    this.chunks.push(text.toString());
  };
  flush(): void {
    process.stdout.write(`\n===== ${this.title} =====\n${this.chunks.join('')}`);
  }
}

async function hostSuite(dir: string, env: NodeJS.ProcessEnv, out: Transcript): Promise<Counts> {
  const results = path.join(resultsDir, `${dir}.json`);
  fs.rmSync(results, { force: true });
  const child = spawn(process.execPath, mochaArgs(dir), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, NODE_VFIO_RESULTS: results },
  });
  child.stdout.on('data', out.write);
  child.stderr.on('data', out.write);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return readCounts(results, `the ${dir} suite ended (status ${code}) without reporting results`);
}

async function guestSuite(name: string, kernel: KernelKind, qemu: QemuChoice, select: Selection, out: Transcript): Promise<Counts> {
  const results = path.join(resultsDir, `${name}.json`);
  fs.rmSync(results, { force: true });
  const files = prepareWitnessFiles(path.join(ROOT, '.vm', `witness-${name}`));
  const run = await runInGuest({
    kernel,
    qemu,
    files,
    log: (line) => out.write(`${line}\n`),
    command: ['node', ...mochaArgs('guest', select)],
    env: { NODE_VFIO_RESULTS: results, ...fuzzSeedEnv() },
    onOutput: out.write,
    timeoutMs: 40 * 60_000,
  });
  if (run.failure) {
    const counts = readCounts(results, '');
    return { ...counts, failed: counts.failed + 1, failures: [...counts.failures, `${name} guest: ${run.failure}`] };
  }
  return readCounts(results, `the ${name} guest suite exited with status ${run.status} without reporting results`);
}

/** A command that passes or fails as a whole (the linters): one test. */
async function commandSuite(name: string, argv: string[], out: Transcript): Promise<Counts> {
  const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (d: Buffer): void => {
    out.write(d);
    tail = (tail + d.toString()).slice(-3000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return code === 0
    ? { passed: 1, failed: 0, pending: 0, failures: [] }
    : { passed: 0, failed: 1, pending: 0, failures: [`${name}: \`${argv.join(' ')}\` exited with status ${code}:\n${tail.trim()}`] };
}

async function main(): Promise<void> {
  fs.mkdirSync(resultsDir, { recursive: true });
  const suites: [string, Counts][] = [];
  // The full run needs every host test, the kernel's ABI check included: nothing may skip.
  const env: NodeJS.ProcessEnv = { NODE_VFIO_REQUIRE_KERNEL: '1' };
  let prepared = true;
  try {
    const custom = await prepareGuest({ kernel: 'custom', qemu: 'bundled', log });
    await prepareGuest({ kernel: 'debian', qemu: 'system', log });
    log(`guests: ${custom.kernel.source} on QEMU ${custom.qemu.version}; Debian's stock kernel on the system's QEMU`);
    env.NODE_VFIO_KERNEL_HEADERS = custom.kernel.headers;
  } catch (err) {
    prepared = false;
    const why = `the guest environment could not be prepared: ${(err as Error).message}`;
    log(why);
    suites.push(['guest', { passed: 0, failed: 1, pending: 0, failures: [why] }]);
  }
  const timed = async (name: string, title: string, run: (out: Transcript) => Promise<Counts>): Promise<[string, Counts]> => {
    const out = new Transcript(title);
    const started = Date.now();
    const counts = await run(out);
    out.write(`(${name}: ${Math.round((Date.now() - started) / 1000)} s)\n`);
    out.flush();
    return [name, counts];
  };
  // Host tests and the linters on one lane, the guests beside them (a guest mostly waits on its devices' timers).
  const hostLane = async (): Promise<[string, Counts][]> => [
    await timed('host', 'host suite: no VFIO needed', (out) => hostSuite('host', env, out)),
    await timed('lint', 'lint: eslint, prettier, clang-format', (out) => commandSuite('lint', ['npm', 'run', '-s', 'lint'], out)),
  ];
  if (!prepared) suites.push(...(await hostLane()));
  else {
    const [host, ...guests] = await Promise.all([
      hostLane(),
      timed('harness', 'harness suite: boots, kills and inspects guests', (out) => hostSuite('harness', env, out)),
      timed('guest', "guest suite: VFIO on the project's kernel (iommufd and type1), bundled QEMU", (out) =>
        guestSuite('guest', 'custom', 'bundled', { skip: ROBUSTNESS }, out),
      ),
      timed('robust', "guest suite: the robustness tests on the project's kernel, in a second guest", (out) =>
        guestSuite('robust', 'custom', 'bundled', { only: ROBUSTNESS }, out),
      ),
      timed('stock', "guest suite: VFIO on Debian's stock kernel (type1), the system's QEMU", (out) =>
        guestSuite('stock', 'debian', 'system', { skip: STOCK_SKIPS }, out),
      ),
    ]);
    suites.push(...host, ...(guests as [string, Counts][]));
  }
  let passed = 0;
  let failed = 0;
  process.stdout.write('\nsummary:\n');
  for (const [name, c] of suites) {
    passed += c.passed;
    failed += c.failed + c.pending; // a skipped test is not a pass: no test is skipped silently
    process.stdout.write(
      `  ${name.padEnd(8)} ${c.passed} passed, ${c.failed} failed${c.pending ? `, ${c.pending} skipped (counted as failed)` : ''}\n`,
    );
    for (const f of c.failures) process.stdout.write(`    ✗ ${f.split('\n').join('\n      ')}\n`);
    for (const f of c.figures ?? []) process.stdout.write(`    · ${f}\n`);
  }
  process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

void main();
