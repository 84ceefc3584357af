/**
 * The guest suites alone, for working on them:
 *   node dist/test/run-guest.js [--kernel custom|debian] [--qemu bundled|system] [--witness DIR] [mocha args, e.g. files or --grep X]
 * Fresh witness files (the ivshmem file, the nvme image) go to DIR (default .vm/witness-dev-PID, removed
 * afterwards, so runs side by side never share a disk image).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runInGuest } from '../vm/guest';
import { PROJECT_ROOT } from '../vm/paths';
import { QemuChoice, qemuChoice } from '../vm/qemu';
import { fuzzSeedEnv } from './support/fuzz-seed-env';
import { prepareWitnessFiles } from './support/witness';

async function main(argv: string[]): Promise<number> {
  let kernel: 'custom' | 'debian' = 'custom';
  let qemu: QemuChoice = qemuChoice();
  let witness = path.join(PROJECT_ROOT, '.vm', `witness-dev-${process.pid}`);
  let ownWitness = true;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--kernel') kernel = argv[++i] === 'debian' ? 'debian' : 'custom';
    else if (argv[i] === '--qemu') qemu = qemuChoice(argv[++i]);
    else if (argv[i] === '--witness') {
      witness = path.resolve(argv[++i]);
      ownWitness = false;
    } else rest.push(argv[i]);
  }
  const mocha = path.join(PROJECT_ROOT, 'node_modules/mocha/bin/mocha.js');
  const specs = rest.length > 0 ? rest : ['dist/test/guest/**/*.test.js'];
  const r = await runInGuest({
    kernel,
    qemu,
    files: prepareWitnessFiles(witness),
    command: ['node', '--expose-gc', mocha, '--timeout', '120000', ...specs],
    onOutput: (t) => process.stdout.write(t),
    env: fuzzSeedEnv(),
  });
  if (r.failure) process.stderr.write(`${r.failure}\n`);
  if (ownWitness) fs.rmSync(witness, { recursive: true, force: true });
  return r.status ?? 1;
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
