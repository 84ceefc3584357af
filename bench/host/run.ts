/**
 * npm run bench:host: the library's own cost per operation, on the host's
 * real CPU. In the TCG guest JavaScript pays 90-200× its host cost and
 * kernel code 20-40×, so the guest's ratios say little about what the
 * library itself adds; here nothing is emulated.
 *
 *   node dist/bench/host/run.js [--rounds N] [--syscall] [--out FILE]
 *
 * It builds the fake kernel (an LD_PRELOAD library answering the iommufd and
 * VFIO ioctls in user space) and the C loop with the system's c++, builds a
 * fake sysfs tree, then runs interleaved rounds (5 by default) of the
 * library's side (a Node child process: dist/bench/host/library-side.js)
 * and of the C loop, both under the fake kernel. It prints the table and
 * writes bench/results/host.json: per metric the medians of every round's
 * samples (CPU ns of the process per operation, so that other load on the
 * machine does not count; irq.trigger.p50 is a latency, wall time), library
 * minus C, the target and whether it is met. For the DMA metrics (map4k,
 * map4k.live1000, link1024) the library's side also loads the C side as an
 * addon (c-same-process.cc) and times it in turns with the library, sample
 * by sample: this host's speed shifts from one process, and one minute, to
 * the next by more than those targets are wide, and two samples taken back
 * to back in one process shift together. Those rows' C and overhead come from
 * the pairs; the C loop's own-process figure is printed beside them.
 * --syscall makes every faked ioctl also cross into the kernel once
 * (FAKE_KERNEL_SYSCALL=1). Either side failing, or the fake kernel not
 * seeing exactly the calls a side timed, fails the run (exit status 1).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../vm/paths';
import { buildCLoop, buildFakeKernel, buildSameProcessC } from './build';
import { createFakeSysfs, FAKE_DEVICE } from './fake-sysfs';
import { HOST_METRICS } from './metrics';
import { Plan, planArgs } from './plan';
import { HostReport, table, toJson, toRow } from './report';

interface Options {
  rounds: number;
  syscall: boolean;
  out: string;
}

function parse(argv: string[]): Options {
  const o: Options = { rounds: 5, syscall: false, out: path.join(PROJECT_ROOT, 'bench', 'results', 'host.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') {
      o.rounds = Number(argv[++i]);
      if (!Number.isInteger(o.rounds) || o.rounds < 1) throw new RangeError(`--rounds must be a positive integer, not ${argv[i]}`);
    } else if (a === '--syscall') o.syscall = true;
    else if (a === '--out') o.out = path.resolve(argv[++i]);
    else throw new RangeError(`unknown argument ${a}`);
  }
  return o;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

type Side = 'library' | 'c';

/** One metric's samples from one run of a side: the side's, and (library side, DMA metrics) the same-process C side's. */
interface SideSamples {
  ns: number[];
  cNs?: number[];
}

/** Runs one side once under the fake kernel: its samples by metric id. */
function runSide(side: Side, command: string[], env: NodeJS.ProcessEnv): Map<string, SideSamples> {
  const r = spawnSync(command[0], command.slice(1), { env, encoding: 'utf8', maxBuffer: 16 << 20, timeout: 120_000 });
  const lines = (r.stdout ?? '')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { id?: string; ns?: number[]; cNs?: number[]; done?: boolean });
  if (r.status !== 0 || !lines.some((l) => l.done)) {
    const why = r.error?.message ?? (r.stderr.trim() || `exit status ${r.status}, signal ${r.signal}`);
    throw new Error(`the ${side} side failed: ${why}`);
  }
  return new Map(lines.filter((l) => l.id !== undefined).map((l) => [l.id!, { ns: l.ns!, cNs: l.cNs }]));
}

function firstLine(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8' }).split('\n')[0].trim();
  } catch {
    return 'unknown';
  }
}

function main(argv: string[]): void {
  const o = parse(argv);
  const started = Date.now();
  const shim = buildFakeKernel(log);
  const cLoop = buildCLoop(log);
  const sameProcessC = buildSameProcessC(log);
  const sysfs = createFakeSysfs();
  const samples = new Map(HOST_METRICS.map((m) => [m.id, { library: [] as number[], c: [] as number[], paired: [] as number[] }]));
  try {
    const plan: Plan = {
      sysfs: sysfs.root,
      bdf: FAKE_DEVICE.bdf,
      samples: 9,
      warmupMs: 250,
      batch: { map: 2000, link: 4, mmio: 50_000, irqEvent: 5000, irqTrigger: 1000 },
    };
    const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: shim, FAKE_KERNEL_SYSCALL: o.syscall ? '1' : '0' };
    const commands: Record<Side, string[]> = {
      library: [process.execPath, path.join(__dirname, 'library-side.js'), ...planArgs(plan), `same_process_c=${sameProcessC}`],
      c: [cLoop, ...planArgs(plan)],
    };
    for (let round = 0; round < o.rounds; round++) {
      // Alternate which side goes first, so that drift of the machine hits both alike.
      const order: Side[] = round % 2 === 0 ? ['library', 'c'] : ['c', 'library'];
      log(`bench:host: round ${round + 1} of ${o.rounds} (${order.join(', then ')})`);
      for (const side of order) {
        const got = runSide(side, commands[side], env);
        for (const [id, s] of samples) {
          const got1 = got.get(id);
          if (!got1 || got1.ns.length === 0) throw new Error(`the ${side} side reported no samples for ${id}`);
          s[side].push(...got1.ns);
          if (got1.cNs) s.paired.push(...got1.cNs);
        }
      }
    }
  } finally {
    sysfs.remove();
  }
  const report: HostReport = {
    metrics: HOST_METRICS.map((m) => {
      const s = samples.get(m.id)!;
      return toRow(m, s.library, s.c, s.paired);
    }),
    machine: {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      kernel: os.release(),
      node: process.version,
      compiler: firstLine('c++', ['--version']),
      date: new Date().toISOString().slice(0, 10),
      rounds: o.rounds,
      fakeKernelSyscall: o.syscall,
    },
  };
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, toJson(report));
  const m = report.machine;
  const seconds = Math.round((Date.now() - started) / 1000);
  process.stdout.write(
    `${table(report.metrics, HOST_METRICS)}\n\n${m.cpu}, ${m.cores} cores, Linux ${m.kernel}, Node ${m.node}, ${m.date}; ` +
      `medians of ${o.rounds} interleaved rounds${o.syscall ? ', every faked ioctl also a real system call' : ''}; ${seconds} s; ` +
      `written to ${path.relative(process.cwd(), o.out)}\n`,
  );
}

try {
  main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`bench:host: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
