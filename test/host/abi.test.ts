import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeRun } from '../support/describe-run';

// Compiles test/abi/abi_check.cc against the guest kernel's uAPI headers
// (a `make headers_install` output directory) and runs it: every ioctl
// number, constant and struct layout in native/uapi/ must match the kernel.

const repoRoot = path.resolve(__dirname, '../../..');
const checkSource = path.join(repoRoot, 'test', 'abi', 'abi_check.cc');

const NO_HEADERS =
  'NODE_VFIO_KERNEL_HEADERS is not set. Run this test through `npm test`, which builds the ' +
  'guest kernel and points NODE_VFIO_KERNEL_HEADERS at its headers_install output.';

/**
 * The -isystem directory: $NODE_VFIO_KERNEL_HEADERS/include, or undefined when
 * the variable is unset and NODE_VFIO_REQUIRE_KERNEL is not 1 (the fast lane,
 * `npm run test:unit`, has no kernel build). A directory that is not a
 * headers_install output always fails.
 */
function kernelInclude(): string | undefined {
  const dir = process.env.NODE_VFIO_KERNEL_HEADERS;
  if (!dir) {
    if (process.env.NODE_VFIO_REQUIRE_KERNEL === '1') throw new Error(`${NO_HEADERS} (NODE_VFIO_REQUIRE_KERNEL=1 requires them)`);
    return undefined;
  }
  const include = path.join(dir, 'include');
  if (!fs.existsSync(path.join(include, 'linux', 'vfio.h'))) {
    throw new Error(
      `NODE_VFIO_KERNEL_HEADERS=${dir} is not a headers_install output directory: ` +
        `${path.join(include, 'linux', 'vfio.h')} does not exist`,
    );
  }
  return include;
}

interface AbiResult {
  status: number | null;
  output: string;
  checks: number;
  mismatches: number;
}

/** Compile abi_check.cc with extra flags into `dir`, run it, parse its summary. */
function buildAndRun(include: string, dir: string, name: string, defines: string[]): AbiResult {
  const exe = path.join(dir, name);
  const args = ['-std=c++17', '-Wall', '-Wextra', ...defines, '-isystem', include, checkSource, '-o', exe];
  const cc = spawnSync('g++', args, { encoding: 'utf8' });
  assert.equal(cc.status, 0, describeRun(`g++ ${args.join(' ')}`, cc));

  const run = spawnSync(exe, [], { encoding: 'utf8' });
  assert.ok(run.error === undefined && run.signal === null, describeRun(exe, run));
  const summary = /^abi: (\d+) checks, (\d+) mismatches$/m.exec(run.stdout);
  assert.ok(summary, describeRun(`${exe} printed no summary`, run));
  return {
    status: run.status,
    output: run.stdout,
    checks: Number(summary[1]),
    mismatches: Number(summary[2]),
  };
}

describe('uAPI ABI of native/uapi against the kernel headers', function () {
  this.timeout(120_000);

  let include = '';
  let tmp = '';

  before(function () {
    const found = kernelInclude();
    if (found === undefined) {
      process.stderr.write(`    skipped, not failed: ${NO_HEADERS} (set NODE_VFIO_REQUIRE_KERNEL=1 to fail instead)\n`);
      this.skip();
    }
    include = found;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nvfio-abi-'));
  });

  after(function () {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('matches every ioctl number, constant and struct layout', function () {
    const r = buildAndRun(include, tmp, 'abi_check', []);
    assert.equal(r.mismatches, 0, r.output);
    assert.equal(r.status, 0, r.output);
    assert.ok(r.checks > 200, `only ${r.checks} checks ran:\n${r.output}`);
  });

  it('reports and names a deliberately wrong value', function () {
    const r = buildAndRun(include, tmp, 'abi_check_broken', ['-DNVFIO_ABI_SELFTEST_BREAK']);
    assert.equal(r.status, 1, r.output);
    assert.equal(r.mismatches, 1, r.output);
    assert.match(r.output, /^mismatch: VFIO_IOMMU_MAP_DMA: /m);
  });
});
