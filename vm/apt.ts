/**
 * Debian packages the harness needs: the system's own (QEMU, busybox, the
 * kernel build tools) installed with apt-get, and packages from newer Debian
 * suites (the guest kernel's source) fetched through a private apt
 * configuration that never touches the system's sources or state.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The harness could not prepare or run a guest for a reason a person must
 * fix (packages missing and not root, a project path with white space, ...):
 * the message says what to do.
 */
export class HarnessError extends Error {
  /** 'HarnessError'. */
  override name = 'HarnessError';
}

/** Packages the guest harness needs on the host, by what they provide. */
export const HOST_PACKAGES = [
  'qemu-system-x86', // qemu-system-x86_64
  'busybox-static', // the guest's /init userland
  'bc',
  'flex',
  'bison',
  'libelf-dev',
  'libssl-dev',
  'xz-utils',
  'cpio',
  'rsync', // kernel build (rsync: headers_install)
];

export function isInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

/** Installs the missing ones when root; otherwise says exactly what to run. */
export function ensurePackages(pkgs: readonly string[], log: (line: string) => void): void {
  const missing = pkgs.filter((p) => !isInstalled(p));
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    throw new HarnessError(`the guest harness needs Debian packages that are missing: ${missing.join(', ')}.\nRun as root:\n  ${command}`);
  }
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update'], ['install', '-y', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new HarnessError(`apt-get ${args.join(' ')} failed:\n${r.stdout.slice(-2000)}${r.stderr.slice(-2000)}`);
  }
}

/** The URI of the system's configured Debian mirror, reused for the newer suites. */
export function systemMirror(sourcesText: string): string | undefined {
  const deb822 = /^URIs:\s*(\S+)/m.exec(sourcesText);
  const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s+main/m.exec(sourcesText);
  const uri = deb822?.[1] ?? oneLine?.[1];
  return uri?.replace(/\/+$/, '');
}

function readSystemSources(): string {
  const files = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (fs.existsSync(dir))
    files.push(
      ...fs
        .readdirSync(dir)
        .sort()
        .map((f) => path.join(dir, f)),
    );
  // Only Debian's own archive (not security, nor third parties) is of use here.
  return files
    .filter((f) => fs.existsSync(f))
    .map((f) => fs.readFileSync(f, 'utf8'))
    .join('\n')
    .split(/\n\s*\n/)
    .filter((stanza) => /\/debian\/?(\s|$)/m.test(stanza) && !/security/.test(stanza))
    .join('\n\n');
}

/** apt-get and apt-cache with a given configuration (none: the system's own). */
export class Apt {
  constructor(protected readonly options: readonly string[] = ['-o', 'APT::Sandbox::User=root']) {}

  candidate(pkg: string): string | undefined {
    const out = execFileSync('apt-cache', [...this.options, 'policy', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const v = /Candidate:\s*(\S+)/.exec(out)?.[1];
    return v && v !== '(none)' ? v : undefined;
  }

  /** The first package `pkg` depends on whose name matches `pattern` (a meta-package's target). */
  dependency(pkg: string, pattern: RegExp): string | undefined {
    let out: string;
    try {
      out = execFileSync('apt-cache', [...this.options, 'depends', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return undefined; // apt does not know the package (yet)
    }
    return [...out.matchAll(/Depends:\s*(\S+)/g)].map((m) => m[1]).find((d) => pattern.test(d));
  }

  /** Downloads `pkg` (at `version`, else the candidate) into `destDir`; returns the .deb's path. */
  download(pkg: string, version: string | undefined, destDir: string): string {
    fs.mkdirSync(destDir, { recursive: true });
    const spec = version ? `${pkg}=${version}` : pkg;
    const r = spawnSync('apt-get', [...this.options, 'download', spec], { cwd: destDir, encoding: 'utf8' });
    if (r.status !== 0) throw new HarnessError(`apt-get download ${spec} failed:\n${r.stderr.slice(-2000)}`);
    const deb = fs.readdirSync(destDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) throw new HarnessError(`apt-get download ${spec} left no .deb in ${destDir}`);
    return path.join(destDir, deb);
  }
}

/** An apt configuration of its own, under `dir`, for suites newer than the system's. */
export class PrivateApt extends Apt {
  readonly sourcesFile: string;
  readonly listsDir: string;

  constructor(
    readonly dir: string,
    readonly suites: readonly string[] = ['sid', 'trixie-backports', 'trixie'],
  ) {
    const sourcesFile = path.join(dir, 'sources.list');
    const listsDir = path.join(dir, 'lists');
    super([
      '-o',
      `Dir::Etc::SourceList=${sourcesFile}`,
      '-o',
      'Dir::Etc::SourceParts=/dev/null',
      '-o',
      `Dir::State::Lists=${listsDir}`,
      '-o',
      `Dir::Cache=${path.join(dir, 'cache')}`,
      '-o',
      'APT::Sandbox::User=root',
    ]);
    this.sourcesFile = sourcesFile;
    this.listsDir = listsDir;
  }

  /** Writes the sources list and refreshes the package lists when older than `maxAgeMs`. */
  update(maxAgeMs = 24 * 3600 * 1000): void {
    const mirror = systemMirror(readSystemSources());
    if (!mirror) throw new HarnessError('no Debian mirror found in /etc/apt/sources.list{,.d}: cannot fetch the guest kernel source');
    const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
    const text = this.suites.map((s) => `deb [signed-by=${keyring}] ${mirror} ${s} main\n`).join('');
    fs.mkdirSync(path.join(this.listsDir, 'partial'), { recursive: true });
    fs.mkdirSync(path.join(this.dir, 'cache', 'archives', 'partial'), { recursive: true });
    const stamp = path.join(this.dir, 'updated');
    const fresh =
      fs.existsSync(stamp) &&
      fs.existsSync(this.sourcesFile) &&
      fs.readFileSync(this.sourcesFile, 'utf8') === text &&
      Date.now() - fs.statSync(stamp).mtimeMs < maxAgeMs;
    if (fresh) return;
    fs.writeFileSync(this.sourcesFile, text);
    const r = spawnSync('apt-get', [...this.options, 'update'], { encoding: 'utf8' });
    if (r.status !== 0) throw new HarnessError(`apt-get update (private lists in ${this.dir}) failed:\n${r.stderr.slice(-2000)}`);
    fs.writeFileSync(stamp, new Date().toISOString());
  }
}
