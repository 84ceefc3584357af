/**
 * A fake sysfs tree with one PCI device bound to vfio-pci: what the
 * library's readPciDevice reads (vendor, device, class, resource, the
 * iommu_group and driver links, vfio-dev/vfioN/dev) in a temporary
 * directory. The library takes the root as AddressSpaceOptions.sysfs, so the
 * fake kernel (fake-kernel.cc) has no sysfs paths to redirect.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The device's address, IOMMU group and VFIO cdev; ids as fake-device.h gives them (QEMU's edu). */
export const FAKE_DEVICE = { bdf: '0000:00:03.0', group: 3, cdev: 'vfio0', vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00 } as const;

/** A fake tree; remove() deletes it. */
export interface FakeSysfs {
  root: string;
  remove(): void;
}

const hex = (n: number, digits: number): string => `0x${n.toString(16).padStart(digits, '0')}\n`;

/** Builds the tree under a new temporary directory. */
export function createFakeSysfs(): FakeSysfs {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-vfio-sysfs-'));
  const d = FAKE_DEVICE;
  const dev = path.join(root, 'bus/pci/devices', d.bdf);
  const group = path.join(root, 'kernel/iommu_groups', String(d.group));
  const driver = path.join(root, 'bus/pci/drivers/vfio-pci');
  for (const dir of [dev, path.join(group, 'devices'), driver, path.join(dev, 'vfio-dev', d.cdev)]) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dev, 'vendor'), hex(d.vendor, 4));
  fs.writeFileSync(path.join(dev, 'device'), hex(d.device, 4));
  fs.writeFileSync(path.join(dev, 'class'), hex(d.classCode, 6));
  // BAR0: 1 MiB of 32-bit memory (IORESOURCE_MEM | IORESOURCE_SIZEALIGN); the other 12 lines empty.
  const empty = '0x0000000000000000 0x0000000000000000 0x0000000000000000\n';
  fs.writeFileSync(path.join(dev, 'resource'), `0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n${empty.repeat(12)}`);
  fs.writeFileSync(path.join(dev, 'vfio-dev', d.cdev, 'dev'), '511:0\n');
  fs.symlinkSync(path.relative(dev, group), path.join(dev, 'iommu_group'));
  fs.symlinkSync(path.relative(dev, driver), path.join(dev, 'driver'));
  fs.symlinkSync(path.relative(path.join(group, 'devices'), dev), path.join(group, 'devices', d.bdf));
  fs.symlinkSync(path.relative(driver, dev), path.join(driver, d.bdf));
  return { root, remove: () => fs.rmSync(root, { recursive: true, force: true }) };
}
