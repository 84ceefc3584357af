/** The command line of `node-vfio vm ...`, parsed without side effects. */
import { DeviceName, DEVICE_NAMES, parseDevices } from '../vm/devices';
import type { KernelKind } from '../vm/kernel';
import { formatOptions, HELP_OPTION, oneOf, OptionSpecs, parseCommandArgs, UsageError } from './args';

/** What `node-vfio vm` was asked to do. */
export interface VmCommand {
  action: 'run' | 'shell' | 'kernel' | 'help';
  kernel: KernelKind;
  devices: DeviceName[];
  /** argv of the command to run in the guest (`vm run`). */
  command: string[];
  env: Record<string, string>;
  timeoutMs?: number;
  accel: 'tcg' | 'kvm';
  keep: boolean;
  /** Which QEMU boots the guest: the harness's bundled one (default) or the system's. */
  qemu: 'bundled' | 'system';
}

const ACTIONS = ['run', 'shell', 'kernel'] as const;

/** The options of `vm run|shell|kernel`. */
export const VM_OPTIONS: OptionSpecs = {
  kernel: {
    type: 'string',
    value: 'custom|debian',
    description: "the project's kernel (iommufd, VFIO cdev, dma-buf; default) or Debian's stock kernel (type1 only)",
  },
  devices: { type: 'string', value: 'LIST', description: `comma-separated, from ${DEVICE_NAMES.join(', ')} (default: all)` },
  env: { type: 'string', multiple: true, value: 'NAME=VALUE', description: 'set a variable in the guest (repeatable)' },
  timeout: { type: 'string', value: 'SECONDS', description: 'kill the guest after this long (default 1800)' },
  qemu: {
    type: 'string',
    value: 'bundled|system',
    description: "the harness's own QEMU (default; $NODE_VFIO_QEMU) or the system's qemu-system-x86_64",
  },
  kvm: { type: 'boolean', description: 'use KVM instead of TCG (not reliable on every host)' },
  keep: { type: 'boolean', description: "keep the run's directory (.vm/runs/...) with the console log and device files" },
};

/** The help text of `node-vfio vm`. */
export const USAGE = `usage:
  node-vfio vm run [options] -- CMD [ARGS...]   run CMD in the test guest (cwd: this project), exit with its status
  node-vfio vm shell [options]                  an interactive shell in the test guest
  node-vfio vm kernel [--kernel custom|debian]  build or fetch the guest kernel and print where it is
options:
${formatOptions(VM_OPTIONS)}`;

function envPair(kv: string): [string, string] {
  const eq = kv.indexOf('=');
  if (eq <= 0) throw new UsageError(`--env takes NAME=VALUE, not '${kv}'`);
  return [kv.slice(0, eq), kv.slice(eq + 1)];
}

function timeoutMs(text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError('--timeout takes a positive number of seconds');
  return s * 1000;
}

/**
 * Parses `vm ACTION [options] [--] [CMD...]` (argv starts with 'vm'). For
 * `run`, options end at the first word that is not one: the command's own
 * options stay its own. `env` gives the default of --qemu ($NODE_VFIO_QEMU).
 */
export function parseVmArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): VmCommand {
  const [first, action, ...args] = argv;
  if (first !== 'vm') throw new UsageError(`unknown command '${first ?? ''}'`);
  const out: VmCommand = {
    action: 'help',
    kernel: 'custom',
    devices: [...DEVICE_NAMES],
    command: [],
    env: {},
    accel: 'tcg',
    keep: false,
    qemu: env.NODE_VFIO_QEMU ? oneOf(env.NODE_VFIO_QEMU, ['bundled', 'system'], '$NODE_VFIO_QEMU') : 'bundled',
  };
  if (action === undefined || action === 'help' || action === '--help' || action === '-h') return out;
  if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown action 'vm ${action}' (vm ${ACTIONS.join('|')})`);
  const { values, rest } = parseCommandArgs(args, { ...VM_OPTIONS, ...HELP_OPTION }, { stopAtPositional: true });
  if (values.help) return out;
  out.action = action as VmCommand['action'];
  if (values.kernel !== undefined) out.kernel = oneOf(values.kernel as string, ['custom', 'debian'], '--kernel');
  if (values.devices !== undefined) {
    try {
      out.devices = parseDevices(values.devices as string);
    } catch (err) {
      throw new UsageError(`--devices: ${(err as Error).message}`);
    }
  }
  out.env = Object.fromEntries(((values.env as string[] | undefined) ?? []).map(envPair));
  if (values.timeout !== undefined) out.timeoutMs = timeoutMs(values.timeout as string);
  if (values.qemu !== undefined) out.qemu = oneOf(values.qemu as string, ['bundled', 'system'], '--qemu');
  if (values.kvm) out.accel = 'kvm';
  if (values.keep) out.keep = true;
  out.command = rest ?? [];
  if (out.action === 'run' && out.command.length === 0) throw new UsageError('vm run needs a command after --');
  if (out.action !== 'run' && out.command.length > 0) throw new UsageError(`vm ${out.action} takes no command`);
  return out;
}
