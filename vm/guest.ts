/**
 * Boots the test guest under QEMU and runs one command in it.
 *
 * The guest's console (kernel messages) goes to console.log in the run's
 * directory; the command's output comes back on a second serial port,
 * followed by a marker with its exit status. A guest that dies, panics or
 * hangs is a failed run whose result carries the console's tail. QEMU runs
 * under `setpriv --pdeathsig KILL` and is killed when this process exits,
 * so no QEMU outlives the harness.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HarnessError } from './apt';
import { DEVICE_BDF, DeviceFiles, DeviceName, deviceArgs } from './devices';
import { buildInitramfs } from './initramfs';
import { GuestKernel, KernelKind, Log } from './kernel';
import { runsDir } from './paths';
import { prepareGuest } from './prepare';
import { Qemu, QemuChoice } from './qemu';
import { commandScript } from './shell-quote';

/** Options of {@link runInGuest}: what to run, on which kernel and devices, and how long to wait. */
export interface GuestRunOptions {
  /** The guest kernel: 'custom' (default; built with iommufd, both backends) or 'debian' (the stock kernel: type1 only). */
  kernel?: KernelKind;
  /** Which QEMU: the bundled QEMU 10 (default, or `$NODE_VFIO_QEMU`) or the system's. */
  qemu?: QemuChoice;
  /** The emulated devices to give the guest (default all: edu, ivshmem, nvme), at fixed PCI addresses ({@link DEVICE_BDF}). */
  devices?: readonly DeviceName[];
  /** argv of the command; omitted with `interactive`. */
  command?: readonly string[];
  /** Working directory in the guest; the project directory by default. */
  cwd?: string;
  /** More environment variables for the command (over the harness's own NODE_VFIO_* ones). */
  env?: Readonly<Record<string, string>>;
  /** Backing files to use instead of fresh ones (they must lie in the project directory). */
  files?: DeviceFiles;
  /** Kill the guest after this many milliseconds (default 30 minutes): a failed run. */
  timeoutMs?: number;
  /** 'tcg' (default: emulation, works anywhere) or 'kvm' (where the host's KVM works); default `$NODE_VFIO_ACCEL`. */
  accel?: 'tcg' | 'kvm';
  /** Guest memory in MiB (default 2048). */
  memoryMiB?: number;
  /** 2 MiB huge pages the guest reserves for hugetlb DMA buffers (default 64). */
  hugepages?: number;
  /** The guest's output as it comes. */
  onOutput?: (text: string) => void;
  /** Progress lines of the harness (kernel build, downloads, a second boot); default stderr. */
  log?: Log;
  /** An interactive shell on this process's terminal. */
  interactive?: boolean;
  /** Keep the run's directory (console log, generated backing files). */
  keep?: boolean;
  /** A word on QEMU's command line (nodevfio.tag=...) to find this run's process by; default $NODE_VFIO_TAG or 'run'. */
  tag?: string;
  /** More QEMU arguments, after the harness's own (e.g. `['-trace', 'enable=memory_region_ops_*', '-D', FILE]`). */
  extraQemuArgs?: readonly string[];
  /** More kernel command line words (the harness's own tests use nodevfio.failfirstboot=1). */
  append?: readonly string[];
  /** The directory the guest shares read-write at the same path (default the current directory); no white space. */
  projectDir?: string;
}

/** What {@link runInGuest} returns. */
export interface GuestRunResult {
  /** The command's exit status; null when the guest did not report one. */
  status: number | null;
  /** Why the run failed, when it did not finish normally (death, panic, time-out). */
  failure?: string;
  /** The command's output (stdout and stderr together), as the guest sent it. */
  output: string;
  /** The last 40 lines of the guest's console (kernel messages): where a panic shows. */
  consoleTail: string;
  /** The kernel the guest ran. */
  kernel: GuestKernel;
  /** The QEMU that ran it. */
  qemu: Qemu;
  /** The host paths of the device backing files: read them to see what the devices did. */
  files: DeviceFiles;
  /** The run's directory under .vm/runs (removed after a run that did not fail, unless `keep`). */
  runDir: string;
  /** Wall time of the run, boots included, in milliseconds. */
  durationMs: number;
}

/** The line the guest prints after the command, with its exit status; the harness strips it from `output`. */
export const EXIT_MARKER = /@@NODE-VFIO-EXIT (\d+)@@\r?\n?/;

const live = new Set<ChildProcess>();
let hooked = false;
function killAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of live) c.kill('SIGKILL');
      process.kill(process.pid, sig);
    });
  }
}

/** The last `n` lines of a file, or a note that there is none. */
export function tailOf(file: string, n = 40): string {
  if (!fs.existsSync(file)) return '(no console output)';
  const lines = fs.readFileSync(file, 'utf8').replace(/\r/g, '').split('\n');
  return lines.slice(-n).join('\n');
}

