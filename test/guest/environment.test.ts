/** The guest environment itself: what every other guest test stands on. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { readPciDevice } from '../../lib/sysfs';
import { BDF, KERNEL } from '../support/guest';
import { ivshmemByte } from '../support/witness';

describe(`guest environment (${KERNEL} kernel)`, () => {
  const devices = Object.values(BDF).map((bdf) => readPciDevice(bdf));

  it('binds every test device to vfio-pci, each in its own IOMMU group with a group node', () => {
    for (const d of devices) {
      assert.equal(d.driver, 'vfio-pci', `${d.bdf} driver`);
      assert.ok(fs.existsSync(`/dev/vfio/${d.iommuGroup}`), `/dev/vfio/${d.iommuGroup}`);
    }
    assert.equal(new Set(devices.map((d) => d.iommuGroup)).size, devices.length);
    assert.deepEqual(
      devices.map((d) => `${d.vendor.toString(16)}:${d.device.toString(16)}`),
      ['1234:11e8', '1af4:1110', '1b36:10'],
    );
  });

  if (KERNEL === 'custom') {
    it('has /dev/iommu and a VFIO cdev for each device', () => {
      assert.ok(fs.statSync('/dev/iommu').isCharacterDevice());
      for (const d of devices) {
        assert.match(d.vfioCdev ?? '', /^vfio\d+$/, `${d.bdf} has no cdev`);
        assert.ok(fs.statSync(`/dev/vfio/devices/${d.vfioCdev}`).isCharacterDevice());
      }
    });
  } else {
    it('has neither /dev/iommu nor VFIO cdevs (Debian 6.1: legacy container only)', () => {
      assert.equal(fs.existsSync('/dev/iommu'), false);
      for (const d of devices) assert.equal(d.vfioCdev, undefined);
      assert.ok(fs.statSync('/dev/vfio/vfio').isCharacterDevice());
    });
  }

  it('sees the host-written ivshmem pattern in the host file, through 9p', () => {
    const file = process.env.NODE_VFIO_IVSHMEM_FILE;
    assert.ok(file, 'NODE_VFIO_IVSHMEM_FILE is set by the harness');
    const head = Buffer.alloc(4096);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    for (let i = 0; i < head.length; i++) assert.equal(head[i], ivshmemByte(i));
  });
});
