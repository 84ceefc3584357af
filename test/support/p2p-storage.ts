/**
 * Witnesses for peer-to-peer storage tests in the guest: the host's nvme
 * image and ivshmem file, read directly (through 9p, served by the host),
 * and byte-exact comparison of what they hold against what a test expects.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { NVME_IMAGE_SIZE } from '../../vm/devices';
import { NVME_BLOCK, nvmeBlock } from './witness';

/** 4 KiB blocks of the image. */
export const IMAGE_BLOCKS_4K = NVME_IMAGE_SIZE / NVME_BLOCK;

/** The host's nvme image (NODE_VFIO_NVME_IMAGE). */
export function nvmeImageFile(): string {
  const f = process.env.NODE_VFIO_NVME_IMAGE;
  assert.ok(f, 'NODE_VFIO_NVME_IMAGE is set by the harness');
  return f;
}

/** `length` bytes of the host's nvme image from byte `offset`. */
export function readImage(offset: number, length: number): Buffer {
  const fd = fs.openSync(nvmeImageFile(), 'r');
  try {
    const b = Buffer.alloc(length);
    assert.equal(fs.readSync(fd, b, 0, length, offset), length);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** The host's pattern of 4 KiB blocks [first, first + count), as the image held it at boot. */
export function hostBlocks(first: number, count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => nvmeBlock(first + i)));
}

/**
 * Asserts that `got` equals `want` byte for byte, naming the first byte that
 * differs (offset `base` + index, for messages) instead of dumping megabytes.
 */
export function assertSameBytes(got: Uint8Array, want: Uint8Array, what: string, base = 0): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} bytes, expected ${want.length}`);
  const a = Buffer.from(got.buffer, got.byteOffset, got.length);
  const b = Buffer.from(want.buffer, want.byteOffset, want.length);
  if (a.equals(b)) return;
  let i = 0;
  while (a[i] === b[i]) i++;
  assert.fail(`${what}: byte 0x${(base + i).toString(16)} is 0x${a[i].toString(16)}, expected 0x${b[i].toString(16)}`);
}