export function qemuArgs(o: {
  kernel: GuestKernel;
  dataDir?: string;
  initrd: string;
  runDir: string;
  projectDir: string;
  devices: readonly DeviceName[];
  tag?: string;
  append?: readonly string[];
  files: DeviceFiles;
  accel: 'tcg' | 'kvm';
  memoryMiB: number;
  hugepages: number;
  interactive: boolean;
}): string[] {
  const cmdline = [
    // no_timer_check: under TCG on a loaded host the IO-APIC timer check can fail and panic the boot.
    'console=ttyS0',
    'intel_iommu=on',
    'iommu=strict',
    'quiet',
    'panic=-1',
    'oops=panic',
    'no_timer_check',
    `nodevfio.project=${o.projectDir}`,
    `nodevfio.run=${o.runDir}`,
    `nodevfio.bind=${o.devices.map((d) => DEVICE_BDF[d]).join(',')}`,
    `nodevfio.hugepages=${o.hugepages}`,
    `nodevfio.mode=${o.interactive ? 'shell' : 'run'}`,
    `nodevfio.tag=${o.tag ?? 'run'}`,
    ...(o.append ?? []),
  ];
  const machine = o.accel === 'kvm' ? 'q35,accel=kvm,kernel-irqchip=split' : 'q35,accel=tcg';
  return [
    // One vCPU: under TCG on a loaded 2-core host, a second vCPU's timers can starve (RCU stalls, a hung guest).
    '-machine',
    machine,
    '-cpu',
    'max',
    '-smp',
    '1',
    '-m',
    String(o.memoryMiB),
    ...(o.dataDir ? ['-L', o.dataDir] : []),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-device',
    'intel-iommu,intremap=on',
    '-kernel',
    o.kernel.bzImage,
    '-initrd',
    o.initrd,
    '-append',
    cmdline.join(' '),
    '-chardev',
    `file,id=console,path=${path.join(o.runDir, 'console.log')}`,
    '-serial',
    'chardev:console',
    '-chardev',
    'stdio,id=command,signal=off',
    '-serial',
    'chardev:command',
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${o.projectDir},mount_tag=project,security_model=none,multidevs=remap`,
    ...deviceArgs(o.devices, o.runDir, o.files),
  ];
}

/**
 * Boots the test guest (QEMU with a vIOMMU and the chosen devices bound to
 * vfio-pci), runs `options.command` there as root in the project directory
 * with the host's Node, and shuts the guest down. The first run prepares the
 * host (packages, kernel build, QEMU: {@link prepareGuest}); a guest that
 * dies before the command starts is booted once more. No QEMU outlives the
 * call.
 *
 * @returns The command's status and output, or `failure` with the reason
 *   (panic, death, time-out) and the console's tail; the device files' paths.
 * @throws RangeError without a command; {@link HarnessError} when the host
 *   cannot be prepared (not root and packages missing, a project path with
 *   white space, backing files outside the project).
 */
export async function runInGuest(options: GuestRunOptions): Promise<GuestRunResult> {
  const started = Date.now();
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const projectDir = path.resolve(options.projectDir ?? process.cwd());
  if (/\s/.test(projectDir))
    throw new HarnessError(`the project path has white space, which the guest's kernel command line cannot carry: ${projectDir}`);
  const interactive = options.interactive ?? false;
  if (!interactive && !options.command?.length) throw new RangeError('runInGuest: no command given');
  const devices = options.devices ?? ['edu', 'ivshmem', 'nvme'];
  const { kernel, qemu } = await prepareGuest({ kernel: options.kernel, qemu: options.qemu, log });

  fs.mkdirSync(runsDir(projectDir), { recursive: true });
  const runDir = fs.mkdtempSync(path.join(runsDir(projectDir), 'run-'));
  const files: DeviceFiles = { ...options.files };
  for (const f of Object.values(files)) {
    if (f && !path.resolve(f).startsWith(projectDir + path.sep)) {
      throw new HarnessError(`device backing file ${f} must lie inside the project directory, which the guest shares`);
    }
  }
  const initrd = path.join(runDir, 'initramfs.cpio');
  buildInitramfs(initrd, kernel.modules);
  const args = qemuArgs({
    kernel,
    dataDir: qemu.dataDir,
    initrd,
    runDir,
    projectDir,
    devices,
    files,
    interactive,
    tag: options.tag ?? process.env.NODE_VFIO_TAG ?? 'run',
    append: options.append,
    accel: options.accel ?? (process.env.NODE_VFIO_ACCEL === 'kvm' ? 'kvm' : 'tcg'),
    memoryMiB: options.memoryMiB ?? 2048,
    hugepages: options.hugepages ?? 64,
  });
  if (options.extraQemuArgs) args.push(...options.extraQemuArgs);
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    ...(interactive || process.stdout.isTTY ? { TERM: process.env.TERM ?? 'xterm' } : { TERM: 'dumb', NO_COLOR: '1' }),
    NODE_VFIO_GUEST: '1',
    NODE_VFIO_KERNEL: kernel.kind,
    NODE_VFIO_QEMU_VERSION: qemu.version,
    NODE_VFIO_DEVICES: devices.map((d) => `${d}=${DEVICE_BDF[d]}`).join(','),
    ...(files.ivshmem ? { NODE_VFIO_IVSHMEM_FILE: files.ivshmem } : {}),
    ...(files.nvmeImage ? { NODE_VFIO_NVME_IMAGE: files.nvmeImage } : {}),
    ...options.env,
  };
  fs.writeFileSync(path.join(runDir, 'cmd.sh'), commandScript(options.command ?? ['true'], options.cwd ?? projectDir, env));

  killAllOnExit();
  const attempt = (): Promise<Boot> => boot(qemu.binary, args, runDir, interactive, options);
  let result = await attempt();
  if (result.failure && !result.commandStarted && !interactive) {
    // Under a loaded host a TCG guest can die in early boot (its timer checks race the
    // emulation). That is not the command's doing: boot once more, and say so.
    log(`the guest died before the command started; booting again (first attempt: ${result.failure.split('\n')[0]})`);
    result = await attempt();
  }
  const { status, failure, output, consoleTail } = result;
  if (!options.keep && !failure) fs.rmSync(runDir, { recursive: true, force: true });
  return { status, failure, output, consoleTail, kernel, qemu, files, runDir, durationMs: Date.now() - started };
}

