/**
 * The emulated PCI devices of the test guest, at fixed addresses, and the
 * host files behind them (the outside witnesses of DMA).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The test guest's emulated devices: `'edu'` (QEMU's teaching device: a
 * 28-bit DMA engine, MSI and INTx), `'ivshmem'` (BAR2 is memory backed by a
 * host file), `'nvme'` (an NVMe controller over a host image file).
 */
export type DeviceName = 'edu' | 'ivshmem' | 'nvme';
/** Every device name, in PCI address order. */
export const DEVICE_NAMES: readonly DeviceName[] = ['edu', 'ivshmem', 'nvme'];

/** Guest PCI addresses: bus 0, one slot each. */
export const DEVICE_BDF: Readonly<Record<DeviceName, string>> = {
  edu: '0000:00:03.0',
  ivshmem: '0000:00:04.0',
  nvme: '0000:00:05.0',
};

/** Bytes of ivshmem's BAR2 and of its backing file: 1 MiB. */
export const IVSHMEM_SIZE = 1 << 20;
/** Bytes of the nvme device's image file: 64 MiB (namespace 1). */
export const NVME_IMAGE_SIZE = 64 << 20;
/** The serial number the guest's NVMe controller reports in Identify. */
export const NVME_SERIAL = 'NVFIO0001';

/** Host-side files of a run: the guest sees them at the same path. */
export interface DeviceFiles {
  /** The file behind ivshmem's BAR2 ({@link IVSHMEM_SIZE} bytes). */
  ivshmem?: string;
  /** The nvme device's disk image ({@link NVME_IMAGE_SIZE} bytes). */
  nvmeImage?: string;
}

export function parseDevices(list: string): DeviceName[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!DEVICE_NAMES.includes(n as DeviceName)) {
      throw new RangeError(`unknown device '${n}': choose from ${DEVICE_NAMES.join(', ')}`);
    }
  }
  return [...new Set(names as DeviceName[])];
}

/**
 * Creates the backing files in `runDir` (or keeps ones the caller made,
 * e.g. an nvme image with a pattern written before boot) and returns the
 * QEMU arguments of the devices.
 */
export function deviceArgs(devices: readonly DeviceName[], runDir: string, files: DeviceFiles): string[] {
  const args: string[] = [];
  for (const d of devices) {
    const addr = `addr=${DEVICE_BDF[d].split(':')[2]}`;
    if (d === 'edu') args.push('-device', `edu,${addr}`);
    if (d === 'ivshmem') {
      files.ivshmem ??= path.join(runDir, 'ivshmem.bin');
      if (!fs.existsSync(files.ivshmem)) fs.writeFileSync(files.ivshmem, Buffer.alloc(IVSHMEM_SIZE));
      const size = fs.statSync(files.ivshmem).size;
      args.push(
        '-object',
        `memory-backend-file,size=${size},share=on,mem-path=${files.ivshmem},id=ivshmem0`,
        '-device',
        `ivshmem-plain,memdev=ivshmem0,${addr}`,
      );
    }
    if (d === 'nvme') {
      files.nvmeImage ??= path.join(runDir, 'nvme.img');
      if (!fs.existsSync(files.nvmeImage)) {
        fs.writeFileSync(files.nvmeImage, '');
        fs.truncateSync(files.nvmeImage, NVME_IMAGE_SIZE);
      }
      args.push(
        '-drive',
        `file=${files.nvmeImage},if=none,id=nvme0,format=raw,cache=writethrough`,
        '-device',
        `nvme,serial=${NVME_SERIAL},drive=nvme0,${addr}`,
      );
    }
  }
  return args;
}
