/**
 * `node-vfio info BDF`: one device from sysfs and, when the library can open
 * it, from VFIO: regions, IRQs, reset, dma-buf export.
 */
import { PciResource, readPciDetails, readPciDevice } from '../lib/sysfs';
import { bdfArgument, Command, defineCommand, printJson } from './command';
import { CliContext } from './context';
import { classLabel, formatBytes, formatTable, hexWidth } from './format';
import { DeviceEntry, deviceEntry, usableLabel } from './list';
import { deviceAccess, memberLabel } from './vfio-access';
import { probeVfio, VfioView } from './vfio-probe';

/** A line of sysfs's `resource` file, for people. */
export interface ResourceView {
  index: number;
  /** BAR0..BAR5, ROM, or resource N (bridge windows, SR-IOV BARs). */
  name: string;
  start: string;
  end: string;
  size: number;
  flags: string;
  /** io, mem32 or mem64, and prefetchable. */
  kind: string;
}

/** What `info --json` prints. */
export interface InfoEntry extends DeviceEntry {
  driverOverride: string | null;
  numaNode: number | null;
  /** Reset methods from sysfs `reset_method`, in the kernel's order; empty when it cannot reset the device. */
  resetMethods: string[];
  bridge: boolean;
  groupNode: string | null;
  cdevNode: string | null;
  resources: ResourceView[];
  /** What VFIO says, when the device could be opened. */
  vfio: VfioView | null;
  /** Why there is no VFIO part. */
  vfioMissing: string | null;
}

/** IORESOURCE_* bits (include/linux/ioport.h). */
const IORESOURCE_IO = 0x100n;
const IORESOURCE_PREFETCH = 0x2000n;
const IORESOURCE_MEM_64 = 0x100000n;

/** A resource line with a name and a kind. */
export function resourceView(r: PciResource): ResourceView {
  const kind =
    (r.flags & IORESOURCE_IO) !== 0n
      ? 'io'
      : `mem${(r.flags & IORESOURCE_MEM_64) !== 0n ? 64 : 32}${(r.flags & IORESOURCE_PREFETCH) !== 0n ? ' prefetchable' : ''}`;
  const name = r.index < 6 ? `BAR${r.index}` : r.index === 6 ? 'ROM' : `resource ${r.index}`;
  return {
    index: r.index,
    name,
    start: hexWidth(r.start, 16),
    end: hexWidth(r.end, 16),
    size: Number(r.end - r.start + 1n),
    flags: hexWidth(r.flags, 1),
    kind,
  };
}

function flagList(pairs: [boolean, string][]): string {
  return (
    pairs
      .filter(([on]) => on)
      .map(([, name]) => name)
      .join(',') || '-'
  );
}

