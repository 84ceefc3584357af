/**
 * The guest kernels: the project's own, built from Debian's linux-source
 * package with vm/kernel/guest.config and cached by (source version,
 * fragment, build script); and Debian's stock kernel of this machine's
 * release, whose VFIO and 9p drivers are modules loaded by the initramfs.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Apt, HarnessError, PrivateApt } from './apt';
import { withLock } from './lock';
import { cacheDir, PROJECT_ROOT } from './paths';

/**
 * The guest kernels: `'custom'` (built once from Debian's linux-source with
 * iommufd, VFIO cdevs and P2P DMA: both backends) and `'debian'` (Debian's
 * stock kernel: VFIO with the type1 backend only).
 */
export type KernelKind = 'custom' | 'debian';

/** A guest kernel ready to boot. */
export interface GuestKernel {
  /** Which kernel. */
  kind: KernelKind;
  /** Package and version it came from. */
  source: string;
  /** Path of the kernel image. */
  bzImage: string;
  /** Modules for the initramfs, in load order (stock kernel only). */
  modules: string[];
  /** headers_install output of this kernel (custom kernel only). */
  headers?: string;
}

export const KERNEL_SOURCE_PACKAGE = 'linux-source-7.2';
const FRAGMENT = path.join(PROJECT_ROOT, 'vm/kernel/guest.config');
const BUILD_SCRIPT = path.join(PROJECT_ROOT, 'vm/kernel/build.sh');

/** The cache key of a custom kernel: everything its bzImage depends on. */
export function customKernelKey(input: { pkg: string; version: string; fragment: string; buildScript: string }): string {
  const h = createHash('sha256');
  for (const part of [input.pkg, input.version, input.fragment, input.buildScript]) h.update(`${part.length}:${part}`);
  return h.digest('hex').slice(0, 16);
}

export function customKernelDir(cache: string, pkg: string, version: string, key: string): string {
  return path.join(cache, 'kernel', `${pkg}_${version.replace(/[^\w.+-]/g, '_')}_${key}`);
}

/** Where the harness reports progress: one line at a time. */
export type Log = (line: string) => void;

