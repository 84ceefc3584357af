/**
 * npm run bench: the addon against the same system calls in C, side by side
 * in one guest run.
 *
 *   node dist/bench/run.js [--rounds N] [--quick] [--kernel custom|debian] [--out FILE] [--only REGEX]
 *
 * --only runs only the metrics whose id matches REGEX, e.g. `--only '^p2p\.'`
 * for the peer-to-peer storage rows (NVMe into a peer BAR directly against
 * through CPU memory).
 *
 * On the host it builds what it needs (native-bench; the addon if it was
 * never built), boots the test guest with this script in it, then prints
 * the table and writes the JSON (bench/results/latest.json by default). In
 * the guest it measures.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runInGuest } from '../vm/guest';
import { PROJECT_ROOT } from '../vm/paths';
import { runGuestBench } from './guest';
import { buildNativeBench } from './native-side';
import { notes, Report, Row, table, toJson, toRows } from './report';

interface Options {
  rounds: number;
  scale: number;
  kernel: 'custom' | 'debian';
  out: string;
  /** In the guest: where the rows go for the host. */
  inGuest?: string;
  /** --only REGEX: only the metrics whose id matches (e.g. '^p2p\\.' for the P2P storage rows). */
  only?: string;
}

function parse(argv: string[]): Options {
  const o: Options = { rounds: 5, scale: 1, kernel: 'custom', out: path.join(PROJECT_ROOT, 'bench', 'results', 'latest.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') o.rounds = Math.max(1, Number(argv[++i]) || 1);
    else if (a === '--quick') {
      o.rounds = 2;
      o.scale = 0.25;
    } else if (a === '--kernel') o.kernel = argv[++i] === 'debian' ? 'debian' : 'custom';
    else if (a === '--out') o.out = path.resolve(argv[++i]);
    else if (a === '--in-guest') o.inGuest = path.resolve(argv[++i]);
    else if (a === '--only') {
      o.only = argv[++i] ?? '';
      new RegExp(o.only); // a bad pattern fails here, on the host, not in the guest
    } else throw new RangeError(`unknown argument ${a}`);
  }
  return o;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

interface GuestOutput {
  guestKernel: string;
  vcpus: number;
  node: string;
  rows: Row[];
  /** The QEMU that ran the guest, e.g. '10.0.2 (bundled)'; set on the host. */
  qemu?: string;
}

async function measure(o: Options): Promise<GuestOutput> {
  buildNativeBench(log);
  const warmupMs = o.scale < 1 ? { first: 500, later: 100 } : { first: 1500, later: 300 };
  const only = o.only === undefined ? undefined : new RegExp(o.only);
  const rows = toRows(await runGuestBench({ rounds: o.rounds, scale: o.scale, warmupMs, log, only }));
  return { guestKernel: os.release(), vcpus: os.cpus().length, node: process.version, rows };
}

function ensureAddon(): void {
  if (fs.existsSync(path.join(PROJECT_ROOT, 'build', 'Release', 'vfio.node'))) return;
  log('bench: building the addon (npm run install)');
  execFileSync('npm', ['run', 'install'], { cwd: PROJECT_ROOT, stdio: 'inherit' });
}

async function measureInGuest(o: Options): Promise<GuestOutput> {
  ensureAddon();
  buildNativeBench(log);
  const raw = path.join(PROJECT_ROOT, '.vm', 'bench', `guest-${process.pid}.json`);
  fs.mkdirSync(path.dirname(raw), { recursive: true });
  const args = [
    '--rounds',
    String(o.rounds),
    ...(o.scale !== 1 ? ['--quick'] : []),
    ...(o.only ? ['--only', o.only] : []),
    '--in-guest',
    raw,
  ];
  const r = await runInGuest({
    kernel: o.kernel,
    command: ['node', 'dist/bench/run.js', ...args],
    timeoutMs: 15 * 60_000,
    log,
    onOutput: (t) => process.stderr.write(t),
  });
  if (r.failure || r.status !== 0 || !fs.existsSync(raw)) {
    throw new Error(`the benchmark failed in the guest (status ${r.status})${r.failure ? `: ${r.failure}` : ''}`);
  }
  const out = JSON.parse(fs.readFileSync(raw, 'utf8')) as GuestOutput;
  fs.rmSync(raw);
  out.qemu = `${r.qemu.version} (${r.qemu.choice === 'bundled' ? 'bundled' : "the system's"})`;
  return out;
}

function report(o: Options, g: GuestOutput, accel: string): Report {
  return {
    date: new Date().toISOString().slice(0, 10),
    machine: {
      cores: os.cpus().length,
      guest: `${accel}, ${g.vcpus} vCPU${g.vcpus === 1 ? '' : 's'}`,
      guestKernel: g.guestKernel,
      qemu: g.qemu ?? process.env.NODE_VFIO_QEMU_VERSION ?? 'unknown',
      node: g.node,
    },
    rounds: o.rounds,
    unit: 'ns per operation',
    metrics: g.rows,
  };
}

async function main(argv: string[]): Promise<void> {
  const o = parse(argv);
  const guest = process.env.NODE_VFIO_GUEST === '1';
  if (guest && o.inGuest) {
    fs.writeFileSync(o.inGuest, JSON.stringify(await measure(o)));
    return;
  }
  const g = guest ? await measure(o) : await measureInGuest(o);
  const accel = guest ? 'guest' : process.env.NODE_VFIO_ACCEL === 'kvm' ? 'KVM' : 'TCG';
  const r = report(o, g, accel);
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  fs.writeFileSync(o.out, toJson(r));
  const m = r.machine;
  const below = notes(r)
    .map((n) => `${n}\n`)
    .join('');
  process.stdout.write(
    `${table(r)}\n\n${below}${below ? '\n' : ''}${m.cores} cores, ${m.guest}, guest kernel ${m.guestKernel}, QEMU ${m.qemu}, Node ${m.node}, ${r.date}; ` +
      `medians of ${r.rounds} interleaved rounds; written to ${path.relative(process.cwd(), o.out)}\n`,
  );
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exitCode = 1;
});