function vfioText(v: VfioView): string {
  const empty = v.regions.filter((r) => r.size === 0).map((r) => r.name);
  const regions = formatTable(
    ['REGION', 'SIZE', 'OFFSET', 'FLAGS', 'SPARSE MMAP'],
    v.regions
      .filter((r) => r.size > 0)
      .map((r) => [
        r.name,
        formatBytes(r.size),
        r.offset,
        flagList([
          [r.read, 'read'],
          [r.write, 'write'],
          [r.mmap, 'mmap'],
        ]),
        r.sparseAreas ? r.sparseAreas.map((a) => `${hexWidth(a.offset, 1)}+${formatBytes(a.size)}`).join(' ') || 'none' : '-',
      ]),
  );
  const irqs = formatTable(
    ['IRQ', 'COUNT', 'FLAGS'],
    v.irqs.map((i) => [
      i.name,
      String(i.count),
      flagList([
        [i.eventfd, 'eventfd'],
        [i.maskable, 'maskable'],
        [i.automasked, 'automasked'],
        [i.resizable, 'resizable'],
      ]),
    ]),
  );
  return [
    `VFIO (opened through ${v.backend}): device flags ${hexWidth(v.flags, 1)}, ${v.reset ? 'can reset' : 'no reset'}`,
    indent(regions),
    ...(empty.length > 0 ? [`  empty: ${empty.join(', ')}`] : []),
    '',
    indent(irqs),
    '',
    `  dma-buf export: ${v.dmaBuf.supported ? 'yes' : `no: ${v.dmaBuf.reason}`}`,
  ].join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function infoText(e: InfoEntry): string {
  const members =
    e.groupMembers.length === 0 ? 'no other devices' : `also ${e.groupMembers.map((m) => memberLabel(m.bdf, m.driver)).join(', ')}`;
  const facts: [string, string][] = [
    ['driver', `${e.driver ?? 'none'}${e.driverOverride ? ` (driver_override ${e.driverOverride})` : ''}`],
    ['IOMMU group', e.iommuGroup === null ? 'none' : `${e.iommuGroup}, ${e.groupNode}; ${members}`],
    ['VFIO cdev', e.cdev ? `${e.cdev}, ${e.cdevNode}` : 'none'],
    ['NUMA node', e.numaNode === null ? 'unknown' : String(e.numaNode)],
    ['reset methods', e.resetMethods.length > 0 ? e.resetMethods.join(', ') : 'none (no reset_method: the kernel cannot reset it)'],
    ['usable', usableLabel(e)],
    ['iommufd', e.backends.iommufd.ok ? 'yes' : `no: ${e.backends.iommufd.reason}`],
    ['type1', e.backends.type1.ok ? 'yes' : `no: ${e.backends.type1.reason}`],
  ];
  const width = Math.max(...facts.map(([k]) => k.length));
  const resources =
    e.resources.length === 0
      ? '  none'
      : indent(
          formatTable(
            ['RESOURCE', 'KIND', 'RANGE', 'SIZE'],
            e.resources.map((r) => [r.name, r.kind, `${r.start}-${r.end}`, formatBytes(r.size)]),
          ),
        );
  return [
    `${e.bdf}  ${e.vendor.slice(2)}:${e.device.slice(2)}  class ${classLabel(Number(e.class))}${e.bridge ? ' (bridge)' : ''}`,
    ...facts.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`),
    'sysfs resources:',
    resources,
    e.vfio ? vfioText(e.vfio) : `VFIO: ${e.vfioMissing}`,
  ].join('\n');
}

async function runInfo(bdf: string, o: { json: boolean; sysfsOnly: boolean }, ctx: CliContext): Promise<number> {
  const info = readPciDevice(bdf, ctx.paths.sys);
  const details = readPciDetails(bdf, ctx.paths.sys);
  const access = deviceAccess(info, ctx.paths);
  const probe = o.sysfsOnly ? { missing: 'not opened (--sysfs-only)' } : await probeVfio(info.bdf, access, ctx.paths);
  const entry: InfoEntry = {
    ...deviceEntry(info, ctx.paths, access),
    driverOverride: details.driverOverride ?? null,
    numaNode: details.numaNode ?? null,
    resetMethods: details.resetMethods,
    bridge: details.bridge,
    groupNode: access.groupNode ?? null,
    cdevNode: access.cdevNode ?? null,
    resources: info.resources.map(resourceView),
    vfio: probe.vfio ?? null,
    vfioMissing: probe.missing ?? null,
  };
  if (o.json) printJson(ctx, entry);
  else ctx.out(`${infoText(entry)}\n`);
  return 0;
}

/** The `info` command. */
export const infoCommand: Command = defineCommand({
  name: 'info',
  summary: 'one device: sysfs, backends, and what VFIO reports (regions, IRQs, dma-buf)',
  positionals: ['BDF'],
  description: [
    'Shows a PCI device (BDF: 0000:01:00.0, or 01:00.0) from sysfs: ids, driver and',
    'driver_override, IOMMU group and its other devices, VFIO cdev, NUMA node, reset methods,',
    'resources; whether each backend can open it and why not. When it is bound to vfio-pci and',
    "this user can open it, it is opened through the library and VFIO's own view follows:",
    'regions (size, read/write/mmap, sparse mmap areas), IRQ counts per type (INTx, MSI, MSI-X,',
    'ERR, REQ), reset, dma-buf export. The kernel resets a device when it is opened and nobody',
    'else has it open: --sysfs-only leaves it alone.',
  ].join('\n'),
  options: {
    json: { type: 'boolean', description: 'print one JSON object' },
    'sysfs-only': { type: 'boolean', description: 'do not open the device through VFIO' },
  },
  run: ({ values, positionals }, ctx) =>
    runInfo(bdfArgument(positionals[0]), { json: values.json === true, sysfsOnly: values['sysfs-only'] === true }, ctx),
});
