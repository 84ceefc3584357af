/**
 * Builds the host lane's native parts with the system's C++ compiler: the
 * fake kernel (an LD_PRELOAD shared library) and the C loop. Both are C++17
 * because they include the project's own uAPI headers (native/uapi), which
 * are C++; each is rebuilt only when a source or header is newer.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../vm/paths';

const HERE = path.join(PROJECT_ROOT, 'bench', 'host');
const UAPI = path.join(PROJECT_ROOT, 'native', 'uapi');
/** Where the builds go (ignored by git). */
export const BUILD_DIR = path.join(HERE, 'build');

const COMMON = ['-std=c++17', '-O2', '-Wall', '-Wextra', '-U_FORTIFY_SOURCE'];

function mtime(file: string): number {
  return fs.statSync(file).mtimeMs;
}

function build(output: string, source: string, args: string[], log: (line: string) => void): string {
  const out = path.join(BUILD_DIR, output);
  const src = path.join(HERE, source);
  const headers = fs
    .readdirSync(HERE)
    .filter((f) => f.endsWith('.h'))
    .map((f) => path.join(HERE, f));
  const inputs = [src, ...headers, ...fs.readdirSync(UAPI).map((f) => path.join(UAPI, f))];
  if (fs.existsSync(out) && inputs.every((f) => mtime(f) <= mtime(out))) return out;
  log(`bench:host: c++ ${path.relative(PROJECT_ROOT, src)}`);
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('c++', [...COMMON, ...args, '-o', tmp, src, '-ldl', '-lpthread'], { stdio: ['ignore', 'inherit', 'inherit'] });
  fs.renameSync(tmp, out); // whole or not at all: a concurrent build never sees half a file
  return out;
}

/** The LD_PRELOAD library: bench/host/build/fake-kernel.so. */
export function buildFakeKernel(log: (line: string) => void = () => {}): string {
  return build('fake-kernel.so', 'fake-kernel.cc', ['-shared', '-fPIC'], log);
}

/**
 * Where node_api.h is: beside the running Node (its include/node), as
 * node-gyp finds it for a Node installed under /usr.
 */
function nodeIncludeDir(): string {
  const dir = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(dir, 'node_api.h')))
    throw new Error(
      `bench:host: no node_api.h in ${dir}: the same-process C side needs Node's headers (Debian: the nodejs package's /usr/include/node)`,
    );
  return dir;
}

/** The C side inside the library's process (an addon): bench/host/build/c-same-process.node. */
export function buildSameProcessC(log: (line: string) => void = () => {}): string {
  return build('c-same-process.node', 'c-same-process.cc', ['-shared', '-fPIC', '-I', nodeIncludeDir()], log);
}

/** The C side of the instruction counts: bench/host/build/c-count. */
export function buildCCount(log: (line: string) => void = () => {}): string {
  return build('c-count', 'c-count.cc', [], log);
}

/** The C side: bench/host/build/c-loop. */
export function buildCLoop(log: (line: string) => void = () => {}): string {
  return build('c-loop', 'c-loop.cc', [], log);
}
