#!/usr/bin/env node
/** `node-vfio vm run|shell|kernel`: the test guest from the command line. */
import { ensurePackages, HarnessError, HOST_PACKAGES } from '../vm/apt';
import { parseVmArgs, USAGE } from './vm-args';
import { runInGuest } from '../vm/guest';
import { guestKernel } from '../vm/kernel';

async function main(argv: string[]): Promise<number> {
  const cmd = parseVmArgs(argv);
  const log = (line: string): void => { process.stderr.write(`node-vfio: ${line}\n`); };
  if (cmd.action === 'help') { process.stdout.write(`${USAGE}\n`); return 0; }
  ensurePackages(HOST_PACKAGES, log);
  if (cmd.action === 'kernel') {
    const k = await guestKernel(cmd.kernel, log);
    process.stdout.write(`${k.bzImage}\n`);
    return 0;
  }
  const result = await runInGuest({
    kernel: cmd.kernel, devices: cmd.devices, command: cmd.command, env: cmd.env, timeoutMs: cmd.timeoutMs,
    accel: cmd.accel, keep: cmd.keep, interactive: cmd.action === 'shell', log,
    onOutput: (text) => process.stdout.write(text),
  });
  if (result.failure) { log(result.failure); return 124; }
  if (cmd.keep) log(`run directory kept: ${result.runDir}`);
  return result.status ?? 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  const known = err instanceof HarnessError || err instanceof RangeError;
  process.stderr.write(`node-vfio: ${known ? (err as Error).message : (err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = known && err instanceof RangeError ? 2 : 1;
});