function elapsed(start: number): string {
  const s = Math.round((Date.now() - start) / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * About how many files (make's `CC` and `AS` lines) a build of the current
 * fragment compiles: the denominator of the progress shown during the
 * compile. Measured from a build; a changed fragment makes it approximate,
 * and the shown figure then stops at 99 % until make is done.
 */
export const EXPECTED_COMPILE_UNITS = 1290;

/** What the harness shows of a compile in progress: `1234/~1900 files (64%)`. */
export function compileProgress(done: number, expected = EXPECTED_COMPILE_UNITS): string {
  const percent = Math.min(99, Math.floor((100 * done) / expected));
  return `${done}/~${expected} files (${percent}%)`;
}

/** Runs build.sh, showing each phase and, during the compile, how far it is every 15 s. */
async function runBuild(args: string[], log: Log): Promise<void> {
  const start = Date.now();
  let phase = 'start';
  let compiled = 0;
  const child = spawn('bash', [BUILD_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const onLine = (line: string): void => {
    const m = /^phase: (\S+)/.exec(line);
    if (m) {
      phase = m[1];
      log(`kernel build: ${phase} (${elapsed(start)})`);
    } else if (/^ {2}(CC|AS) /.test(line)) {
      compiled++;
    } else if (line.trim()) {
      tail.push(line);
      if (tail.length > 40) tail.shift();
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      lines.forEach(onLine);
    });
  }
  const ticker = setInterval(() => {
    log(`kernel build: ${phase}${phase === 'compile' ? ` ${compileProgress(compiled)}` : ''} (${elapsed(start)})`);
  }, 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(ticker);
  if (code !== 0) throw new HarnessError(`the guest kernel build failed in phase ${phase} after ${elapsed(start)}:\n${tail.join('\n')}`);
  log(`kernel build: compiled ${compiled} files in ${elapsed(start)}`);
}

export async function customKernel(log: Log, cache = cacheDir()): Promise<GuestKernel> {
  const pkg = process.env.NODE_VFIO_KERNEL_SOURCE ?? KERNEL_SOURCE_PACKAGE;
  const apt = new PrivateApt(path.join(cache, 'apt'));
  apt.update();
  const version = apt.candidate(pkg);
  if (!version) throw new HarnessError(`no Debian suite in ${apt.sourcesFile} offers ${pkg}`);
  const key = customKernelKey({
    pkg,
    version,
    fragment: fs.readFileSync(FRAGMENT, 'utf8'),
    buildScript: fs.readFileSync(BUILD_SCRIPT, 'utf8'),
  });
  const dir = customKernelDir(cache, pkg, version, key);
  const kernel: GuestKernel = {
    kind: 'custom',
    source: `${pkg} ${version}`,
    bzImage: path.join(dir, 'bzImage'),
    modules: [],
    headers: path.join(dir, 'headers'),
  };
  if (fs.existsSync(kernel.bzImage)) return kernel;
  return withLock(`${dir}.lock`, async () => {
    if (fs.existsSync(kernel.bzImage)) return kernel;
    log(`kernel: building ${pkg} ${version} (cache key ${key}); this takes about 10 minutes on 2 cores`);
    const deb = apt.download(pkg, version, path.join(cache, 'apt', 'debs'));
    const work = path.join(cache, 'build', key);
    try {
      await runBuild([deb, FRAGMENT, work, kernel.bzImage], log);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
      fs.rmSync(deb, { force: true });
    }
    return kernel;
  });
}

/** The modules the stock kernel needs at boot, before their dependencies are added. */
export const STOCK_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'vfio_pci', 'vfio_iommu_type1'];

const modName = (file: string): string => path.basename(file).replace(/\.ko$/, '').replace(/-/g, '_');

/** The `depends=` list in a module's .modinfo section. */
export function moduleDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  return ko
    .subarray(at + 9, end)
    .toString()
    .split(',')
    .filter(Boolean)
    .map((d) => d.replace(/-/g, '_'));
}

/** `wanted` and all they depend on, dependencies first. */
export function moduleLoadOrder(
  wanted: readonly string[],
  files: ReadonlyMap<string, string>,
  depends: (file: string) => string[],
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, from: string): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new HarnessError(`module dependency cycle at ${name}`);
    const file = files.get(name);
    if (!file) throw new HarnessError(`module ${name} (needed by ${from}) is not in the kernel package`);
    state.set(name, 'visiting');
    for (const dep of depends(file)) visit(dep, name);
    state.set(name, 'done');
    order.push(file);
  };
  for (const w of wanted) visit(w, 'the harness');
  return order;
}

export async function debianKernel(log: Log, cache = cacheDir()): Promise<GuestKernel> {
  const apt = new Apt();
  const meta = process.env.NODE_VFIO_DEBIAN_KERNEL ?? 'linux-image-amd64';
  const resolve = (): [string | undefined, string | undefined] => {
    const pkg = /^linux-image-\d/.test(meta) ? meta : apt.dependency(meta, /^linux-image-\d/);
    return [pkg, pkg && apt.candidate(pkg)];
  };
  let [pkg, version] = resolve();
  if ((!pkg || !version) && process.getuid?.() === 0) {
    log('kernel: refreshing the package lists (apt-get update)');
    execFileSync('apt-get', ['update'], { stdio: 'ignore' });
    [pkg, version] = resolve();
  }
  if (!pkg || !version) throw new HarnessError(`apt knows no ${meta}: run apt-get update`);
  const dir = path.join(cache, 'kernel', `${pkg}_${version}`);
  const done = path.join(dir, 'modules.load');
  const kernel = (): GuestKernel => ({
    kind: 'debian',
    source: `${pkg} ${version}`,
    bzImage: path.join(dir, 'bzImage'),
    modules: fs
      .readFileSync(done, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((f) => path.join(dir, 'modules', f)),
  });
  if (fs.existsSync(done)) return kernel();
  log(`kernel: unpacking ${pkg} ${version}`);
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const deb = apt.download(pkg, version, tmp);
  execFileSync('dpkg-deb', ['-x', deb, path.join(tmp, 'root')]);
  const vmlinuz = fs.readdirSync(path.join(tmp, 'root/boot')).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new HarnessError(`${pkg} has no /boot/vmlinuz-*`);
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) files.set(modName(p), p);
    }
  };
  walk(path.join(tmp, 'root/lib/modules'));
  const order = moduleLoadOrder(STOCK_MODULES, files, (f) => moduleDepends(fs.readFileSync(f)));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'modules'), { recursive: true });
  fs.copyFileSync(path.join(tmp, 'root/boot', vmlinuz), path.join(dir, 'bzImage'));
  for (const f of order) fs.copyFileSync(f, path.join(dir, 'modules', path.basename(f)));
  fs.writeFileSync(done, order.map((f) => path.basename(f)).join('\n') + '\n');
  fs.rmSync(tmp, { recursive: true, force: true });
  return kernel();
}

export function guestKernel(kind: KernelKind, log: Log): Promise<GuestKernel> {
  return kind === 'custom' ? customKernel(log) : debianKernel(log);
}
