/**
 * A phys_list link the kernel refuses part-way says which fragment it
 * refused, where that fragment lies in its memory, and what to check: run
 * in a child process without CAP_IPC_LOCK and with RLIMIT_MEMLOCK at 64 KiB,
 * a list of eight 16 KiB buffers pins past the limit at one of its
 * fragments, through the one-call path (IOMMU_IOAS_MAP or
 * VFIO_IOMMU_MAP_DMA per run) and, under iommufd, the path of memfds
 * mapped as files (IOMMU_IOAS_MAP_FILE); nothing of the list stays mapped.
 * The hints themselves, with and without the capability, are checked on
 * the host (test/host/error-hints.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BackendKind } from '../../lib/iommu/backend';
import { BDF, forEachBackend } from '../support/guest';

const LIB = path.resolve(__dirname, '../../lib');
const FRAGMENTS = 8;
const FRAGMENT_BYTES = 16 * 1024;

/** Links a list of FRAGMENTS separate buffers (memfds as files when `asFile`) in a child with no CAP_IPC_LOCK and 64 KiB of RLIMIT_MEMLOCK. */
function linkPastMemlock(backend: BackendKind, asFile: boolean): { status: number | null; out: string } {
  const script = `
    const lib = require(${JSON.stringify(LIB)});
    const space = lib.AddressSpace.open({ backend: ${JSON.stringify(backend)} });
    space.openDevice(${JSON.stringify(BDF.edu)});
    const buffers = Array.from({ length: ${FRAGMENTS} }, () => lib.DmaBuffer.allocate(${FRAGMENT_BYTES}, { kind: 'memfd' }));
    const list = lib.PhysList.cpu(buffers.map((buffer) => ({ buffer, asFile: ${asFile} })));
    try {
      space.mapPhysList(list);
      console.log(JSON.stringify({ mapped: true }));
    } catch (e) {
      const pinned = /^VmPin:\\s*(\\d+)/m.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1];
      console.log(JSON.stringify({ name: e.name, code: e.code, syscall: e.syscall, message: e.message, pinned: Number(pinned) }));
    }
  `;
  const r = spawnSync(
    'setpriv',
    ['--bounding-set=-ipc_lock', '--inh-caps=-ipc_lock', 'prlimit', '--memlock=65536:65536', process.execPath, '-e', script],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { status: r.status, out: r.stdout + r.stderr };
}

forEachBackend('a refused phys_list link names its fragment', (backend) => {
  const paths: { name: string; asFile: boolean }[] = [{ name: 'the one-call path (user memory)', asFile: false }];
  if (backend === 'iommufd') paths.push({ name: 'memfds mapped as files (IOMMU_IOAS_MAP_FILE)', asFile: true });
  for (const p of paths) {
    it(`${p.name}: ENOMEM past RLIMIT_MEMLOCK names the fragment, its offset and length, and the limit to raise`, () => {
      const r = linkPastMemlock(backend, p.asFile);
      assert.equal(r.status, 0, r.out);
      const e = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, string | number | boolean>;
      assert.equal(e.mapped, undefined, 'the list pinned past the limit');
      assert.equal(e.name, 'VfioError', r.out);
      assert.equal(e.code, 'ENOMEM');
      const m = new RegExp(
        `: linking fragment (\\d+) \\(offset 0x0, ${FRAGMENT_BYTES} bytes of its DmaBuffer\\) of the ${FRAGMENTS}-fragment list failed; nothing of the list stays mapped`,
      ).exec(String(e.message));
      assert.ok(m, String(e.message));
      assert.ok(Number(m[1]) >= 1 && Number(m[1]) < FRAGMENTS, `fragment ${m[1]}: the ones before it fit in 64 KiB`);
      assert.match(String(e.message), /\(pinning was refused: raise RLIMIT_MEMLOCK \(ulimit -l, now 64 KiB; it counts every pinned page/);
      assert.equal(e.pinned, 0, 'nothing of the list stays pinned');
    });
  }
});
