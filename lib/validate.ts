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
  throw new TypeError(`${name} must be a bigint or a number, not ${kindOf(value)}`);
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

/** What `value` is, for a message: 'null', 'undefined', a primitive type, or an object's class; never calls into the value. */
export function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object' && typeof value !== 'function') return typeof value;
  if (typeof value === 'function') return 'a function';
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  const name = proto?.constructor?.name;
  if (typeof name !== 'string' || name === '' || name === 'Object') return 'an object';
  return `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** `value` must be an instance of `cls`; TypeError naming `name` otherwise. */
export function checkInstance<T>(value: unknown, cls: { readonly prototype: T; readonly name: string }, name: string): T {
  if (!(value instanceof (cls as unknown as new () => T)))
    throw new TypeError(`${name} must be ${/^[AEIO]/.test(cls.name) ? 'an' : 'a'} ${cls.name}, not ${kindOf(value)}`);
  return value as T;
}

/** Options: undefined (none) or an object; TypeError naming `name` otherwise. */
export function checkOptions<T extends object>(value: T | undefined, name = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw new TypeError(`${name} must be an object, not ${kindOf(value)}`);
  return value;
}

/** An integer number in [min, max]: TypeError when not a number, RangeError when out of range or not an integer. */
export function checkInt(value: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, not ${kindOf(value)}`);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

/** A string: TypeError naming `name` otherwise. */
export function checkString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, not ${kindOf(value)}`);
  return value;
}

/** A function: TypeError naming `name` otherwise. */
export function checkFunction(value: unknown, name: string): (...args: never[]) => unknown {
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function, not ${kindOf(value)}`);
  return value as (...args: never[]) => unknown;
}

/** An array: TypeError naming `name` otherwise. */
export function checkArray<T>(value: readonly T[], name: string): readonly T[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array, not ${kindOf(value)}`);
  return value;
}

/** A plain object (or any non-null object): TypeError naming `name` otherwise. */
export function checkObject<T extends object>(value: unknown, name: string): T {
  if (value === null || typeof value !== 'object') throw new TypeError(`${name} must be an object, not ${kindOf(value)}`);
  return value as T;
}
