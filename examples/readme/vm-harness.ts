// test/my-driver.guest.test.ts, run on the host with mocha
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { prepareGuest, runInGuest, runMochaInGuest } from 'node-vfio/vm';

describe('my driver in the test guest', function () {
  this.timeout(30 * 60_000);
  before(() => prepareGuest()); // first time only: packages, kernel build, QEMU

  it('passes its VFIO tests', async () => {
    const run = await runMochaInGuest(['dist/test/vfio/*.test.js'], { devices: ['edu', 'nvme'] });
    assert.equal(run.failure, undefined, run.failure);
    assert.equal(run.tests?.failed, 0, JSON.stringify(run.tests?.failures, null, 2));
  });

  it('writes the disk, as the host sees it', async () => {
    const run = await runInGuest({ command: ['node', 'dist/tools/format-disk.js'], devices: ['nvme'] });
    assert.equal(run.status, 0, run.output);
    const image = fs.readFileSync(run.files.nvmeImage!); // the nvme device's backing file
    assert.equal(image.subarray(0, 4).toString(), 'MYFS');
  });
});
