/**
 * The top level of `node-vfio`: finds the command, prints help, and turns
 * every error into a message and an exit status (2 for a mistake on the
 * command line, 1 for a failure).
 */
import { UsageError } from './args';
import { bindCommand, unbindCommand } from './bind';
import { CliError, Command, describeError, exitStatusOf } from './command';
import { CliContext, PATH_VARIABLES } from './context';
import { doctorCommand } from './doctor';
import { formatTable } from './format';
import { infoCommand } from './info';
import { listCommand } from './list';
import { vmCommand } from './vm';

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly Command[] = [listCommand, infoCommand, bindCommand, unbindCommand, doctorCommand, vmCommand];

/** `node-vfio --help`. */
export function usage(): string {
  const rows = [...COMMANDS.map((c) => [c.synopsis, c.summary]), ['help [COMMAND]', "this text, or a command's"]];
  return [
    'usage: node-vfio COMMAND [options]',
    '',
    "Gets PCI devices ready for node-vfio's userspace drivers (VFIO, iommufd) and shows what VFIO sees.",
    '',
    'commands:',
    formatTable(['', ''], rows)
      .split('\n')
      .slice(1)
      .map((l) => `  ${l}`)
      .join('\n'),
    '',
    'Every command takes --help; list, info, bind, unbind and doctor take --json.',
    'Exit status: 0 done, 1 failed (doctor: a check failed), 2 a mistake on the command line.',
    'For tests on a fake tree, these variables move /sys, /dev, /proc, /boot and /run/node-vfio:',
    `  ${Object.values(PATH_VARIABLES).join(' ')}`,
  ].join('\n');
}

function commandNamed(name: string): Command {
  const c = COMMANDS.find((x) => x.name === name);
  if (!c) throw new UsageError(`unknown command '${name}' (commands: ${COMMANDS.map((x) => x.name).join(', ')}, help)`);
  return c;
}

async function dispatch(argv: readonly string[], ctx: CliContext, at: { command?: Command }): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    ctx.err(`${usage()}\n`);
    return 2;
  }
  if (name === '--help' || name === '-h') {
    ctx.out(`${usage()}\n`);
    return 0;
  }
  if (name === 'help') {
    if (rest.length > 1) throw new UsageError(`help takes one command, not '${rest.join(' ')}'`);
    ctx.out(`${rest.length === 0 ? usage() : commandNamed(rest[0]).help()}\n`);
    return 0;
  }
  if (name.startsWith('-')) throw new UsageError(`unknown option '${name}': options come after the command`);
  at.command = commandNamed(name);
  return at.command.run(rest, ctx);
}

/** Runs `node-vfio ARGV...`; never rejects: resolves to the exit status after printing what went wrong. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  const at: { command?: Command } = {};
  try {
    return await dispatch(argv, ctx, at);
  } catch (err) {
    const who = at.command ? `node-vfio ${at.command.name}` : 'node-vfio';
    // Errors with a code are expected ones (the system's, the library's, this tool's); others are bugs: show where.
    const expected = err instanceof UsageError || err instanceof CliError || (err as NodeJS.ErrnoException)?.code !== undefined;
    ctx.err(`${who}: ${expected ? describeError(err) : ((err as Error)?.stack ?? String(err))}\n`);
    if (err instanceof UsageError) ctx.err(`run '${who} --help' for usage\n`);
    return exitStatusOf(err);
  }
}
