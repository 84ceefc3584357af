/** Where the harness keeps its files. */
import * as os from 'node:os';
import * as path from 'node:path';

/** The package root (this file is compiled to dist/vm/paths.js). */
export const PROJECT_ROOT = path.resolve(__dirname, '../..');

/** The machine-wide cache of kernels and package lists: survives clones. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NODE_VFIO_CACHE) return path.resolve(env.NODE_VFIO_CACHE);
  const base = env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(base, 'node-vfio');
}

/** Per-run files (the guest's command, device backing files): inside the project, shared with the guest. */
export function runsDir(projectDir: string): string {
  return path.join(projectDir, '.vm', 'runs');
}
