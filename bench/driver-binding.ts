/**
 * Handing a guest PCI device from one kernel driver to another (vfio-pci,
 * nvme), the way the guest's /init binds devices to vfio-pci at boot.
 */
import * as fs from 'node:fs';

const SYSFS_PCI = '/sys/bus/pci';

function boundDriver(bdf: string): string | undefined {
  try {
    return fs.readlinkSync(`${SYSFS_PCI}/devices/${bdf}/driver`).split('/').pop();
  } catch {
    return undefined;
  }
}

/** Waits until `ready()` returns something, polling; throws after `ms`. */
export async function waitFor<T>(ready: () => T | undefined, what: string, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = ready();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Binds `bdf` to `driver` (unbinding its current one) and waits for the kernel to have probed it. */
export async function bindDriver(bdf: string, driver: string): Promise<void> {
  if (boundDriver(bdf) === driver) return;
  const dev = `${SYSFS_PCI}/devices/${bdf}`;
  if (boundDriver(bdf)) fs.writeFileSync(`${dev}/driver/unbind`, bdf);
  fs.writeFileSync(`${dev}/driver_override`, driver);
  fs.writeFileSync(`${SYSFS_PCI}/drivers_probe`, bdf);
  await waitFor(() => (boundDriver(bdf) === driver ? true : undefined), `${bdf} to bind to ${driver}`);
}
