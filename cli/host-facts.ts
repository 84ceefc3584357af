/**
 * Facts about the running kernel and this process, read from procfs and
 * /boot: RLIMIT_MEMLOCK and capabilities, huge pages, the kernel's release,
 * command line and configuration. Each parser takes the file's text, so it
 * can be tested on its own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { UsageError } from './args';
import { HostPaths } from './context';

/** A resource limit's soft and hard values; null is unlimited. */
export interface Limit {
  soft: bigint | null;
  hard: bigint | null;
}

/** The file's text, or undefined when it cannot be read. */
export function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** One limit from /proc/PID/limits ("Max locked memory   8388608   8388608   bytes"); undefined when it is not there. */
export function parseLimit(limitsText: string, name: string): Limit | undefined {
  const line = limitsText.split('\n').find((l) => l.startsWith(name));
  if (!line) return undefined;
  const [soft, hard] = line.slice(name.length).trim().split(/\s+/);
  const value = (v: string): bigint | null => (v === 'unlimited' ? null : BigInt(v));
  return { soft: value(soft), hard: value(hard) };
}

/** A field of /proc/meminfo as a number (kB fields in kB, counts as counts). */
export function meminfoField(meminfoText: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(meminfoText);
  return m ? Number(m[1]) : undefined;
}

/** CAP_IPC_LOCK (include/uapi/linux/capability.h): pinned memory is not counted against RLIMIT_MEMLOCK. */
const CAP_IPC_LOCK = 14n;

/** Whether the effective capabilities in /proc/PID/status hold CAP_IPC_LOCK. */
export function hasIpcLock(statusText: string): boolean {
  const m = /^CapEff:\s+([0-9a-f]+)/m.exec(statusText);
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_IPC_LOCK) & 1n) === 1n;
}

/** major.minor of a kernel release ('6.19.2-amd64' is [6, 19]); undefined when it is not one. */
export function kernelVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** Whether release `v` is `major.minor` or later. */
export function versionAtLeast(v: [number, number], major: number, minor: number): boolean {
  return v[0] > major || (v[0] === major && v[1] >= minor);
}

/** The options of a kernel .config: 'y', 'm', a value, or 'n' for "# CONFIG_X is not set". */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line);
    if (set) out.set(set[1], set[2]);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line);
    if (unset) out.set(unset[1], 'n');
  }
  return out;
}

/** The running kernel's configuration, from /proc/config.gz or /boot/config-RELEASE, and where it came from. */
export function readKernelConfig(paths: HostPaths, release: string): { config: Map<string, string>; source: string } | undefined {
  const gz = path.join(paths.proc, 'config.gz');
  try {
    return { config: parseKernelConfig(zlib.gunzipSync(fs.readFileSync(gz)).toString('utf8')), source: gz };
  } catch {
    // not built with IKCONFIG_PROC, or unreadable: try /boot
  }
  const boot = path.join(paths.boot, `config-${release}`);
  const text = readOptional(boot);
  return text === undefined ? undefined : { config: parseKernelConfig(text), source: boot };
}

/** The running kernel's release (uname -r), from procfs. */
export function kernelRelease(paths: HostPaths): string | undefined {
  return readOptional(path.join(paths.proc, 'sys/kernel/osrelease'))?.trim();
}

/** 'GenuineIntel', 'AuthenticAMD'... from /proc/cpuinfo. */
export function cpuVendor(paths: HostPaths): string | undefined {
  return /^vendor_id\s*:\s*(\S+)/m.exec(readOptional(path.join(paths.proc, 'cpuinfo')) ?? '')?.[1];
}

const SIZE_UNITS: Readonly<Record<string, bigint>> = { '': 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n };

/** A size in bytes from '64M', '1G', '512KiB', '4096' (binary units); a UsageError naming `flag` when it is not one. */
export function parseSize(text: string, flag: string): bigint {
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${flag} takes a size like 64M, 1G or 65536, not '${text}'`);
  return BigInt(m[1]) * SIZE_UNITS[m[2].toLowerCase()];
}
