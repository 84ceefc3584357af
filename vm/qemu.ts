/**
 * Which QEMU boots the guest: by default a newer one (QEMU 10 from Debian's
 * backports suite of this release), downloaded and unpacked into the cache
 * through a private apt configuration, never installed; or the system's own
 * `qemu-system-x86_64` (`qemu: 'system'`).
 *
 * The bundled QEMU runs from its unpacked tree with `-L` pointing at its
 * firmware directory; its shared libraries are the system's (the system QEMU
 * package brings them, and SeaBIOS, in).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HarnessError, PrivateApt } from './apt';
import { withLock } from './lock';
import { cacheDir } from './paths';

/** `bundled`: QEMU from the release's backports suite, unpacked into the cache; `system`: the installed one. */
export type QemuChoice = 'bundled' | 'system';

/** A QEMU binary the harness can start. */
/** A QEMU to boot the guest with. */
export interface Qemu {
  /** Bundled (unpacked into the cache) or the system's. */
  choice: QemuChoice;
  /** Path of qemu-system-x86_64. */
  binary: string;
  /** Firmware directory passed with `-L` (bundled only). */
  dataDir?: string;
  /** What `--version` says, e.g. '10.0.2'. */
  version: string;
}

/** The Debian packages that make up the bundled QEMU. */
export const BUNDLED_QEMU_PACKAGES = ['qemu-system-x86', 'qemu-system-common', 'qemu-system-data'];

/** This release's codename from os-release text ('bookworm'); undefined when it names none. */
export function releaseCodename(osRelease: string): string | undefined {
  return /^VERSION_CODENAME=["']?([a-z]+)/m.exec(osRelease)?.[1];
}

/** The choice from an option or `$NODE_VFIO_QEMU`; RangeError for anything else. */
export function qemuChoice(value: string | undefined = process.env.NODE_VFIO_QEMU): QemuChoice {
  if (value === undefined || value === '' || value === 'bundled') return 'bundled';
  if (value === 'system') return 'system';
  throw new RangeError(`qemu must be 'bundled' or 'system', not '${value}'`);
}

function versionOf(binary: string, env?: NodeJS.ProcessEnv): string {
  let out: string;
  try {
    out = execFileSync(binary, ['--version'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new HarnessError(`${binary} --version failed: ${(err as Error).message.split('\n')[0]}`);
  }
  const v = /version (\d+\.\d+\.\d+)/.exec(out)?.[1];
  if (!v) throw new HarnessError(`cannot read the version of ${binary}: ${out.trim()}`);
  return v;
}

/** The system's qemu-system-x86_64, found on PATH. */
export function systemQemu(): Qemu {
  return { choice: 'system', binary: 'qemu-system-x86_64', version: versionOf('qemu-system-x86_64') };
}

/**
 * The bundled QEMU: unpacked once per package version into
 * `<cache>/qemu/<version>/`, from `<codename>-backports`.
 */
export async function bundledQemu(log: (line: string) => void, cache = cacheDir()): Promise<Qemu> {
  const codename = releaseCodename(fs.existsSync('/etc/os-release') ? fs.readFileSync('/etc/os-release', 'utf8') : '');
  if (!codename) throw new HarnessError('cannot tell this Debian release from /etc/os-release: use the system QEMU (--qemu system)');
  const apt = new PrivateApt(path.join(cache, 'apt-qemu'), [`${codename}-backports`]);
  apt.update();
  const [main] = BUNDLED_QEMU_PACKAGES;
  const version = apt.candidate(main);
  if (!version) throw new HarnessError(`${codename}-backports offers no ${main}: use the system QEMU (--qemu system)`);
  const dir = path.join(cache, 'qemu', version.replace(/[^\w.+-]/g, '_'));
  const root = path.join(dir, 'root');
  const qemu = (): Qemu => {
    const binary = path.join(root, 'usr/bin/qemu-system-x86_64');
    return { choice: 'bundled', binary, dataDir: path.join(root, 'usr/share/qemu'), version: versionOf(binary) };
  };
  if (fs.existsSync(path.join(dir, 'done'))) return qemu();
  return withLock(`${dir}.lock`, async () => {
    if (!fs.existsSync(path.join(dir, 'done'))) unpack(apt, version, dir, log);
    return qemu();
  });
}

/** Downloads the bundled QEMU's packages and unpacks them into `dir`. */
function unpack(apt: PrivateApt, version: string, dir: string, log: (line: string) => void): void {
  log(`qemu: unpacking QEMU ${version} into ${dir}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const pkg of BUNDLED_QEMU_PACKAGES) {
    const deb = apt.download(pkg, version, path.join(tmp, 'debs'));
    execFileSync('dpkg-deb', ['-x', deb, path.join(tmp, 'root')]);
    fs.rmSync(deb);
  }
  const missing = execFileSync('ldd', [path.join(tmp, 'root/usr/bin/qemu-system-x86_64')], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('not found'))
    .map((l) => l.trim().split(/\s/)[0]);
  if (missing.length > 0) {
    throw new HarnessError(`QEMU ${version} needs shared libraries this system lacks: ${missing.join(', ')} (use --qemu system)`);
  }
  fs.rmSync(path.join(tmp, 'debs'), { recursive: true, force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  fs.writeFileSync(path.join(dir, 'done'), `${version}\n`);
}

/** The QEMU of `choice` (default: `$NODE_VFIO_QEMU`, else bundled). */
export async function findQemu(choice: QemuChoice, log: (line: string) => void, cache = cacheDir()): Promise<Qemu> {
  return choice === 'system' ? systemQemu() : bundledQemu(log, cache);
}
