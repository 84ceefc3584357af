/**
 * `node-vfio bind BDF` and `node-vfio unbind BDF`: the driver_override
 * sequence that hands a device to vfio-pci, and the one that gives it back
 * to the driver it had. Every change is a write to a sysfs attribute, listed
 * exactly (`--dry-run` lists them and writes nothing).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { groupConflicts, readPciDetails, readPciDevice } from '../lib/sysfs';
import { BindRecord, readBindRecord, recordFile, removeBindRecord, writeBindRecord } from './bind-state';
import { bdfArgument, CliError, Command, defineCommand, printJson } from './command';
import { CliContext } from './context';
import { memberLabel } from './vfio-access';

/** One write to a sysfs attribute; `value` is written as is (with the newline `echo` would add). */
export interface SysfsWrite {
  path: string;
  value: string;
}

/** What `bind` or `unbind` did, or would do under --dry-run (what `--json` prints). */
export interface BindResult {
  action: 'bind' | 'unbind';
  bdf: string;
  dryRun: boolean;
  /** The driver before. */
  from: string | null;
  /** The driver after; under --dry-run the one expected (undefined: the kernel's choice). */
  to: string | null | undefined;
  writes: SysfsWrite[];
  /** Where bind remembers the previous driver. */
  recordFile: string;
  /** The driver bind remembered: for bind the one it stores, for unbind the one it read (undefined: no record). */
  previousDriver: string | null | undefined;
  /** What else to know: nothing to do, the kernel's choice. */
  note?: string;
}

/** The shell line that makes a write: `echo vfio-pci > /sys/...`. */
export function shellLine(w: SysfsWrite): string {
  const v = w.value.replace(/\n$/, '');
  return v === '' ? `echo > ${w.path}` : `echo ${v} > ${w.path}`;
}

function hintFor(code: string | undefined, w: SysfsWrite): string {
  if (code === 'EACCES' || code === 'EPERM') return 'sysfs writes need root: run it with sudo';
  if (code === 'ENODEV' && w.path.endsWith('/bind')) return 'that driver does not claim this device';
  if (code === 'ENOENT') return 'no such attribute: is the driver loaded?';
  if (code === 'EBUSY') return 'the device is busy';
  return '';
}

/** A write that failed, after `done` writes that did not. */
export class WriteError extends CliError {
  constructor(
    message: string,
    code: string,
    cause: NodeJS.ErrnoException,
    readonly done: number,
  ) {
    super(message, code, cause);
  }
}

/** Makes the writes in order; a failure (WriteError) names the write, what was done before it, and the system error's code, errno and syscall. */
export function performWrites(writes: readonly SysfsWrite[], ctx: CliContext): void {
  writes.forEach((w, i) => {
    try {
      ctx.writeSysfs(w.path, w.value);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const hint = hintFor(e.code, w);
      const before = i === 0 ? 'nothing was changed' : `done before it: ${writes.slice(0, i).map(shellLine).join('; ')}`;
      throw new WriteError(
        `${shellLine(w)} failed: ${e.code ?? e.message}${hint ? ` (${hint})` : ''}; ${before}`,
        e.code ?? 'ERR_SYSFS_WRITE',
        e,
        i,
      );
    }
  });
}

function driverDir(ctx: CliContext, driver: string): string {
  return path.join(ctx.paths.sys, 'bus/pci/drivers', driver);
}

/** A problem that makes the writes fail: a CliError, or under --dry-run a note saying so. */
function blocker(problem: string | undefined, code: string, dryRun: boolean): string | undefined {
  if (problem === undefined) return undefined;
  if (dryRun) return `(as things are it would fail: ${problem})`;
  throw new CliError(problem, code);
}

/** Why `driver` cannot take a device: it is not loaded. */
function notLoaded(ctx: CliContext, driver: string, then: string): string | undefined {
  const dir = driverDir(ctx, driver);
  return fs.existsSync(dir) ? undefined : `${driver} is not loaded (no ${dir}): modprobe ${driver}${then}`;
}

function currentDriver(ctx: CliContext, bdf: string): string | null {
  return readPciDevice(bdf, ctx.paths.sys).driver ?? null;
}

