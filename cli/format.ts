/** Text output: aligned tables, PCI ids and classes, byte sizes. */

/** Rows under a header, each column as wide as its widest cell; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `width` hex digits with a 0x prefix, as sysfs writes ids and classes: hexWidth(0x1234, 4) is '0x1234'. */
export function hexWidth(value: number | bigint, width: number): string {
  return `0x${value.toString(16).padStart(width, '0')}`;
}

/** The base classes of the PCI Code and ID Assignment specification. */
const BASE_CLASSES: Readonly<Record<number, string>> = {
  0x00: 'unclassified',
  0x01: 'storage',
  0x02: 'network',
  0x03: 'display',
  0x04: 'multimedia',
  0x05: 'memory',
  0x06: 'bridge',
  0x07: 'communication',
  0x08: 'system peripheral',
  0x09: 'input',
  0x0a: 'docking station',
  0x0b: 'processor',
  0x0c: 'serial bus',
  0x0d: 'wireless',
  0x0e: 'intelligent I/O',
  0x0f: 'satellite',
  0x10: 'encryption',
  0x11: 'signal processing',
  0x12: 'accelerator',
  0x13: 'instrumentation',
  0xff: 'unassigned',
};

/** A 24-bit class code as its six hex digits and base class: '010802 storage'. */
export function classLabel(classCode: number): string {
  return `${classCode.toString(16).padStart(6, '0')} ${BASE_CLASSES[classCode >>> 16] ?? 'other'}`;
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** A byte count in binary units, exact where it divides evenly: 1048576 is '1 MiB', 1536 is '1.5 KiB'. */
export function formatBytes(bytes: number | bigint): string {
  let v = Number(bytes);
  let unit = 0;
  while (v >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${UNITS[unit]}`;
}
