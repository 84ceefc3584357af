/**
 * What the fuzz makes of an error a call threw (or a promise rejected
 * with, or a callback received): the library's own (a TypeError or
 * RangeError it wrote, naming the argument; VfioError, VfioStateError,
 * NvmeError, IovaAllocatorError), or an internal one, which the fuzz counts
 * as a defect: JavaScript's own messages ("Cannot mix BigInt and other
 * types", "x is not a function", "Cannot read properties of undefined",
 * "Cannot convert ... to a BigInt", SyntaxError, "is not iterable",
 * "Maximum call stack size exceeded", typed-array constructor errors, ...),
 * Node's argument errors from inside the library (ERR_INVALID_ARG_TYPE and
 * its kin, which name an argument of Node's, not the user's), and anything
 * thrown that is not an Error.
 */

/** V8's own messages (src/common/message-template.h), the ones an unchecked argument reaches. */
const ENGINE_MESSAGES = [
  /Cannot mix BigInt and other types/,
  /is not a function/,
  /is not a constructor/,
  /Cannot read propert(y|ies) of (undefined|null)/,
  /Cannot set propert(y|ies) of (undefined|null)/,
  /Cannot (create|assign to|add|redefine|delete) (read only )?propert/,
  /Cannot convert /,
  /cannot be converted to a BigInt/,
  /is not iterable/,
  /Maximum call stack size exceeded/,
  /Maximum BigInt size exceeded/,
  /Division by zero/,
  /Invalid (typed array|array|array buffer|string) length/,
  /Array buffer allocation failed/,
  /(Start offset|offset) .* is outside the bounds of the buffer/,
  /should be a multiple of/,
  /Offset is outside the bounds of the DataView/,
  /Cannot perform .* on a detached ArrayBuffer/,
  /Reduce of empty array with no initial value/,
  /Cannot destructure/,
  /is not defined/,
  /before initialization/,
  /Class constructor .* cannot be invoked without 'new'/,
  /(Cannot read|Cannot write|Receiver must be|Cannot access) private/,
  /called on incompatible receiver/,
  /Illegal invocation/,
  /Do not know how to serialize a BigInt/,
  /is not extensible/,
  /Invalid time value/,
  /Function\.prototype\.apply was called on/,
  /Spread syntax requires/,
  /object null is not iterable/,
  /(Symbol|BigInt)\(\) is not a constructor/,
  /Cannot convert a Symbol value/,
  /Invalid atomic access index/,
  /toPrimitive/,
];

const ENGINE_ERROR_NAMES = new Set(['SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'InternalError', 'AggregateError']);

/**
 * Why `error` is internal (a defect), or undefined when it is one of the
 * library's own. `params`: the names of the called entry's parameters; a
 * Node argument error naming one of them (an EventEmitter method's
 * "listener") names the caller's argument, and is the library's answer too.
 */
export function internalReason(error: unknown, params: readonly string[] = []): string | undefined {
  if (!(error instanceof Error)) return `a non-Error was thrown: ${describeValue(error)}`;
  const name = error.name;
  if (ENGINE_ERROR_NAMES.has(name)) return `${name}: ${error.message}`;
  const code = (error as { code?: unknown }).code;
  // Node's own argument errors (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ...) from a call the library made.
  if (typeof code === 'string' && code.startsWith('ERR_') && !/^ERR_(VFIO|NVME)_/.test(code)) {
    const named = /^The "([^"]+)" argument/.exec(error.message)?.[1];
    if (named === undefined || !params.includes(named)) return `${code}: ${error.message}`;
  }
  for (const re of ENGINE_MESSAGES) if (re.test(error.message)) return `${name}: ${error.message}`;
  return undefined;
}

/** A short description of a value, for reports (no getters run, nothing large printed). */
export function describeValue(v: unknown, depth = 0): string {
  switch (typeof v) {
    case 'bigint':
      return `${v}n`;
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v);
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...(${v.length})` : v);
    case 'symbol':
      return v.toString();
    case 'function':
      return `fn ${v.name || 'anonymous'}`;
    case 'undefined':
      return 'undefined';
    case 'boolean':
      return String(v);
  }
  if (v === null) return 'null';
  const obj = v as object;
  const ctor = (Object.getPrototypeOf(obj) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'Object(null)';
  if (ArrayBuffer.isView(obj)) return `${ctor}(${(obj as unknown as { length?: number }).length ?? obj.byteLength})`;
  if (Array.isArray(obj))
    return depth > 1
      ? `Array(${obj.length})`
      : `[${obj
          .slice(0, 4)
          .map((x) => describeValue(x, depth + 1))
          .join(', ')}${obj.length > 4 ? ', ...' : ''}]`;
  if (ctor === 'Object' || ctor === 'Object(null)') {
    if (depth > 1) return '{...}';
    const keys = Object.keys(obj).slice(0, 6);
    return `{${keys.map((k) => `${k}: ${describeValue(Object.getOwnPropertyDescriptor(obj, k)?.value, depth + 1)}`).join(', ')}}`;
  }
  return ctor;
}