/** The bind sequence for `bdf`, checked first: refuses when its IOMMU group holds devices of other drivers. */
function planBind(ctx: CliContext, bdf: string, dryRun: boolean): BindResult {
  const info = readPciDevice(bdf, ctx.paths.sys);
  const from = info.driver ?? null;
  const base = { action: 'bind' as const, bdf, dryRun, from, recordFile: recordFile(ctx.paths, bdf) };
  if (from === 'vfio-pci') {
    return {
      ...base,
      to: from,
      writes: [],
      previousDriver: readBindRecord(ctx.paths, bdf)?.previousDriver,
      note: 'already bound to vfio-pci: nothing to do',
    };
  }
  const conflicts = groupConflicts(bdf, ctx.paths.sys);
  if (conflicts.length > 0) {
    throw new CliError(
      [
        `refusing to bind ${bdf}: VFIO takes whole IOMMU groups, and group ${info.iommuGroup} also holds devices bound to other drivers:`,
        ...conflicts.map((c) => `  ${memberLabel(c.name, c.driver)}`),
        'bind them to vfio-pci too (node-vfio bind BDF) or unbind them first.',
      ].join('\n'),
      'ERR_GROUP_NOT_VIABLE',
    );
  }
  const noGroup =
    info.iommuGroup === undefined
      ? `${bdf} has no IOMMU group, and vfio-pci takes only devices an IOMMU covers: is the IOMMU on? (node-vfio doctor)`
      : undefined;
  const note =
    [blocker(noGroup, 'ERR_NO_IOMMU_GROUP', dryRun), blocker(notLoaded(ctx, 'vfio-pci', ''), 'ERR_VFIO_PCI_NOT_LOADED', dryRun)]
      .filter(Boolean)
      .join('\n') || undefined;
  const writes: SysfsWrite[] = [{ path: path.join(ctx.paths.sys, 'bus/pci/devices', bdf, 'driver_override'), value: 'vfio-pci\n' }];
  if (from) writes.push({ path: path.join(driverDir(ctx, from), 'unbind'), value: `${bdf}\n` });
  writes.push({ path: path.join(ctx.paths.sys, 'bus/pci/drivers_probe'), value: `${bdf}\n` });
  return { ...base, to: 'vfio-pci', writes, previousDriver: from, note };
}

async function runBind(bdf: string, dryRun: boolean, ctx: CliContext): Promise<BindResult> {
  const plan = planBind(ctx, bdf, dryRun);
  if (dryRun || plan.writes.length === 0) return plan;
  const record: BindRecord = { bdf, previousDriver: plan.from, boundAt: new Date().toISOString() };
  writeBindRecord(ctx.paths, record); // first: whatever happens next, unbind knows where the device came from
  try {
    performWrites(plan.writes, ctx);
  } catch (err) {
    if (err instanceof WriteError && err.done === 0) removeBindRecord(ctx.paths, bdf); // nothing changed: nothing to remember
    throw err;
  }
  const now = currentDriver(ctx, bdf);
  if (now !== 'vfio-pci') {
    throw new CliError(
      `after drivers_probe ${bdf} is bound to ${now ?? 'no driver'}, not vfio-pci; node-vfio unbind ${bdf} gives it back to ${plan.from ?? 'no driver'}`,
      'ERR_BIND_FAILED',
    );
  }
  return plan;
}

/** The unbind sequence: clear driver_override, leave vfio-pci, then the remembered driver (or none, or the kernel's choice). */
function planUnbind(ctx: CliContext, bdf: string, dryRun: boolean): BindResult {
  const info = readPciDevice(bdf, ctx.paths.sys);
  const { driverOverride } = readPciDetails(bdf, ctx.paths.sys);
  const from = info.driver ?? null;
  // A bind that stopped half-way leaves no driver with driver_override vfio-pci: that is undone too.
  if (from !== 'vfio-pci' && !(from === null && driverOverride === 'vfio-pci')) {
    throw new CliError(`${bdf} is not bound to vfio-pci (its driver: ${from ?? 'none'}): nothing to give back`, 'ERR_NOT_BOUND');
  }
  const record = readBindRecord(ctx.paths, bdf);
  const writes: SysfsWrite[] = [{ path: path.join(ctx.paths.sys, 'bus/pci/devices', bdf, 'driver_override'), value: '\n' }];
  if (from === 'vfio-pci') writes.push({ path: path.join(driverDir(ctx, 'vfio-pci'), 'unbind'), value: `${bdf}\n` });
  const base = {
    action: 'unbind' as const,
    bdf,
    dryRun,
    from,
    recordFile: recordFile(ctx.paths, bdf),
    previousDriver: record?.previousDriver,
  };
  if (!record) {
    writes.push({ path: path.join(ctx.paths.sys, 'bus/pci/drivers_probe'), value: `${bdf}\n` });
    return {
      ...base,
      to: undefined,
      writes,
      note: `no record of a driver before vfio-pci (${base.recordFile}): the kernel probes the drivers that match it`,
    };
  }
  if (record.previousDriver === null)
    return { ...base, to: null, writes, note: 'it had no driver before vfio-pci: it is left without one' };
  const prev = record.previousDriver;
  const dir = driverDir(ctx, prev);
  const note = blocker(notLoaded(ctx, prev, `, then unbind again (it is the driver ${bdf} had before)`), 'ERR_DRIVER_NOT_LOADED', dryRun);
  writes.push({ path: path.join(dir, 'bind'), value: `${bdf}\n` });
  return { ...base, to: prev, writes, note };
}

