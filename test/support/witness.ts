/**
 * Known contents of the device backing files, written on the host before a
 * guest boots, so that tests in the guest can check what a device reads and
 * the host can check what it wrote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeviceFiles, IVSHMEM_SIZE, NVME_IMAGE_SIZE } from '../../vm/devices';

/** Byte `i` of the ivshmem pattern. */
export function ivshmemByte(i: number): number {
  return (Math.imul(i + 1, 2654435761) >>> 24) & 0xff;
}

export const NVME_BLOCK = 4096;

/**
 * The nvme image's 4 KiB blocks below this hold the host's pattern for the
 * whole run: no test writes there. The last 4 MiB are the tests' to write
 * (each its own range: nvme.test.ts, the P2P storage tests, the DMA test
 * driver's scratch range, the process-level tests in support/children.ts).
 */
export const NVME_PATTERN_BLOCKS = NVME_IMAGE_SIZE / NVME_BLOCK - 1024;

/** The 4 KiB blocks [first, end) of the nvme image the fuzz may write: the first 256 KiB of the tests' 4 MiB. */
export const FUZZ_NVME_BLOCKS: readonly [number, number] = [NVME_PATTERN_BLOCKS, NVME_PATTERN_BLOCKS + 64];

/** The 4 KiB block `lba` of the nvme image as the host wrote it. */
export function nvmeBlock(lba: number): Buffer {
  const b = Buffer.alloc(NVME_BLOCK);
  for (let i = 0; i < NVME_BLOCK; i += 4) b.writeUInt32LE((Math.imul(lba + 1, 0x9e3779b1) ^ Math.imul(i, 0x85ebca6b)) >>> 0, i);
  b.write(`node-vfio lba ${lba}\n`, 0, 'latin1');
  return b;
}

export function prepareWitnessFiles(dir: string): Required<DeviceFiles> {
  fs.mkdirSync(dir, { recursive: true });
  const files = { ivshmem: path.join(dir, 'ivshmem.bin'), nvmeImage: path.join(dir, 'nvme.img') };
  const shm = Buffer.alloc(IVSHMEM_SIZE);
  for (let i = 0; i < shm.length; i++) shm[i] = ivshmemByte(i);
  fs.writeFileSync(files.ivshmem, shm);
  const fd = fs.openSync(files.nvmeImage, 'w');
  try {
    for (let lba = 0; lba < NVME_IMAGE_SIZE / NVME_BLOCK; lba++) fs.writeSync(fd, nvmeBlock(lba));
  } finally {
    fs.closeSync(fd);
  }
  return files;
}
