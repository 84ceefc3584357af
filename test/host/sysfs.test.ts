import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listVfioPciDevices, normalizeBdf, parseResources, readPciDevice } from '../../lib/sysfs';

/** A fake /sys with the links and files the kernel has for a PCI device. */
function fakeDevice(
  root: string,
  bdf: string,
  o: { driver?: string; group?: number; cdev?: string; vendor: string; device: string },
): void {
  const dev = path.join(root, 'devices/pci0000:00', bdf);
  fs.mkdirSync(dev, { recursive: true });
  fs.writeFileSync(path.join(dev, 'vendor'), `${o.vendor}\n`);
  fs.writeFileSync(path.join(dev, 'device'), `${o.device}\n`);
  fs.writeFileSync(path.join(dev, 'class'), '0x00ff00\n');
  fs.writeFileSync(
    path.join(dev, 'resource'),
    '0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n0x0000000800000000 0x00000008000fffff 0x000000000014220c\n',
  );
  if (o.driver) {
    fs.mkdirSync(path.join(root, 'bus/pci/drivers', o.driver), { recursive: true });
    fs.symlinkSync(`../../../../bus/pci/drivers/${o.driver}`, path.join(dev, 'driver'));
  }
  if (o.group !== undefined) {
    fs.mkdirSync(path.join(root, 'kernel/iommu_groups', String(o.group)), { recursive: true });
    fs.symlinkSync(`../../../kernel/iommu_groups/${o.group}`, path.join(dev, 'iommu_group'));
  }
  if (o.cdev) {
    fs.mkdirSync(path.join(dev, 'vfio-dev', o.cdev), { recursive: true });
    fs.writeFileSync(path.join(dev, 'vfio-dev', o.cdev, 'dev'), '511:0\n');
  }
  fs.mkdirSync(path.join(root, 'bus/pci/devices'), { recursive: true });
  fs.symlinkSync(`../../../devices/pci0000:00/${bdf}`, path.join(root, 'bus/pci/devices', bdf));
}

describe('sysfs: PCI devices', () => {
  let root: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'sysfs-'));
    fakeDevice(root, '0000:00:03.0', { driver: 'vfio-pci', group: 3, cdev: 'vfio0', vendor: '0x1234', device: '0x11e8' });
    fakeDevice(root, '0000:00:05.0', { driver: 'nvme', group: 5, vendor: '0x1b36', device: '0x0010' });
    fakeDevice(root, '0000:00:06.0', { vendor: '0x1af4', device: '0x1110' });
    // Linux 6.1 without VFIO_DEVICE_CDEV: a vfio-dev entry, but no char device
    fakeDevice(root, '0000:00:07.0', { driver: 'vfio-pci', group: 7, vendor: '0x1234', device: '0x11e8' });
    fs.mkdirSync(path.join(root, 'devices/pci0000:00/0000:00:07.0/vfio-dev/vfio1'), { recursive: true });
  });
  after(() => fs.rmSync(root, { recursive: true }));

  it('reads ids, driver, IOMMU group, VFIO cdev and BARs', () => {
    const d = readPciDevice('00:03.0', root);
    assert.deepEqual(
      { ...d, resources: d.resources.length },
      {
        bdf: '0000:00:03.0',
        vendor: 0x1234,
        device: 0x11e8,
        classCode: 0xff00,
        driver: 'vfio-pci',
        iommuGroup: 3,
        vfioCdev: 'vfio0',
        resources: 2,
      },
    );
    assert.deepEqual(d.resources[1], { index: 2, start: 0x800000000n, end: 0x8000fffffn, flags: 0x14220cn });
  });
  it('leaves out what the device does not have', () => {
    const d = readPciDevice('0000:00:06.0', root);
    assert.equal(d.driver, undefined);
    assert.equal(d.iommuGroup, undefined);
    assert.equal(d.vfioCdev, undefined);
    assert.equal(readPciDevice('0000:00:05.0', root).vfioCdev, undefined);
    assert.equal(readPciDevice('0000:00:07.0', root).vfioCdev, undefined, 'no dev attribute: no cdev');
  });
  it('lists only the devices bound to vfio-pci', () => {
    assert.deepEqual(
      listVfioPciDevices(root).map((d) => d.bdf),
      ['0000:00:03.0', '0000:00:07.0'],
    );
  });
  it('says ENOENT for a device that does not exist', () => {
    assert.throws(() => readPciDevice('0000:00:1f.7', root), { code: 'ENOENT', message: /no PCI device 0000:00:1f.7/ });
  });
  it('normalises PCI addresses and refuses what is not one', () => {
    assert.equal(normalizeBdf('00:1F.7'), '0000:00:1f.7');
    assert.equal(normalizeBdf(' 0001:02:03.4 '), '0001:02:03.4');
    for (const bad of ['00:03', '0000:00:20.0', '00:03.8', 'edu', '']) assert.throws(() => normalizeBdf(bad), RangeError);
    assert.throws(() => normalizeBdf(3 as unknown as string), TypeError);
  });
  it('parses resource lines, skipping empty BARs', () => {
    assert.deepEqual(parseResources('0x0 0x0 0x0\n0x1000 0x1fff 0x200\n'), [{ index: 1, start: 0x1000n, end: 0x1fffn, flags: 0x200n }]);
  });
});
