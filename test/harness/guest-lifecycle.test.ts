/**
 * The guest harness itself, on the host: it boots real guests, reads the
 * device backing files from outside, and makes sure a dead, panicked or
 * hung guest is a failure that leaves no QEMU behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runInGuest } from '../../vm/guest';
import { runMochaInGuest } from '../../vm/mocha';
import { PROJECT_ROOT } from '../../vm/paths';
import { ivshmemByte, prepareWitnessFiles } from '../support/witness';

const quiet = (): void => {};

// Every guest this suite starts (itself or through the CLI) carries this tag on its command line.
const TAG = `harness-${process.pid}`;
process.env.NODE_VFIO_TAG = TAG;

/** QEMU processes that this suite started and that are still alive. */
function ourQemus(): string[] {
  try {
    return execFileSync('pgrep', ['-f', `nodevfio.tag=${TAG}( |$)`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe('guest harness', function () {
  this.timeout(240_000);
  afterEach(() => assert.deepEqual(ourQemus(), [], 'a QEMU process was left behind'));

  it('runs a command in the project directory and returns its output and exit status', async () => {
    const r = await runInGuest({ devices: [], log: quiet, command: ['sh', '-c', 'pwd; echo "to stderr" >&2; exit 3'] });
    assert.equal(r.failure, undefined);
    assert.equal(r.status, 3);
    // Now and then the serial line delivers one stray newline before the exit marker
    // (not yet explained; see the closing note of 2026-11-25): compare without trailing blank lines.
    assert.equal(r.output.replace(/\n+$/, '\n'), `${PROJECT_ROOT}\nto stderr\n`);
  });

  it('moves bytes both ways between the host file and the ivshmem BAR', async () => {
    const files = prepareWitnessFiles(path.join(PROJECT_ROOT, '.vm', 'witness-harness'));
    // In the guest: check the host's pattern through the BAR (sysfs resource2 mmap), then write its complement.
    const script = [
      'import mmap, os, sys',
      "f = os.open('/sys/bus/pci/devices/0000:00:04.0/resource2', os.O_RDWR | os.O_SYNC)",
      'm = mmap.mmap(f, 1 << 20)',
      'want = bytes(((((i + 1) * 2654435761) & 0xffffffff) >> 24) & 0xff for i in range(1 << 20))',
      "print('host pattern seen:', m[:] == want)",
      'm[:] = bytes(b ^ 0xff for b in want)',
      'm.flush()',
    ].join('\n');
    const r = await runInGuest({ devices: ['ivshmem'], files, log: quiet, command: ['python3', '-c', script] });
    assert.equal(r.failure, undefined);
    assert.equal(r.status, 0, r.output);
    assert.equal(r.output.replace(/\n+$/, '\n'), 'host pattern seen: True\n');
    const seen = fs.readFileSync(files.ivshmem);
    for (let i = 0; i < seen.length; i++) {
      if (seen[i] !== (ivshmemByte(i) ^ 0xff))
        assert.fail(`byte ${i} of the ivshmem file is ${seen[i]}, the guest wrote ${ivshmemByte(i) ^ 0xff}`);
    }
  });

  it('reports a kernel panic as a failure with the console tail', async () => {
    const r = await runInGuest({ devices: [], log: quiet, command: ['sh', '-c', 'echo c > /proc/sysrq-trigger; sleep 30'] });
    assert.equal(r.status, null);
    assert.match(r.failure ?? '', /the guest died before the command finished/);
    assert.match(r.failure ?? '', /Kernel panic/);
    assert.match(r.failure ?? '', /--- guest console \(tail\) ---/);
  });

  it('boots again, once, when the guest dies before the command starts', async () => {
    const lines: string[] = [];
    const r = await runInGuest({
      devices: [],
      log: (l) => lines.push(l),
      append: ['nodevfio.failfirstboot=1'],
      command: ['echo', 'second boot'],
    });
    assert.equal(r.failure, undefined);
    assert.equal(r.status, 0);
    assert.match(r.output, /second boot\n+$/, 'the command ran on the second boot');
    assert.match(lines.join('\n'), /died before the command started; booting again/);
  });

  it('reports a QEMU killed mid-run as a failure', async () => {
    let killed = false;
    const r = await runInGuest({
      devices: [],
      log: quiet,
      command: ['sh', '-c', 'echo ready; sleep 120'],
      onOutput: (text) => {
        if (!killed && text.includes('ready')) {
          killed = true;
          for (const pid of ourQemus()) process.kill(Number(pid), 'SIGKILL');
        }
      },
    });
    assert.ok(killed, 'the guest never said ready');
    assert.equal(r.status, null);
    assert.match(r.failure ?? '', /QEMU was killed by SIGKILL/);
  });

  it('kills a guest that runs past its time-out', async () => {
    const r = await runInGuest({ devices: [], log: quiet, timeoutMs: 10_000, command: ['sleep', '600'] });
    assert.equal(r.status, null);
    assert.match(r.failure ?? '', /did not finish within 10 s and was killed/);
  });

  it('leaves no QEMU behind when the process that started it is killed', async () => {
    const runner = path.join(PROJECT_ROOT, 'dist/cli/main.js');
    const child = spawn(process.execPath, [runner, 'vm', 'run', '--devices', 'edu', '--', 'sh', '-c', 'echo ready; sleep 120'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.on('close', () => reject(new Error('the CLI ended before the guest said ready')));
    });
    assert.equal(ourQemus().length, 1);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    for (let i = 0; i < 50 && ourQemus().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  });

  it('runs a mocha suite in the guest and reads its results back (node-vfio/vm)', async () => {
    const files = { ivshmem: path.join(PROJECT_ROOT, '.vm', 'witness-mocha', 'ivshmem.bin') };
    fs.mkdirSync(path.dirname(files.ivshmem), { recursive: true });
    const shm = Buffer.alloc(1 << 20);
    shm.write('host!');
    fs.writeFileSync(files.ivshmem, shm);
    const r = await runMochaInGuest(['dist/test/fixtures/guest-mocha-sample.js'], { devices: ['ivshmem'], files, log: quiet });
    assert.equal(r.failure, undefined);
    assert.equal(r.status, 1, 'mocha exits with the number of failures');
    assert.equal(r.files.ivshmem, files.ivshmem);
    assert.equal(r.tests?.passed, 1);
    assert.equal(r.tests?.failed, 1);
    assert.equal(r.tests?.failures[0].title, 'sample suite in the guest fails on purpose');
    assert.match(r.tests?.failures[0].error ?? '', /arithmetic on purpose/);
    await assert.rejects(runMochaInGuest([]), TypeError);
  });

  it('boots the system QEMU when asked, and the bundled QEMU 10 by default', async () => {
    const system = await runInGuest({ qemu: 'system', devices: [], log: quiet, command: ['sh', '-c', 'echo "$NODE_VFIO_QEMU_VERSION"'] });
    assert.equal(system.failure, undefined);
    assert.equal(system.qemu.choice, 'system');
    assert.equal(system.output.trim(), system.qemu.version);
    const bundled = await runInGuest({ devices: [], log: quiet, command: ['true'] });
    assert.equal(bundled.qemu.choice, 'bundled');
    assert.match(bundled.qemu.version, /^(1\d|[2-9]\d)\./, 'QEMU 10 or newer');
    assert.notEqual(system.qemu.version, bundled.qemu.version);
  });

  it('runs `npx node-vfio vm run` as a new user would', async () => {
    const out = execFileSync('npx', ['node-vfio', 'vm', 'run', '--', 'sh', '-c', 'ls /dev/iommu /dev/vfio/devices'], {
      cwd: PROJECT_ROOT,
      encoding: 'utf8',
      timeout: 180_000,
    });
    assert.match(out, /^\/dev\/iommu$/m);
    assert.match(out, /vfio0\s+vfio1\s+vfio2/);
  });
});
