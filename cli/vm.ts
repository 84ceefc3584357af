/** `node-vfio vm run|shell|kernel`: the QEMU test guest from the command line. */
import { CliError, Command } from './command';
import { CliContext } from './context';
import { parseVmArgs, USAGE, VmCommand } from './vm-args';

async function runVm(cmd: VmCommand, ctx: CliContext): Promise<number> {
  // Loaded here, not at start-up: the other commands never need the harness.
  const { ensurePackages, HOST_PACKAGES } = await import('../vm/apt');
  const { runInGuest } = await import('../vm/guest');
  const { guestKernel } = await import('../vm/kernel');
  const log = (line: string): void => ctx.err(`node-vfio: ${line}\n`);
  if (cmd.action === 'kernel') {
    ensurePackages(HOST_PACKAGES, log);
    const k = await guestKernel(cmd.kernel, log);
    ctx.out(`${k.bzImage}\n`);
    return 0;
  }
  const result = await runInGuest({
    kernel: cmd.kernel,
    qemu: cmd.qemu,
    devices: cmd.devices,
    command: cmd.command,
    env: cmd.env,
    timeoutMs: cmd.timeoutMs,
    accel: cmd.accel,
    keep: cmd.keep,
    interactive: cmd.action === 'shell',
    log,
    onOutput: (text) => ctx.out(text),
  });
  if (result.failure) {
    log(result.failure);
    return 124;
  }
  if (cmd.keep) log(`run directory kept: ${result.runDir}`);
  return result.status ?? 0;
}

/** The `vm` command. */
export const vmCommand: Command = {
  name: 'vm',
  summary: 'the QEMU test guest: run a command, a shell, or build its kernel',
  synopsis: 'vm run|shell|kernel',
  help: () => USAGE,
  async run(args, ctx) {
    const cmd = parseVmArgs(['vm', ...args], ctx.env);
    if (cmd.action === 'help') {
      ctx.out(`${USAGE}\n`);
      return 0;
    }
    try {
      return await runVm(cmd, ctx);
    } catch (err) {
      if ((err as Error).name === 'HarnessError') throw new CliError((err as Error).message, 'ERR_HARNESS');
      throw err;
    }
  },
};
