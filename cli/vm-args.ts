/** The command line of `node-vfio vm ...`, parsed without side effects. */
import { DeviceName, DEVICE_NAMES, parseDevices } from '../vm/devices';
import { KernelKind } from '../vm/kernel';

export interface VmCommand {
  action: 'run' | 'shell' | 'kernel' | 'help';
  kernel: KernelKind;
  devices: DeviceName[];
  command: string[];
  env: Record<string, string>;
  timeoutMs?: number;
  accel: 'tcg' | 'kvm';
  keep: boolean;
}

export const USAGE = `usage:
  node-vfio vm run [options] -- CMD [ARGS...]   run CMD in the test guest (cwd: this project), exit with its status
  node-vfio vm shell [options]                  an interactive shell in the test guest
  node-vfio vm kernel [--kernel custom|debian]  build or fetch the guest kernel and print where it is
options:
  --kernel custom|debian   the project's kernel (iommufd, VFIO cdev, dma-buf; default) or Debian's stock kernel (type1 only)
  --devices LIST           comma-separated, from ${DEVICE_NAMES.join(', ')} (default: all)
  --env NAME=VALUE         set a variable in the guest (repeatable)
  --timeout SECONDS        kill the guest after this long (default 1800)
  --kvm                    use KVM instead of TCG (not reliable on every host)
  --keep                   keep the run's directory (.vm/runs/...) with the console log and device files`;

export function parseVmArgs(argv: readonly string[]): VmCommand {
  const out: VmCommand = { action: 'help', kernel: 'custom', devices: [...DEVICE_NAMES], command: [], env: {}, accel: 'tcg', keep: false };
  const args = [...argv];
  if (args[0] !== 'vm') throw new RangeError(`unknown command '${args[0] ?? ''}'\n${USAGE}`);
  args.shift();
  const action = args.shift();
  if (action === undefined || action === 'help' || action === '--help' || action === '-h') return out;
  if (action !== 'run' && action !== 'shell' && action !== 'kernel') throw new RangeError(`unknown action 'vm ${action}'\n${USAGE}`);
  out.action = action;
  const value = (flag: string): string => {
    const v = args.shift();
    if (v === undefined || v.startsWith('--')) throw new RangeError(`${flag} needs a value`);
    return v;
  };
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === '--') { out.command = args.splice(0); break; }
    if (a === '--kernel') {
      const k = value(a);
      if (k !== 'custom' && k !== 'debian') throw new RangeError(`--kernel takes custom or debian, not '${k}'`);
      out.kernel = k;
    } else if (a === '--devices') out.devices = parseDevices(value(a));
    else if (a === '--env') {
      const kv = value(a);
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new RangeError(`--env takes NAME=VALUE, not '${kv}'`);
      out.env[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--timeout') {
      const s = Number(value(a));
      if (!Number.isFinite(s) || s <= 0) throw new RangeError('--timeout takes a positive number of seconds');
      out.timeoutMs = s * 1000;
    } else if (a === '--kvm') out.accel = 'kvm';
    else if (a === '--keep') out.keep = true;
    else if (action === 'run' && !a.startsWith('-')) { out.command = [a, ...args.splice(0)]; break; }
    else throw new RangeError(`unknown option '${a}'\n${USAGE}`);
  }
  if (out.action === 'run' && out.command.length === 0) throw new RangeError(`vm run needs a command after --\n${USAGE}`);
  if (out.action !== 'run' && out.command.length > 0) throw new RangeError(`vm ${out.action} takes no command`);
  return out;
}
