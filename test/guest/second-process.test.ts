/**
 * A device held by one process is refused to another with a clear error:
 * a VfioError with code EBUSY whose message says the device (or its IOMMU
 * group) is in use, whichever backend holds it and whichever asks. Under
 * iommufd the kernel answers a second cdev bind with EINVAL (vfio_df_open:
 * a cdev cannot share a device) or EBUSY (its group is open through a type1
 * container); the library reports both as EBUSY. Once the holder closes,
 * the other process opens every device at once. The same holds between two
 * address spaces of one process.
 */
import assert from 'node:assert/strict';
import { AddressSpace } from '../../lib/address-space';
import { JsonChild, fixture } from '../support/children';
import { figure } from '../support/figures';
import { BDF, forEachBackend, MATRIX } from '../support/guest';
import type { Attempt } from '../fixtures/second-open';

const DEVICES = [BDF.edu, BDF.ivshmem, BDF.nvme];
const VENDORS: Record<string, number> = { [BDF.edu]: 0x1234, [BDF.ivshmem]: 0x1af4, [BDF.nvme]: 0x1b36 };
/** The backends this kernel offers: the other process asks through each. */
const BACKENDS = MATRIX.filter((c) => !c.absent).map((c) => c.backend);

/** The error a device held elsewhere must give. */
function assertInUse(a: Pick<Attempt, 'backend' | 'bdf' | 'error'>, holder: string): void {
  const what = `${a.bdf} through ${a.backend}, held through ${holder}`;
  assert.ok(a.error, `${what}: opened although another process holds it`);
  assert.equal(a.error.name, 'VfioError', `${what}: ${a.error.message}`);
  assert.equal(a.error.code, 'EBUSY', `${what}: ${a.error.message}`);
  assert.equal(a.error.errno, -16);
  assert.match(a.error.message, /is in use: another process, or another address space of this one, has it open/, what);
  assert.doesNotMatch(a.error.message, /legacy container|binds once/, what);
}

function summary(attempts: Attempt[]): string {
  return attempts
    .map((a) => `${a.backend} ${a.error?.code ?? 'opened'} (${/answered (\w+)/.exec(a.error?.message ?? '')?.[1] ?? a.error?.syscall})`)
    .join(', ');
}

forEachBackend('a device another process holds', (backend) => {
  it(`is refused to a second process with EBUSY, "in use", through ${BACKENDS.join(' and ')}; once let go, that process opens it at once`, async function () {
    this.timeout(240_000);
    const space = AddressSpace.open({ backend });
    const child = new JsonChild(fixture('second-open'), [BACKENDS.join(','), DEVICES.join(',')], { stdin: true });
    try {
      for (const bdf of DEVICES) space.openDevice(bdf);
      const { first, fds } = await child.next<{ first: Attempt[]; fds: { before: number; after: number } }>(180_000);
      assert.equal(first.length, BACKENDS.length * DEVICES.length);
      for (const a of first) assertInUse(a, backend);
      assert.equal(fds.after, fds.before, 'the failed opens left no file open in the second process');
      space.close();
      child.send('again');
      const { again } = await child.next<{ again: Attempt[] }>(60_000);
      for (const a of again) {
        assert.equal(a.error, undefined, `${a.bdf} through ${a.backend} after the holder closed: ${a.error?.message}`);
        assert.equal(a.vendor, VENDORS[a.bdf]);
      }
      const { code } = await child.end(30_000);
      assert.equal(code, 0, child.stderr);
      figure(
        `second process [held through ${backend}]: ${summary(first)}; after the holder closed: ${again.length} of ${again.length} opened`,
      );
    } finally {
      space.close();
      child.process.kill('SIGKILL');
    }
  });

  it('is refused to a second address space of the same process alike, and opens there once the first closes', () => {
    const first = AddressSpace.open({ backend });
    try {
      for (const bdf of DEVICES) first.openDevice(bdf);
      for (const other of BACKENDS) {
        using second = AddressSpace.open({ backend: other });
        for (const bdf of DEVICES) {
          let error: Attempt['error'];
          try {
            second.openDevice(bdf);
          } catch (err) {
            error = err as Attempt['error'];
          }
          assertInUse({ backend: other, bdf, error }, backend);
        }
      }
      first.close();
      using second = AddressSpace.open({ backend });
      for (const bdf of DEVICES) assert.equal(second.openDevice(bdf).config.read16(0), VENDORS[bdf]);
    } finally {
      first.close();
    }
  });
});
