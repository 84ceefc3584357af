/**
 * A writer of "newc" cpio archives, the format the kernel unpacks as an
 * initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
 */

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(ino: number, mode: number, name: string, data: Buffer, rdev = [0, 0]): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const header = Buffer.from('070701' + fields.map((f) => f.toString(16).padStart(8, '0')).join(''));
  return [header, nameBytes, pad4(header.length + nameBytes.length), data, pad4(data.length)];
}

/** The archive for `entries`, in order (a directory must come before what it holds). */
export function cpioArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((entry, i) => {
    const name = entry.path.replace(/^\/+/, '');
    if (name.length === 0) throw new RangeError('cpio: an entry needs a path below /');
    switch (entry.kind) {
      case 'dir':
        parts.push(...record(i + 1, S_IFDIR | (entry.mode ?? 0o755), name, Buffer.alloc(0)));
        break;
      case 'file':
        parts.push(...record(i + 1, S_IFREG | (entry.mode ?? 0o644), name, entry.data));
        break;
      case 'symlink':
        parts.push(...record(i + 1, S_IFLNK | 0o777, name, Buffer.from(entry.target)));
        break;
      case 'chardev':
        parts.push(...record(i + 1, S_IFCHR | (entry.mode ?? 0o600), name, Buffer.alloc(0), [entry.major, entry.minor]));
        break;
    }
  });
  parts.push(...record(0, 0, 'TRAILER!!!', Buffer.alloc(0)));
  return Buffer.concat(parts);
}
