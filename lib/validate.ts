/** Argument checks, made before any system call: TypeError for a wrong type, RangeError for a wrong value. */

export const U64_END = 1n << 64n;

/** A non-negative integer as bigint, from a bigint or a safe-integer number. */
export function toBigInt(value: unknown, name: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value >= U64_END) throw new RangeError(`${name} must be in [0, 2^64), got ${value}`);
    return value;
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
    return BigInt(value);
  }
  throw new TypeError(`${name} must be a bigint or a number, not ${value === null ? 'null' : typeof value}`);
}

export function toLength(value: unknown, name: string, multipleOf: bigint): bigint {
  const v = toBigInt(value, name);
  if (v === 0n) throw new RangeError(`${name} must not be 0`);
  if (v % multipleOf !== 0n) throw new RangeError(`${name} (${v}) must be a multiple of ${multipleOf}`);
  return v;
}

/** [start, start + length) must not run past 2^64. */
export function checkRangeFits(start: bigint, length: bigint, name: string): void {
  if (start + length > U64_END)
    throw new RangeError(`${name}: 0x${start.toString(16)} + 0x${length.toString(16)} runs past the end of the 64-bit space`);
}

export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}