interface Boot {
  status: number | null;
  failure?: string;
  output: string;
  consoleTail: string;
  /** Whether /init got as far as starting the command (it says so on the console). */
  commandStarted: boolean;
}

export const COMMAND_STARTED = 'node-vfio: starting the command';

/** One boot of QEMU: the command's output and status, or why the guest died. */
async function boot(binary: string, args: string[], runDir: string, interactive: boolean, options: GuestRunOptions): Promise<Boot> {
  const qemu = spawn('setpriv', ['--pdeathsig', 'KILL', '--', binary, ...args], {
    stdio: interactive ? 'inherit' : ['pipe', 'pipe', 'pipe'],
  });
  live.add(qemu);
  let output = '';
  let pending = '';
  let status: number | null = null;
  let qemuStderr = '';
  let failure: string | undefined;
  const emit = (text: string): void => {
    output += text;
    options.onOutput?.(text);
  };
  qemu.stdout?.setEncoding('utf8');
  qemu.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    const m = EXIT_MARKER.exec(pending);
    if (m) {
      status = Number(m[1]);
      emit(pending.slice(0, m.index));
      pending = '';
      return;
    }
    const cut = pending.lastIndexOf('\n') + 1; // hold back a partial line: it may be the marker's start
    if (cut > 0) {
      emit(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
  });
  qemu.stderr?.setEncoding('utf8');
  qemu.stderr?.on('data', (chunk: string) => {
    qemuStderr = (qemuStderr + chunk).slice(-20000);
  });
  const timeoutMs = options.timeoutMs ?? 30 * 60_000;
  const timer = setTimeout(() => {
    failure = `the guest did not finish within ${Math.round(timeoutMs / 1000)} s and was killed`;
    qemu.kill('SIGKILL');
  }, timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    qemu.on('close', (c, s) => resolve([c, s]));
    qemu.on('error', (e) => {
      failure = `cannot start QEMU: ${e.message}`;
      resolve([null, null]);
    });
  });
  clearTimeout(timer);
  live.delete(qemu);
  if (pending) emit(pending);
  if (interactive && !failure) status = code; // the terminal had the output, marker included
  fs.writeFileSync(path.join(runDir, 'qemu-stderr.log'), qemuStderr);
  const consoleFile = path.join(runDir, 'console.log');
  const consoleTail = tailOf(consoleFile);
  const commandStarted = fs.existsSync(consoleFile) && fs.readFileSync(consoleFile, 'utf8').includes(COMMAND_STARTED);
  if (status === null && !failure) {
    const how = signal ? `QEMU was killed by ${signal}` : `QEMU exited with status ${code}`;
    const panic = /Kernel panic[^\n]*/.exec(consoleTail)?.[0];
    failure = `the guest died before the command finished (${how}${panic ? `; ${panic.trim()}` : ''})`;
  }
  if (failure) {
    const stderrTail = qemuStderr.trim().split('\n').slice(-15).join('\n');
    failure += `\n--- QEMU stderr (tail) ---\n${stderrTail || '(empty)'}\n--- guest console (tail) ---\n${consoleTail}`;
  }
  return { status, failure, output, consoleTail, commandStarted };
}
