/** Everything a guest run needs on the host, fetched or built once and cached. */
import { ensurePackages, HOST_PACKAGES } from './apt';
import { guestKernel, GuestKernel, KernelKind, Log } from './kernel';
import { findQemu, Qemu, QemuChoice, qemuChoice } from './qemu';

/** What {@link prepareGuest} made ready. */
export interface PreparedGuest {
  /** The guest kernel, built or fetched. */
  kernel: GuestKernel;
  /** The QEMU, unpacked or found. */
  qemu: Qemu;
}

/**
 * Installs the Debian packages the harness needs (as root; otherwise throws
 * a HarnessError with the apt-get command to run), builds or fetches the
 * guest kernel and unpacks the bundled QEMU. {@link runInGuest} does the same
 * on its own; calling this first moves the long first-time work (the kernel
 * build: about ten minutes on two cores) out of a test's time-out.
 */
export async function prepareGuest(options: { kernel?: KernelKind; qemu?: QemuChoice; log?: Log } = {}): Promise<PreparedGuest> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  ensurePackages(HOST_PACKAGES, log);
  const kernel = await guestKernel(options.kernel ?? 'custom', log);
  const qemu = await findQemu(options.qemu ?? qemuChoice(), log);
  return { kernel, qemu };
}
