/**
 * What a command works on: the host's paths (each a parameter, so every
 * command can run on a fake tree), its output streams, and the one function
 * that writes to sysfs (a test gives one that plays the kernel).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Where the host's kernel interfaces are; the system's, or a test tree's. */
export interface HostPaths {
  /** sysfs, normally /sys. */
  sys: string;
  /** Device nodes, normally /dev. */
  dev: string;
  /** procfs, normally /proc (self/limits, meminfo, cmdline, config.gz...). */
  proc: string;
  /** Where kernel configs lie (config-RELEASE), normally /boot. */
  boot: string;
  /** Where `bind` remembers each device's previous driver, normally /run/node-vfio. */
  state: string;
}

/** The real host's paths. */
export const SYSTEM_PATHS: Readonly<HostPaths> = { sys: '/sys', dev: '/dev', proc: '/proc', boot: '/boot', state: '/run/node-vfio' };

/** The environment variables that move each path (for tests on a fake tree). */
export const PATH_VARIABLES: Readonly<Record<keyof HostPaths, string>> = {
  sys: 'NODE_VFIO_SYSFS_ROOT',
  dev: 'NODE_VFIO_DEV_ROOT',
  proc: 'NODE_VFIO_PROC_ROOT',
  boot: 'NODE_VFIO_BOOT_ROOT',
  state: 'NODE_VFIO_STATE_DIR',
};

/** The paths, each from its variable in `env` when set, else the system's. */
export function hostPaths(env: NodeJS.ProcessEnv): HostPaths {
  const out = { ...SYSTEM_PATHS };
  for (const key of Object.keys(PATH_VARIABLES) as (keyof HostPaths)[]) {
    const v = env[PATH_VARIABLES[key]];
    if (v) out[key] = path.resolve(v);
  }
  return out;
}

/** Whether sysfs and /dev are the system's: only then does the library (which opens /dev itself) see the same devices. */
export function isSystemHost(paths: HostPaths): boolean {
  return paths.sys === SYSTEM_PATHS.sys && paths.dev === SYSTEM_PATHS.dev;
}

/** A command's surroundings. */
export interface CliContext {
  paths: HostPaths;
  env: NodeJS.ProcessEnv;
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
  /** Writes `value` to the sysfs attribute `file` in one write(2), as `echo value > file` does. */
  writeSysfs(file: string, value: string): void;
}

/** The context of the running process: its environment, stdout, stderr and the real sysfs. */
export function processContext(): CliContext {
  return {
    paths: hostPaths(process.env),
    env: process.env,
    out: (text) => {
      process.stdout.write(text);
    },
    err: (text) => {
      process.stderr.write(text);
    },
    // O_WRONLY alone: sysfs refuses to open a write-only attribute for reading, and nothing is created.
    writeSysfs: writeAttribute,
  };
}

/** One write(2) of `value` to an existing file opened O_WRONLY. */
function writeAttribute(file: string, value: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY);
  try {
    fs.writeSync(fd, value);
  } finally {
    fs.closeSync(fd);
  }
}
