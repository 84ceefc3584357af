/**
 * A subcommand of `node-vfio`: its help text comes from the same option
 * table that parses it; --help and the count of positional arguments are
 * handled here once; with --json, errors come out as JSON too.
 */
import { normalizeBdf } from '../lib/sysfs';
import { formatOptions, HELP_OPTION, OptionSpecs, OptionValues, parseCommandArgs, UsageError } from './args';
import { CliContext } from './context';

/** What the top level dispatches to. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The synopsis shown in the command list (e.g. 'info BDF'). */
  synopsis: string;
  /** The full help text. */
  help(): string;
  /** Runs with the arguments after the command's name; resolves to the exit status. */
  run(args: readonly string[], ctx: CliContext): Promise<number>;
}

/** The parsed arguments a command's body gets. */
export interface CommandArgs {
  values: OptionValues;
  positionals: string[];
}

/** How to build a Command with defineCommand. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments, all required, by their name in the help (BDF). */
  positionals?: readonly string[];
  /** Paragraphs after the usage line. */
  description: string;
  options: OptionSpecs;
  run(args: CommandArgs, ctx: CliContext): Promise<number> | number;
}

/** An error of a command's own, with a code (and the system call's errno and syscall when one failed). */
export class CliError extends Error {
  readonly code: string;
  readonly errno?: number;
  readonly syscall?: string;
  readonly path?: string;

  constructor(message: string, code: string, cause?: NodeJS.ErrnoException) {
    super(message);
    this.name = 'CliError';
    this.code = code;
    if (cause?.errno !== undefined) this.errno = cause.errno;
    if (cause?.syscall !== undefined) this.syscall = cause.syscall;
    if (cause?.path !== undefined) this.path = cause.path;
  }
}

/** The exit status for an error: 2 for a mistake on the command line, 1 for anything else. */
export function exitStatusOf(err: unknown): number {
  return err instanceof UsageError ? 2 : 1;
}

/** An error's message, then its code, errno, syscall and path where it has them. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as NodeJS.ErrnoException;
  const facts = [
    e.code !== undefined && !(err instanceof UsageError) ? `code ${e.code}` : '',
    e.errno !== undefined ? `errno ${e.errno}` : '',
    e.syscall !== undefined ? `syscall ${e.syscall}` : '',
  ].filter(Boolean);
  return facts.length > 0 ? `${err.message} (${facts.join(', ')})` : err.message;
}

/** An error as the `error` member of --json output. */
export function errorJson(err: unknown): { error: Record<string, unknown> } {
  const e = err as NodeJS.ErrnoException;
  return {
    error: { message: e instanceof Error ? e.message : String(err), code: e?.code, errno: e?.errno, syscall: e?.syscall, path: e?.path },
  };
}

/** Prints `value` as indented JSON; bigints become decimal strings. */
export function printJson(ctx: CliContext, value: unknown): void {
  ctx.out(`${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

/** A PCI address argument in its canonical form; a UsageError when it is not one. */
export function bdfArgument(text: string): string {
  try {
    return normalizeBdf(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The help text of a command made by defineCommand. */
function helpText(spec: CommandSpec): string {
  const args = (spec.positionals ?? []).map((p) => ` ${p}`).join('');
  const options = { ...spec.options, ...HELP_OPTION };
  return `usage: node-vfio ${spec.name}${args} [options]\n\n${spec.description}\n\noptions:\n${formatOptions(options)}`;
}

/** A Command from a spec: parses, answers --help, checks the positionals, and prints errors as JSON under --json. */
export function defineCommand(spec: CommandSpec): Command {
  const wanted = spec.positionals ?? [];
  return {
    name: spec.name,
    summary: spec.summary,
    synopsis: [spec.name, ...wanted].join(' '),
    help: () => helpText(spec),
    async run(argv, ctx) {
      const { values, positionals } = parseCommandArgs(argv, { ...spec.options, ...HELP_OPTION });
      if (values.help) {
        ctx.out(`${helpText(spec)}\n`);
        return 0;
      }
      if (positionals.length > wanted.length) throw new UsageError(`unexpected argument '${positionals[wanted.length]}'`);
      if (positionals.length < wanted.length) throw new UsageError(`${spec.name} needs ${wanted.slice(positionals.length).join(' ')}`);
      try {
        return await spec.run({ values, positionals }, ctx);
      } catch (err) {
        if (!values.json || err instanceof UsageError) throw err;
        printJson(ctx, errorJson(err));
        ctx.err(`node-vfio ${spec.name}: ${describeError(err)}\n`);
        return exitStatusOf(err);
      }
    },
  };
}