async function runUnbind(bdf: string, dryRun: boolean, ctx: CliContext): Promise<BindResult> {
  const plan = planUnbind(ctx, bdf, dryRun);
  if (dryRun) return plan;
  performWrites(plan.writes, ctx);
  const now = currentDriver(ctx, bdf);
  if (plan.to !== undefined && now !== plan.to) {
    throw new CliError(
      `after the writes ${bdf} is bound to ${now ?? 'no driver'}, not ${plan.to ?? 'no driver'} as expected`,
      'ERR_UNBIND_FAILED',
    );
  }
  removeBindRecord(ctx.paths, bdf);
  return { ...plan, to: now };
}

function resultText(r: BindResult): string {
  const name = (d: string | null | undefined): string => (d === undefined ? 'whichever driver the kernel picks' : (d ?? 'no driver'));
  const remembered = r.previousDriver === null ? 'that it had no driver' : name(r.previousDriver);
  const lines = r.writes.map((w) => `  ${shellLine(w)}`);
  const note = r.note ? [r.note] : [];
  if (r.writes.length === 0) return `${r.bdf}: ${r.note}`;
  if (r.dryRun) {
    const remember = r.action === 'bind' ? [`and remember ${remembered} in ${r.recordFile}`] : [];
    return [`dry run, nothing written: ${r.action} ${r.bdf} (now ${name(r.from)}) would write:`, ...lines, ...remember, ...note].join('\n');
  }
  const tail = r.action === 'bind' ? [`remembered ${remembered} in ${r.recordFile}: node-vfio unbind ${r.bdf} gives it back`] : [];
  return [`${r.bdf}: ${name(r.from)} -> ${name(r.to)}`, ...lines, ...note, ...tail].join('\n');
}

function bindCommandOf(action: 'bind' | 'unbind', run: typeof runBind, summary: string, description: string): Command {
  return defineCommand({
    name: action,
    summary,
    positionals: ['BDF'],
    description,
    options: {
      'dry-run': { type: 'boolean', description: 'print the exact sysfs writes and make none' },
      json: { type: 'boolean', description: 'print what was done (or would be) as JSON' },
    },
    async run({ values, positionals }, ctx) {
      const r = await run(bdfArgument(positionals[0]), values['dry-run'] === true, ctx);
      if (values.json) printJson(ctx, r);
      else ctx.out(`${resultText(r)}\n`);
      return 0;
    },
  });
}

/** The `bind` command. */
export const bindCommand: Command = bindCommandOf(
  'bind',
  runBind,
  'hand a device to vfio-pci, remembering its driver',
  [
    'Binds a PCI device to vfio-pci: writes vfio-pci to its driver_override, unbinds it from',
    'its driver, and asks the kernel to probe it (/sys/bus/pci/drivers_probe); then checks that',
    'vfio-pci has it. The driver it had is remembered (in $NODE_VFIO_STATE_DIR, default',
    '/run/node-vfio) for unbind. Refuses when other devices of its IOMMU group are bound to',
    'drivers other than vfio-pci or pci-stub (bridges excepted): VFIO needs the whole group.',
    'Unbinding takes the device from whatever used it (a disk, a network interface). Needs root.',
  ].join('\n'),
);

/** The `unbind` command. */
export const unbindCommand: Command = bindCommandOf(
  'unbind',
  runUnbind,
  'give a device back to the driver it had',
  [
    'Gives a device bound by `bind` back: clears driver_override, unbinds it from vfio-pci and',
    'binds it to the driver it had (none when it had none). With no record of bind (a device',
    'bound some other way), the kernel probes the drivers that match it. Needs root.',
  ].join('\n'),
);
