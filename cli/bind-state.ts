/**
 * What `bind` remembers of a device: the driver it had, so that `unbind`
 * gives the device back to it. One small JSON file per device, under
 * /run/node-vfio (a tmpfs: the record goes with the binding at reboot).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliError } from './command';
import { HostPaths } from './context';

/** A device's record. */
export interface BindRecord {
  bdf: string;
  /** The driver it had before vfio-pci; null when it had none. */
  previousDriver: string | null;
  /** When it was bound (ISO 8601). */
  boundAt: string;
}

/** The record's file. */
export function recordFile(paths: HostPaths, bdf: string): string {
  return path.join(paths.state, `${bdf}.json`);
}

function stateError(err: unknown, what: string): CliError {
  const e = err as NodeJS.ErrnoException;
  const hint = e.code === 'EACCES' || e.code === 'EPERM' ? ': run as root' : '';
  return new CliError(`${what}: ${e.message}${hint}`, e.code ?? 'ERR_STATE', e);
}

/** The record of `bdf`, or undefined when bind made none. */
export function readBindRecord(paths: HostPaths, bdf: string): BindRecord | undefined {
  const file = recordFile(paths, bdf);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw stateError(err, `reading ${file}`);
  }
  let r: BindRecord | undefined;
  try {
    r = JSON.parse(text) as BindRecord;
  } catch {
    r = undefined;
  }
  if (r?.bdf !== bdf || (r.previousDriver !== null && typeof r.previousDriver !== 'string')) {
    throw new CliError(`${file} is not a record of ${bdf}: remove it`, 'ERR_STATE');
  }
  return r;
}

/** Stores a record (replacing one there was). */
export function writeBindRecord(paths: HostPaths, record: BindRecord): void {
  try {
    fs.mkdirSync(paths.state, { recursive: true, mode: 0o755 });
    fs.writeFileSync(recordFile(paths, record.bdf), `${JSON.stringify(record)}\n`, { mode: 0o644 });
  } catch (err) {
    throw stateError(err, `remembering the driver of ${record.bdf} in ${paths.state}`);
  }
}

/** Forgets the record of `bdf` (none is fine). */
export function removeBindRecord(paths: HostPaths, bdf: string): void {
  try {
    fs.rmSync(recordFile(paths, bdf), { force: true });
  } catch (err) {
    throw stateError(err, `removing ${recordFile(paths, bdf)}`);
  }
}
