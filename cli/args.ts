/**
 * Command-line options over `node:util`'s parseArgs: one table of options per
 * command gives both the parser and the help text, and every mistake is a
 * UsageError (a RangeError) that names the argument.
 */
import { parseArgs } from 'node:util';

/** One option of a command. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** A one-letter alias, e.g. 'h' for -h. */
  short?: string;
  /** May be given more than once; the values come as an array. */
  multiple?: boolean;
  /** The value's placeholder in the help text (SIZE, NAME=VALUE); string options only. */
  value?: string;
  /** One line for the help text. */
  description: string;
}

/** A command's options by long name (without the dashes). */
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Parsed option values: true for a boolean given, a string (or strings, `multiple`) for a string option. */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** A mistake on the command line (a RangeError, by name too): the process exits with status 2 and says what was wrong. */
export class UsageError extends RangeError {}

/** What parseCommandArgs found. */
export interface ParsedArgs {
  values: OptionValues;
  positionals: string[];
  /** With `stopAtPositional`: the words from the first positional on, or after `--`. */
  rest?: string[];
}

/** The help option every command has. */
export const HELP_OPTION: OptionSpecs = { help: { type: 'boolean', short: 'h', description: 'print this help' } };

/**
 * Parses `args` against `options`. With `stopAtPositional`, options end at
 * the first word that is not one (or at `--`) and the words from there on
 * are `rest`, untouched: `vm run --keep ls -l` runs `ls -l`.
 */
export function parseCommandArgs(args: readonly string[], options: OptionSpecs, how: { stopAtPositional?: boolean } = {}): ParsedArgs {
  const config = Object.fromEntries(
    Object.entries(options).map(([name, o]) => [
      name,
      { type: o.type, multiple: o.multiple === true, ...(o.short ? { short: o.short } : {}) },
    ]),
  );
  // strict: false so that parseArgs reports instead of throwing: the checks
  // below say what is wrong in this tool's words, and find where options end.
  const { tokens } = parseArgs({ args: [...args], options: config, strict: false, allowPositionals: true, tokens: true });
  const values: OptionValues = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'option-terminator' || (t.kind === 'positional' && how.stopAtPositional)) {
      const from = t.kind === 'positional' ? t.index : t.index + 1;
      if (how.stopAtPositional) return { values, positionals, rest: args.slice(from) };
      positionals.push(...args.slice(from));
      break;
    }
    if (t.kind === 'positional') {
      positionals.push(t.value);
      continue;
    }
    const spec = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (!spec) throw new UsageError(`unknown option '${t.rawName}'`);
    const flag = `--${t.name}`;
    if (spec.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${flag} takes no value`);
      values[t.name] = true;
      continue;
    }
    // parseArgs hands the next word to a string option even when it is an option itself ('-1' is a value).
    if (t.value === undefined || (!t.inlineValue && /^-(-|[A-Za-z])/.test(t.value))) throw new UsageError(`${flag} needs a value`);
    if (spec.multiple) values[t.name] = [...((values[t.name] as string[] | undefined) ?? []), t.value];
    else values[t.name] = t.value;
  }
  return { values, positionals, rest: how.stopAtPositional ? [] : undefined };
}

/** The "options:" lines of a help text, aligned. */
export function formatOptions(options: OptionSpecs): string {
  const heads = Object.entries(options).map(([name, o]) => {
    const short = o.short ? `-${o.short}, ` : '';
    return [`${short}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`, o.description];
  });
  const width = Math.max(...heads.map(([h]) => h.length));
  return heads.map(([h, d]) => `  ${h.padEnd(width)}  ${d}`).join('\n');
}

/** A string option that must be one of `choices`. */
export function oneOf<T extends string>(value: string, choices: readonly T[], flag: string): T {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${flag} takes ${choices.join(' or ')}, not '${value}'`);
  return value as T;
}
