/**
 * The package's public surface as the fuzz sees it, read from the published
 * declarations (dist/lib/**\/*.d.ts, which tsc writes with `stripInternal`:
 * what a user can see and call, and nothing marked @internal): each class's
 * constructor, static and instance methods, getters, setters and
 * function-valued fields with their parameters' declared types, the exported
 * functions, and the interfaces and type aliases those types name (for
 * building option objects). A small reader of tsc's own output format, not a
 * TypeScript parser: enough for what tsc emits.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A parameter: its name, declared type (text), whether optional or a rest parameter. */
export interface Param {
  name: string;
  type: string;
  optional: boolean;
  rest: boolean;
}

/** A callable member of a class. */
export interface Member {
  kind: 'ctor' | 'static' | 'method' | 'get' | 'set' | 'field';
  name: string;
  params: Param[];
  /** A field's declared type (a function type or the name of one). */
  type?: string;
}

/** What the declarations say. */
export interface ApiDeclarations {
  classes: Map<string, Member[]>;
  /** Exported functions, by name (overloads merged: the longest parameter list). */
  functions: Map<string, Param[]>;
  /** Interfaces: their properties' types, with those of the interfaces they extend. */
  interfaces: Map<string, Map<string, { type: string; optional: boolean }>>;
  /** Type aliases: their text. */
  aliases: Map<string, string>;
}

function dtsFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? dtsFiles(path.join(dir, e.name)) : e.name.endsWith('.d.ts') ? [path.join(dir, e.name)] : []));
}

const OPEN = '({[<';
const CLOSE = ')}]>';

/** `text` split at `sep` where no bracket is open (an arrow's `=>` does not close an angle bracket). */
export function splitTop(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c) && !(c === '>' && text[i - 1] === '=')) depth--;
    else if (depth === 0 && c === sep) {
      out.push(text.slice(from, i));
      from = i + 1;
    }
  }
  out.push(text.slice(from));
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

/** The index of the bracket closing the one at `at`. */
function closing(text: string, at: number): number {
  let depth = 0;
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c) && !(c === '>' && text[i - 1] === '=')) {
      depth--;
      if (depth === 0) return i;
    }
  }
  return text.length - 1;
}

export function parseParams(list: string): Param[] {
  return splitTop(list, ',').map((p) => {
    const rest = p.startsWith('...');
    const body = rest ? p.slice(3) : p;
    const colon = body.indexOf(':');
    const rawName = colon < 0 ? body : body.slice(0, colon).trim();
    const optional = rawName.endsWith('?');
    return { name: optional ? rawName.slice(0, -1) : rawName, type: colon < 0 ? 'any' : body.slice(colon + 1).trim(), optional, rest };
  });
}

/** One member declaration of a class body (modifiers, name, then a parameter list or a type). */
function parseMember(decl: string): Member | undefined {
  let text = decl.replace(/\s+/g, ' ').trim();
  if (/^(private|protected|#private)\b/.test(text)) return undefined;
  let isStatic = false;
  let accessor: 'get' | 'set' | undefined;
  for (;;) {
    const m = /^(static|readonly|abstract|declare|get|set) (?=[\w[])/.exec(text);
    if (!m) break;
    if (m[1] === 'static') isStatic = true;
    if (m[1] === 'get' || m[1] === 'set') accessor = m[1];
    text = text.slice(m[0].length);
  }
  const nameMatch = /^(\[[^\]]+\]|[\w$]+)\??/.exec(text);
  if (!nameMatch) return undefined;
  const name = nameMatch[1];
  let rest = text.slice(nameMatch[0].length).trim();
  if (rest.startsWith('<')) rest = rest.slice(closing(rest, 0) + 1).trim();
  if (rest.startsWith('(')) {
    const params = parseParams(rest.slice(1, closing(rest, 0)));
    if (name === 'constructor') return { kind: 'ctor', name, params };
    if (accessor) return { kind: accessor, name, params };
    return { kind: isStatic ? 'static' : 'method', name, params };
  }
  if (rest.startsWith(':') && !isStatic) return { kind: 'field', name, params: [], type: rest.slice(1).trim() };
  return undefined;
}

/** The public surface in `dir` (default: the compiled library next to this file). */
export function readDeclarations(dir = path.resolve(__dirname, '../../lib')): ApiDeclarations {
  const api: ApiDeclarations = { classes: new Map(), functions: new Map(), interfaces: new Map(), aliases: new Map() };
  const extendsOf = new Map<string, string[]>();
  for (const file of dtsFiles(dir)) {
    const src = fs
      .readFileSync(file, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/.*$/gm, '');
    const head = /export declare (class|interface) ([\w$]+)(<[^{]*?>)?([^{]*)\{|export interface ([\w$]+)(<[^{]*?>)?([^{]*)\{/g;
    for (let m = head.exec(src); m; m = head.exec(src)) {
      const open = m.index + m[0].length - 1;
      const end = closing(src, open);
      const body = src.slice(open + 1, end);
      const isClass = m[1] === 'class';
      const name = m[2] ?? m[5];
      const heritage = m[4] ?? m[7] ?? '';
      if (isClass) {
        const members = splitTop(body, ';')
          .map(parseMember)
          .filter((x): x is Member => x !== undefined);
        // No constructor in the declarations: a private one, or an @internal one stripped from them; neither is called.
        api.classes.set(name, members);
      } else {
        const props = new Map<string, { type: string; optional: boolean }>();
        for (const d of splitTop(body, ';')) {
          const pm = /^(?:readonly )?([\w$]+)(\?)?\s*:\s*([\s\S]+)$/.exec(d.replace(/\s+/g, ' ').trim());
          if (pm) props.set(pm[1], { type: pm[3], optional: pm[2] === '?' });
        }
        api.interfaces.set(name, props);
        const ext = /extends ([^{]+)/.exec(heritage);
        if (ext) extendsOf.set(name, splitTop(ext[1], ','));
      }
      head.lastIndex = end;
    }
    for (const f of src.matchAll(/export declare function ([\w$]+)(<[^(]*>)?\(/g)) {
      const open = f.index + f[0].length - 1;
      const params = parseParams(src.slice(open + 1, closing(src, open)));
      const known = api.functions.get(f[1]);
      if (!known || known.length < params.length) api.functions.set(f[1], params);
    }
    for (const a of src.matchAll(/export type ([\w$]+)(<[^=]*>)? = ([^;]+);/g)) api.aliases.set(a[1], a[3].replace(/\s+/g, ' ').trim());
  }
  // Inherited properties of interfaces (Partial<X> and the like are left to the generator).
  const resolve = (name: string, seen = new Set<string>()): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const own = api.interfaces.get(name);
    for (const base of extendsOf.get(name) ?? []) {
      const baseName = base.replace(/<.*$/, '').trim();
      resolve(baseName, seen);
      for (const [k, v] of api.interfaces.get(baseName) ?? []) if (own && !own.has(k)) own.set(k, v);
    }
  };
  for (const name of api.interfaces.keys()) resolve(name);
  return api;
}
