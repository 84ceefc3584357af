/** `node-vfio doctor`: is this host ready for the library, and if not, what fixes it. */
import { listVfioPciDevices } from '../lib/sysfs';
import { Command, defineCommand, printJson } from './command';
import { CliContext } from './context';
import {
  Check,
  checkBackendNodes,
  checkDmaBuf,
  checkHugepages,
  checkIommu,
  checkMemlock,
  checkPermissions,
  checkVfioDevices,
  checkVfioPci,
  DoctorInput,
  probeCandidate,
} from './doctor-checks';
import { formatBytes } from './format';
import { kernelRelease, parseSize, readKernelConfig } from './host-facts';
import { deviceAccess } from './vfio-access';
import { probeVfio } from './vfio-probe';

/** What `doctor --json` prints. */
export interface DoctorReport {
  /** No check failed. */
  ok: boolean;
  kernel: string | null;
  uid: number;
  checks: Check[];
}

/** The RLIMIT_MEMLOCK doctor wants by default. */
export const DEFAULT_MEMLOCK = '64M';

/** Runs every check; `probe` opens a device bound to vfio-pci to ask VFIO about dma-buf export. */
export async function doctorReport(ctx: CliContext, memlock: bigint, probe: boolean): Promise<DoctorReport> {
  const release = kernelRelease(ctx.paths);
  const input: DoctorInput = {
    paths: ctx.paths,
    memlock,
    release,
    config: release === undefined ? undefined : readKernelConfig(ctx.paths, release),
    vfioDevices: listVfioPciDevices(ctx.paths.sys),
  };
  let probed: { bdf: string; supported: boolean; reason?: string } | undefined;
  const candidate = probe ? probeCandidate(input) : undefined;
  if (candidate) {
    const r = await probeVfio(candidate.bdf, deviceAccess(candidate, ctx.paths), ctx.paths);
    if (r.vfio) probed = { bdf: candidate.bdf, ...r.vfio.dmaBuf };
  }
  const checks = [
    checkIommu(input),
    checkVfioPci(input),
    ...checkBackendNodes(input),
    checkVfioDevices(input),
    checkPermissions(input),
    checkMemlock(input),
    checkHugepages(input),
    checkDmaBuf(input, probed),
  ];
  return { ok: checks.every((c) => c.status !== 'fail'), kernel: release ?? null, uid: process.getuid?.() ?? -1, checks };
}

function reportText(r: DoctorReport, memlock: bigint): string {
  const width = Math.max(...r.checks.map((c) => c.title.length));
  const lines = r.checks.flatMap((c) => [
    `${c.status === 'fail' ? 'FAIL' : c.status.padEnd(4)}  ${c.title.padEnd(width)}  ${c.detail}`,
    ...(c.fix && c.status !== 'ok' ? [`${' '.repeat(6 + width)}  fix: ${c.fix}`] : []),
  ]);
  const failed = r.checks.filter((c) => c.status === 'fail').length;
  const warned = r.checks.filter((c) => c.status === 'warn').length;
  const verdict =
    failed > 0
      ? `${failed} check(s) failed: the library cannot work here until they are fixed`
      : warned > 0
        ? `ready, with ${warned} warning(s)`
        : 'ready';
  return [`kernel ${r.kernel ?? 'unknown'}, uid ${r.uid}, RLIMIT_MEMLOCK wanted ${formatBytes(memlock)}`, ...lines, verdict].join('\n');
}

/** The `doctor` command. */
export const doctorCommand: Command = defineCommand({
  name: 'doctor',
  summary: 'check this host: IOMMU, VFIO nodes, permissions, memlock, huge pages, kernel',
  description: [
    'Checks what the library needs of this host, as the user running it: the IOMMU on, vfio-pci',
    'loaded, /dev/vfio/vfio (type1) and /dev/iommu (iommufd), devices bound to vfio-pci and their',
    'VFIO cdevs, read/write access to those nodes (access(2)), RLIMIT_MEMLOCK, huge pages, and',
    'VFIO dma-buf export (Linux 6.19+, CONFIG_VFIO_PCI_DMABUF). Each check says ok, warn or FAIL,',
    'and the command that fixes it. Exits 1 when a check failed.',
  ].join('\n'),
  options: {
    memlock: { type: 'string', value: 'SIZE', description: `the RLIMIT_MEMLOCK to expect (default ${DEFAULT_MEMLOCK}; K, M, G suffixes)` },
    probe: { type: 'boolean', description: 'open a device bound to vfio-pci to ask VFIO itself (the kernel resets it if idle)' },
    json: { type: 'boolean', description: 'print the checks as JSON' },
  },
  async run({ values }, ctx) {
    const memlock = parseSize((values.memlock as string | undefined) ?? DEFAULT_MEMLOCK, '--memlock');
    const report = await doctorReport(ctx, memlock, values.probe === true);
    if (values.json) printJson(ctx, report);
    else ctx.out(`${reportText(report, memlock)}\n`);
    return report.ok ? 0 : 1;
  },
});
