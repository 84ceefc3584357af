/**
 * Arguments for a fuzzed call, built from the parameter's declared type:
 * most of the time a value of that type (which for numbers means hostile
 * ones too: NaN, -1, 2^64, unaligned, zero), an instance of the class it
 * names from the fuzz's pool of live and closed objects, or an options
 * object with the interface's keys; otherwise a value of any other type.
 */
import { ApiDeclarations, Param, splitTop } from './fuzz-api';
import { randomBigInt, randomNumber, randomPrimitiveOrOdd, randomString, Rng } from './fuzz-random';

/** Where arguments come from: live objects by class, and what callbacks report to. */
export interface ArgSource {
  readonly rng: Rng;
  readonly api: ApiDeclarations;
  /** An object of the named exported class (or its subclasses), if the pool has one. */
  instanceOf(className: string): object | undefined;
  /** Any object from the pool. */
  anyObject(): object | undefined;
  /** A callback that reports every Error it is called with. */
  callback(): (...args: unknown[]) => void;
  /** Memory a call may write into (typed arrays over DMA buffers, or fresh ones). */
  bytes(kind: 'u8' | 'u32'): Uint8Array | Uint32Array;
  /** An AbortSignal: aborted, not yet, or soon. */
  signal(): AbortSignal;
  /** A value of a declared type made earlier by the library (an NvmeCommand from a builder), if any. */
  made(typeName: string): unknown;
}

/** A value of no particular type: a primitive, an odd object, or any object of the pool. */
export function wild(src: ArgSource): unknown {
  if (src.rng.chance(0.25)) return src.anyObject() ?? randomPrimitiveOrOdd(src.rng);
  return randomPrimitiveOrOdd(src.rng);
}

/** Arguments for a parameter list: typed values, now and then a wrong one, a missing one or an extra one. */
export function makeArgs(src: ArgSource, params: readonly Param[]): unknown[] {
  const { rng } = src;
  if (rng.chance(0.03)) return [];
  const args: unknown[] = [];
  for (const p of params) {
    if (p.optional && rng.chance(0.25)) break;
    if (p.rest) {
      for (let n = rng.int(3); n > 0; n--) args.push(valueOf(src, p.type.replace(/\[\]$/, ''), 0));
      continue;
    }
    args.push(rng.chance(0.85) ? valueOf(src, p.type, 0) : wild(src));
  }
  if (rng.chance(0.04)) args.push(wild(src));
  return args;
}

/** A bag of an interface's (or inline object type's) properties. */
function bag(src: ArgSource, props: Iterable<[string, { type: string; optional: boolean }]>, depth: number): Record<string, unknown> {
  const { rng } = src;
  const out: Record<string, unknown> = {};
  for (const [key, { type, optional }] of props) {
    if (optional ? rng.chance(0.5) : rng.chance(0.05)) continue;
    out[key] = rng.chance(0.85) ? valueOf(src, type, depth + 1) : wild(src);
  }
  if (rng.chance(0.03)) out[rng.pick(['extra', 'valueOf', 'length'])] = wild(src);
  return out;
}

function inlineProps(body: string): [string, { type: string; optional: boolean }][] {
  return splitTop(body, ';').flatMap((d) => {
    const m = /^(?:readonly )?([\w$]+)(\?)?\s*:\s*([\s\S]+)$/.exec(d.trim());
    return m ? [[m[1], { type: m[3].trim(), optional: m[2] === '?' }] as [string, { type: string; optional: boolean }]] : [];
  });
}

/** A value of the declared type `type` (TypeScript text), or of another type now and then. */
export function valueOf(src: ArgSource, type: string, depth: number): unknown {
  const { rng, api } = src;
  const t = type.trim();
  if (depth > 3) return wild(src);
  const union = splitTop(t, '|');
  if (union.length > 1) return valueOf(src, rng.pick(union), depth);
  const inter = splitTop(t, '&');
  if (inter.length > 1) return Object.assign({}, ...inter.map((x) => valueOf(src, x, depth + 1)));
  if (t.startsWith('readonly ')) return valueOf(src, t.slice(9), depth);
  if (t.endsWith('[]')) {
    const n = rng.chance(0.1) ? rng.int(40) : rng.int(4);
    return Array.from({ length: n }, () => (rng.chance(0.9) ? valueOf(src, t.slice(0, -2), depth + 1) : wild(src)));
  }
  if (t.startsWith('(') && t.endsWith(')')) return valueOf(src, t.slice(1, -1), depth);
  if (t.startsWith('{')) return bag(src, inlineProps(t.slice(1, -1)), depth);
  if (t.includes('=>')) return src.callback();
  if (/^['"].*['"]$/.test(t)) return t.slice(1, -1);
  if (/^-?\d+n?$/.test(t)) return t.endsWith('n') ? BigInt(t.slice(0, -1)) : Number(t);
  switch (t) {
    case 'number':
      return rng.chance(0.05) ? randomBigInt(rng) : randomNumber(rng);
    case 'bigint':
      return rng.chance(0.1) ? randomNumber(rng) : randomBigInt(rng);
    case 'boolean':
      return rng.chance(0.5);
    case 'string':
      return randomString(rng);
    case 'undefined':
    case 'void':
      return undefined;
    case 'null':
      return null;
    case 'symbol':
      return Symbol('fuzz');
    case 'Uint8Array':
      return src.bytes('u8');
    case 'Uint32Array':
      return src.bytes('u32');
    case 'ArrayBuffer':
      return new ArrayBuffer(rng.pick([0, 8, 4096]));
    case 'AbortSignal':
      return src.signal();
  }
  const generic = /^([\w$.]+)<(.*)>$/.exec(t);
  const base = (generic ? generic[1] : t).replace(/^.*\./, '');
  if (generic && (base === 'Iterable' || base === 'Array' || base === 'ReadonlyArray')) return valueOf(src, `${generic[2]}[]`, depth);
  if (generic && base === 'Partial') return valueOf(src, generic[2], depth);
  if (/(Callback|Listener)$/.test(base)) return src.callback();
  if (api.classes.has(base)) return src.instanceOf(base) ?? wild(src);
  if (rng.chance(0.5)) {
    const made = src.made(base);
    if (made !== undefined) return made;
  }
  const iface = api.interfaces.get(base);
  if (iface) return bag(src, iface, depth);
  const alias = api.aliases.get(base);
  if (alias !== undefined) return valueOf(src, alias, depth + 1);
  return wild(src);
}
