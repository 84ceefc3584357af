/**
 * The fuzz's driver: calls the package's public entries (every constructor,
 * static and instance method, getter, setter and function-valued field of
 * every exported class, and every exported function, nvmeCommands' included)
 * with arguments from {@link makeArgs}, on a pool of objects that grows with
 * what the calls return (so the pool holds live, closed and half-used
 * objects alike, and calls come in any order). Promises are not always
 * awaited, so calls overlap. Every error a call throws, a promise rejects
 * with or a callback receives is judged by {@link internalReason}; the
 * process's uncaught exceptions and unhandled rejections are counted by the
 * caller. Each call is written to a small file before it is made, so that a
 * process killed by a signal still says which call killed it.
 */
import * as fs from 'node:fs';
import { ApiDeclarations, Member, Param, parseParams } from './fuzz-api';
import { ArgSource, makeArgs, valueOf } from './fuzz-args';
import { Rng } from './fuzz-random';
import { describeValue, internalReason } from './fuzz-verdict';

/** One thing the fuzz can call. */
export interface Entry {
  /** 'Class.member', 'Class#member' (instance), or 'function' / 'nvmeCommands.function'. */
  id: string;
  /** The class whose instances are the receivers (instance members), else undefined. */
  owner?: string;
  kind: Member['kind'] | 'function';
  key: string | symbol;
  params: Param[];
  /** The callee for constructors, statics and functions. */
  fn?: (...args: unknown[]) => unknown;
  cls?: abstract new (...args: never[]) => unknown;
}

/** Declines a call the fuzz must not make (see the guards); the reason is counted. */
export type Guard = (entry: Entry, target: unknown, args: unknown[]) => string | undefined;

/** An internal error: the call that led to it and what it was. */
export interface Finding {
  call: number;
  entry: string;
  args: string;
  how: 'threw' | 'rejected' | 'callback';
  reason: string;
  /** How many times the same entry met the same message (numbers aside). */
  count: number;
  stack?: string;
}

export interface FuzzReport {
  seed: number;
  calls: number;
  /** Calls that returned (or resolved). */
  ok: number;
  /** Calls that failed with one of the library's own errors, by error name and code. */
  refused: Record<string, number>;
  /** Calls the guards declined, by reason. */
  skipped: Record<string, number>;
  internal: Finding[];
  internalCount: number;
  /** Entries of the public surface never called (no receiver of their class was ever at hand). */
  neverCalled: string[];
  entries: number;
  durationMs: number;
}

const SYMBOLS: Record<string, symbol> = {
  '[Symbol.dispose]': Symbol.dispose,
  '[Symbol.asyncDispose]': Symbol.asyncDispose,
  '[Symbol.asyncIterator]': Symbol.asyncIterator,
  '[Symbol.iterator]': Symbol.iterator,
};

/** Members whose call ends an object: drawn less often, so that the pool is not all closed objects. */
const ENDINGS =
  /^(close|release|unmap|free|disable|detach|reset|resetAsync|\[Symbol\.(async)?[dD]ispose\]|setMemoryEnabled|fail|resetRings)$/;

type Ctor = abstract new (...args: never[]) => unknown;

/** Every entry of `exports` (the package's module object) that the declarations call public. */
export function entriesOf(exports: Record<string, unknown>, api: ApiDeclarations): Entry[] {
  const out: Entry[] = [];
  const fnEntry = (id: string, name: string, fn: (...a: unknown[]) => unknown): void => {
    const params = api.functions.get(name);
    if (params) out.push({ id, kind: 'function', key: name, params, fn });
  };
  for (const [name, value] of Object.entries(exports)) {
    if (typeof value === 'function' && api.classes.has(name)) {
      const cls = value as Ctor & ((...a: unknown[]) => unknown);
      for (const m of api.classes.get(name)!) {
        const key = SYMBOLS[m.name] ?? m.name;
        if (m.kind === 'ctor') out.push({ id: `new ${name}`, kind: 'ctor', key, params: m.params, cls });
        else if (m.kind === 'static') {
          const fn = (cls as unknown as Record<string, (...a: unknown[]) => unknown>)[m.name];
          if (typeof fn === 'function') out.push({ id: `${name}.${m.name}`, kind: 'static', key, params: m.params, fn: fn.bind(cls) });
        } else {
          let params = m.params;
          if (m.kind === 'field') {
            // A field of a function type is called with that type's parameters.
            const type = api.aliases.get(m.type ?? '') ?? m.type ?? '';
            const fm = /^(?:<[^>]*>)?\(([\s\S]*)\)\s*=>/.exec(type);
            params = fm ? parseParams(fm[1]) : [];
          }
          out.push({ id: `${name}#${m.name}${m.kind === 'set' ? '=' : ''}`, owner: name, kind: m.kind, key, params, cls });
        }
      }
    } else if (typeof value === 'function') fnEntry(name, name, value as (...a: unknown[]) => unknown);
    else if (value && typeof value === 'object' && name === 'nvmeCommands') {
      for (const [fname, f] of Object.entries(value as Record<string, unknown>)) {
        if (typeof f === 'function') fnEntry(`nvmeCommands.${fname}`, fname, f as (...a: unknown[]) => unknown);
      }
    }
  }
  return out;
}

/** How a driver runs. */
export interface DriverOptions {
  seed: number;
  api: ApiDeclarations;
  entries: Entry[];
  /** Exported classes by name, to sort objects into the pool. */
  classes: Map<string, Ctor>;
  guards: Guard[];
  /** A file that holds the call being made (overwritten per call), for a crash's attribution. */
  traceFile?: string;
  /** Called with each object the pool takes in (guards patch some: see fuzz-guards). */
  onAdopt?: (obj: object) => void;
  /** Runs each call (synchronously), e.g. to mark which entry a patched object is called from. */
  wrap?: (entry: Entry, call: () => unknown) => unknown;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FuzzDriver implements ArgSource {
  readonly rng: Rng;
  readonly api: ApiDeclarations;
  private readonly pool = new Map<string, object[]>();
  private readonly all: object[] = [];
  /** Every object with a close-like method the fuzz ever saw, to end them all at the end. */
  readonly closeables: object[] = [];
  private readonly madeValues = new Map<string, unknown[]>();
  private readonly called = new Set<string>();
  private readonly traceFd?: number;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly findings = new Map<string, Finding>();
  /** The call under way, or the last one: what an uncaught error is attributed to. */
  current: { readonly call: number; readonly entry: string; readonly args: string } = { call: -1, entry: '', args: '' };
  readonly report: FuzzReport;
  private readonly started = Date.now();

  constructor(private readonly o: DriverOptions) {
    this.rng = new Rng(o.seed);
    this.api = o.api;
    if (o.traceFile) this.traceFd = fs.openSync(o.traceFile, 'w');
    this.report = {
      seed: o.seed,
      calls: 0,
      ok: 0,
      refused: {},
      skipped: {},
      internal: [],
      internalCount: 0,
      neverCalled: [],
      entries: o.entries.length,
      durationMs: 0,
    };
  }

  /** Takes `value` (and the objects of an array) into the pool, sorted by exported class. */
  adopt(value: unknown): void {
    if (Array.isArray(value)) {
      for (const v of value.slice(0, 8)) this.adopt(v);
      return;
    }
    if (value === null || typeof value !== 'object' || value instanceof Promise) return;
    const obj = value;
    let sorted = false;
    for (const [name, cls] of this.o.classes) {
      if (!(obj instanceof cls)) continue;
      sorted = true;
      const list = this.pool.get(name) ?? [];
      this.pool.set(name, list);
      if (list.includes(obj)) continue;
      if (list.length < 8) list.push(obj);
      else list[this.rng.int(list.length)] = obj;
    }
    if (!sorted) {
      // A plain object the library made: an NvmeCommand from a builder (by its shape).
      const rec = obj as Record<string, unknown>;
      if (typeof rec.opcode === 'number' && typeof rec.name === 'string') this.remember('NvmeCommand', obj);
      return;
    }
    if (!this.all.includes(obj)) {
      if (this.all.length < 64) this.all.push(obj);
      else this.all[this.rng.int(this.all.length)] = obj;
      const ends = obj as { close?: unknown };
      if (typeof ends.close === 'function' && !this.closeables.includes(obj)) this.closeables.push(obj);
      this.o.onAdopt?.(obj);
    }
  }

  private remember(type: string, v: unknown): void {
    const list = this.madeValues.get(type) ?? [];
    this.madeValues.set(type, list);
    if (list.length < 16) list.push(v);
    else list[this.rng.int(list.length)] = v;
  }

  instanceOf(className: string): object | undefined {
    const list = this.pool.get(className);
    return list && list.length > 0 ? this.rng.pick(list) : undefined;
  }

  anyObject(): object | undefined {
    return this.all.length > 0 ? this.rng.pick(this.all) : undefined;
  }

  made(typeName: string): unknown {
    const list = this.madeValues.get(typeName);
    return list && list.length > 0 ? this.rng.pick(list) : undefined;
  }

  callback(): (...args: unknown[]) => void {
    const at = this.current; // the call being prepared: its arguments are described only if needed
    return (...got: unknown[]) => {
      for (const g of got) if (g instanceof Error) this.judge(g, at, 'callback');
    };
  }

  bytes(kind: 'u8' | 'u32'): Uint8Array | Uint32Array {
    const buffers = (this.pool.get('DmaBuffer') ?? []) as { closed: boolean; buffer: ArrayBuffer }[];
    const live = buffers.filter((b) => !b.closed);
    const size = this.rng.pick([0, 1, 3, 4, 8, 64, 512, 4096, 8192]);
    if (live.length > 0 && this.rng.chance(0.5)) {
      const ab = this.rng.pick(live).buffer;
      const at = this.rng.pick([0, 4, 512, 4096]);
      const bytes = Math.max(0, Math.min(size, ab.byteLength - at));
      if (at <= ab.byteLength) return kind === 'u8' ? new Uint8Array(ab, at, bytes) : new Uint32Array(ab, at, bytes >>> 2);
    }
    return kind === 'u8' ? new Uint8Array(size) : new Uint32Array(size >>> 2);
  }

  signal(): AbortSignal {
    switch (this.rng.int(3)) {
      case 0:
        return AbortSignal.abort(this.rng.chance(0.5) ? undefined : new Error('fuzz abort'));
      case 1:
        return new AbortController().signal;
      default:
        return AbortSignal.timeout(this.rng.pick([0, 1, 20]));
    }
  }

  /** Records an error met by a call: the library's own (counted by kind) or internal (a finding). */
  judge(error: unknown, at: { call: number; entry: string; args: string }, how: Finding['how'], params: readonly string[] = []): void {
    if (error instanceof Error && error.name === 'FuzzSkip') {
      this.report.skipped[error.message] = (this.report.skipped[error.message] ?? 0) + 1;
      return;
    }
    const reason = internalReason(error, params);
    if (reason === undefined) {
      const e = error as { name?: string; code?: unknown };
      const key = `${e.name}${typeof e.code === 'string' ? ` ${e.code}` : ''}`;
      this.report.refused[key] = (this.report.refused[key] ?? 0) + 1;
      return;
    }
    this.report.internalCount++;
    // One sample per entry and message (numbers aside), with a count.
    const key = `${at.entry} ${reason.replace(/\d+/g, 'N')}`;
    const known = this.findings.get(key);
    if (known) known.count++;
    else if (this.findings.size < 200) {
      const f = { ...at, how, reason, count: 1, stack: (error as Error)?.stack?.split('\n').slice(0, 6).join('\n') };
      this.findings.set(key, f);
      this.report.internal.push(f);
    }
  }

  /** Overwrites the trace file with `text` (one write: padded to a fixed width, so no truncation is needed). */
  private trace(text: string): void {
    if (this.traceFd === undefined) return;
    const b = Buffer.from(`${text.slice(0, 199).padEnd(199)}\n`);
    fs.writeSync(this.traceFd, b, 0, b.length, 0);
  }

  /** Entries that have a receiver (or need none) now. */
  private callable(): Entry[] {
    return this.o.entries.filter((e) => e.owner === undefined || (this.pool.get(e.owner)?.length ?? 0) > 0);
  }

  /** Makes `count` calls. */
  async run(count: number): Promise<void> {
    let choices = this.callable();
    for (let i = 0; i < count; i++) {
      if (i % 64 === 0) {
        choices = this.callable();
        await new Promise((r) => setImmediate(r));
      }
      let entry = this.rng.pick(choices);
      if (ENDINGS.test(String(entry.key).replace(/^Symbol\(Symbol\.(\w+)\)$/, '[Symbol.$1]')) && this.rng.chance(0.8)) {
        entry = this.rng.pick(choices);
      }
      await this.call(entry);
    }
  }

  /** One call of `entry`, judged. */
  async call(entry: Entry): Promise<void> {
    const target = entry.owner === undefined ? undefined : this.instanceOf(entry.owner);
    if (entry.owner !== undefined && target === undefined) return;
    // The call's record first (callbacks made for its arguments report to it); its arguments are described only when read.
    const args: unknown[] = [];
    const at = {
      call: this.report.calls,
      entry: entry.id,
      get args(): string {
        return args.map((a) => describeValue(a)).join(', ');
      },
    };
    this.current = at;
    args.push(
      ...(entry.kind === 'get'
        ? []
        : entry.kind === 'set'
          ? [valueOf(this, entry.params[0]?.type ?? 'any', 0)]
          : makeArgs(this, entry.params)),
    );
    for (const guard of this.o.guards) {
      const why = guard(entry, target, args);
      if (why !== undefined) {
        this.report.skipped[why] = (this.report.skipped[why] ?? 0) + 1;
        return;
      }
    }
    const n = this.report.calls++;
    this.called.add(entry.id);
    this.trace(`#${n} ${entry.id} (seed ${this.report.seed})`);
    let result: unknown;
    try {
      const wrap = this.o.wrap;
      result = wrap ? wrap(entry, () => this.invoke(entry, target, args)) : this.invoke(entry, target, args);
    } catch (err) {
      this.judge(
        err,
        at,
        'threw',
        entry.params.map((p) => p.name),
      );
      return;
    }
    if (result instanceof Promise) {
      const p = result.then(
        (v) => {
          this.report.ok++;
          this.adopt(v);
        },
        (err) =>
          this.judge(
            err,
            at,
            'rejected',
            entry.params.map((x) => x.name),
          ),
      );
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
      // Await some (ordered use), let others run on (overlapping calls), never for long.
      if (this.rng.chance(0.5)) await Promise.race([p, sleep(this.rng.pick([0, 0, 1, 2]))]);
      return;
    }
    this.report.ok++;
    this.adopt(result);
  }

  private invoke(entry: Entry, target: unknown, args: unknown[]): unknown {
    switch (entry.kind) {
      case 'ctor':
        return Reflect.construct(entry.cls as unknown as new (...a: unknown[]) => unknown, args);
      case 'static':
      case 'function':
        return entry.fn!(...args);
      case 'get':
        return (target as Record<string | symbol, unknown>)[entry.key];
      case 'set':
        (target as Record<string | symbol, unknown>)[entry.key] = args[0];
        return undefined;
      case 'field': {
        const v = (target as Record<string | symbol, unknown>)[entry.key];
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).apply(target, args) : v;
      }
      default:
        return (target as Record<string | symbol, (...a: unknown[]) => unknown>)[entry.key](...args);
    }
  }

  /** Waits (at most `ms`) for the calls still under way to settle. */
  async settle(ms: number): Promise<number> {
    const deadline = Date.now() + ms;
    while (this.pending.size > 0 && Date.now() < deadline) await Promise.race([...this.pending, sleep(50)]);
    return this.pending.size;
  }

  /** Closes every object the fuzz saw, newest first, judging what that throws. */
  async closeAll(): Promise<void> {
    const at = { call: -1, entry: 'close at the end', args: '' };
    for (const obj of [...this.closeables].reverse()) {
      try {
        const r = (obj as { close(): unknown }).close();
        if (r instanceof Promise) await Promise.race([r.catch((err) => this.judge(err, at, 'rejected')), sleep(5000)]);
      } catch (err) {
        this.judge(err, at, 'threw');
      }
    }
    this.closeables.length = 0;
    this.pool.clear();
    this.all.length = 0;
  }

  /** The report, with the entries never called. */
  finish(): FuzzReport {
    this.report.neverCalled = this.o.entries.filter((e) => !this.called.has(e.id)).map((e) => e.id);
    this.report.durationMs = Date.now() - this.started;
    if (this.traceFd !== undefined) fs.closeSync(this.traceFd);
    return this.report;
  }
}
