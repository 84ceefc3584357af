/**
 * A fake host for the CLI's tests: a sysfs tree with the links and files the
 * kernel makes for PCI devices, drivers and IOMMU groups, /dev nodes, procfs
 * files, and a sysfs writer that plays the kernel (driver_override, unbind,
 * bind, drivers_probe take effect as they would).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CliContext, HostPaths, PATH_VARIABLES } from '../../cli/context';
import { runCli } from '../../cli/run';

/** A fake PCI device. */
export interface FakeDevice {
  vendor: number;
  device: number;
  classCode: number;
  driver?: string;
  group?: number;
  /** Header type byte (config offset 0x0e); no config file when undefined. */
  headerType?: number;
  resetMethods?: string;
  numaNode?: number;
}

/** One write the fake kernel received. */
export interface KernelWrite {
  path: string;
  value: string;
}

const RESOURCES =
  '0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n0x0000000000000000 0x0000000000000000 0x0000000000000000\n' +
  '0x0000000800000000 0x00000008000fffff 0x000000000014220c\n';

function errnoError(code: string, errno: number, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${file}'`), { code, errno, syscall, path: file });
}

/** A fake host under a temporary directory. */
export class FakeHost {
  readonly root: string;
  readonly paths: HostPaths;
  /** Every sysfs write, in order. */
  readonly writes: KernelWrite[] = [];
  /** Which driver claims which vendor:device when probed without driver_override (its id table). */
  readonly idTables = new Map<string, string>();
  /** Whether vfio-pci makes VFIO cdevs (a kernel with CONFIG_VFIO_DEVICE_CDEV). */
  cdevs = true;
  private nextCdev = 0;

  constructor() {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-vfio-cli-'));
    fs.chmodSync(this.root, 0o755); // other users (the tests' uid 65534) may look in
    const p = (d: string): string => path.join(this.root, d);
    this.paths = { sys: p('sys'), dev: p('dev'), proc: p('proc'), boot: p('boot'), state: p('run/node-vfio') };
    for (const d of [
      'sys/bus/pci/devices',
      'sys/bus/pci/drivers',
      'sys/kernel/iommu_groups',
      'sys/class/iommu',
      'dev/vfio',
      'proc/self',
      'proc/sys/kernel',
      'boot',
    ]) {
      fs.mkdirSync(p(d), { recursive: true });
    }
    fs.writeFileSync(path.join(this.paths.sys, 'bus/pci/drivers_probe'), '', { mode: 0o200 });
  }

  /** Removes the tree. */
  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private devDir(bdf: string): string {
    return path.join(this.paths.sys, 'devices/pci0000:00', bdf);
  }

  /** A driver's directory with its bind and unbind attributes. */
  driver(name: string): this {
    const dir = path.join(this.paths.sys, 'bus/pci/drivers', name);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of ['bind', 'unbind', 'new_id'])
      if (!fs.existsSync(path.join(dir, f))) fs.writeFileSync(path.join(dir, f), '', { mode: 0o200 });
    return this;
  }

  /** A registered IOMMU unit (/sys/class/iommu/NAME). */
  iommuUnit(name: string): this {
    fs.mkdirSync(path.join(this.paths.sys, 'class/iommu', name), { recursive: true });
    return this;
  }

  /** A PCI device, linked from bus/pci/devices, its driver and its IOMMU group as the kernel links them. */
  device(bdf: string, d: FakeDevice): this {
    const dir = this.devDir(bdf);
    fs.mkdirSync(dir, { recursive: true });
    const hex = (v: number, w: number): string => `0x${v.toString(16).padStart(w, '0')}\n`;
    fs.writeFileSync(path.join(dir, 'vendor'), hex(d.vendor, 4));
    fs.writeFileSync(path.join(dir, 'device'), hex(d.device, 4));
    fs.writeFileSync(path.join(dir, 'class'), hex(d.classCode, 6));
    fs.writeFileSync(path.join(dir, 'resource'), RESOURCES);
    fs.writeFileSync(path.join(dir, 'driver_override'), '(null)\n', { mode: 0o644 });
    fs.writeFileSync(path.join(dir, 'numa_node'), `${d.numaNode ?? -1}\n`);
    if (d.resetMethods !== undefined) fs.writeFileSync(path.join(dir, 'reset_method'), `${d.resetMethods}\n`);
    if (d.headerType !== undefined) {
      const config = Buffer.alloc(64);
      config[0x0e] = d.headerType;
      fs.writeFileSync(path.join(dir, 'config'), config);
    }
    fs.symlinkSync(`../../../devices/pci0000:00/${bdf}`, path.join(this.paths.sys, 'bus/pci/devices', bdf));
    if (d.group !== undefined) {
      const g = path.join(this.paths.sys, 'kernel/iommu_groups', String(d.group));
      fs.mkdirSync(path.join(g, 'devices'), { recursive: true });
      fs.symlinkSync(`../../../kernel/iommu_groups/${d.group}`, path.join(dir, 'iommu_group'));
      fs.symlinkSync(`../../../../devices/pci0000:00/${bdf}`, path.join(g, 'devices', bdf));
    }
    if (d.driver) this.attach(bdf, d.driver);
    return this;
  }

  /** A file under the fake /dev (a device node stands in as a file), with a mode. */
  node(rel: string, mode = 0o600): this {
    const file = path.join(this.paths.dev, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
    fs.chmodSync(file, mode);
    return this;
  }

  /** A file under the fake /proc. */
  proc(rel: string, text: string | Buffer): this {
    const file = path.join(this.paths.proc, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return this;
  }

  /** The driver bound to `bdf` now, from its `driver` link. */
  driverOf(bdf: string): string | undefined {
    try {
      return path.basename(fs.readlinkSync(path.join(this.devDir(bdf), 'driver')));
    } catch {
      return undefined;
    }
  }

  private groupOf(bdf: string): string | undefined {
    try {
      return path.basename(fs.readlinkSync(path.join(this.devDir(bdf), 'iommu_group')));
    } catch {
      return undefined;
    }
  }

  /** Binds as the kernel does: the driver link, and for vfio-pci the cdev in sysfs and the nodes devtmpfs makes. */
  private attach(bdf: string, driver: string): void {
    this.driver(driver);
    const dir = this.devDir(bdf);
    fs.symlinkSync(`../../../bus/pci/drivers/${driver}`, path.join(dir, 'driver'));
    if (driver !== 'vfio-pci') return;
    if (this.cdevs) {
      const cdev = `vfio${this.nextCdev++}`;
      fs.mkdirSync(path.join(dir, 'vfio-dev', cdev), { recursive: true });
      fs.writeFileSync(path.join(dir, 'vfio-dev', cdev, 'dev'), '511:0\n');
      this.node(`vfio/devices/${cdev}`);
    }
    const group = this.groupOf(bdf);
    if (group !== undefined) this.node(`vfio/${group}`);
  }

  private detach(bdf: string): void {
    const dir = this.devDir(bdf);
    if (this.driverOf(bdf) === 'vfio-pci') {
      const vfioDev = path.join(dir, 'vfio-dev');
      for (const cdev of fs.existsSync(vfioDev) ? fs.readdirSync(vfioDev) : [])
        fs.rmSync(path.join(this.paths.dev, 'vfio/devices', cdev), { force: true });
      fs.rmSync(vfioDev, { recursive: true, force: true });
      const group = this.groupOf(bdf);
      if (group !== undefined) fs.rmSync(path.join(this.paths.dev, 'vfio', group), { force: true });
    }
    fs.rmSync(path.join(dir, 'driver'));
  }

  private override(bdf: string): string | undefined {
    const v = fs.readFileSync(path.join(this.devDir(bdf), 'driver_override'), 'utf8').trim();
    return v === '(null)' ? undefined : v;
  }

  /** The driver that would take `bdf` on a probe: driver_override alone when set, else an id table. */
  private matching(bdf: string): string | undefined {
    const o = this.override(bdf);
    if (o !== undefined) return o;
    const id = ['vendor', 'device']
      .map((f) =>
        fs
          .readFileSync(path.join(this.devDir(bdf), f), 'utf8')
          .trim()
          .slice(2),
      )
      .join(':');
    return this.idTables.get(id);
  }

  /** The sysfs writer: makes the write (the attribute must exist) and then what the kernel would do. */
  readonly writeSysfs = (file: string, value: string): void => {
    if (!fs.existsSync(file)) throw errnoError('ENOENT', -2, 'open', file);
    this.writes.push({ path: file, value });
    const bdf = value.trim();
    const rel = path.relative(this.paths.sys, file);
    const attr = /^bus\/pci\/devices\/([^/]+)\/driver_override$/.exec(rel);
    if (attr) {
      fs.writeFileSync(file, bdf === '' ? '(null)\n' : `${bdf}\n`);
      return;
    }
    const driverAttr = /^bus\/pci\/drivers\/([^/]+)\/(bind|unbind)$/.exec(rel);
    if (driverAttr) {
      const [, driver, op] = driverAttr;
      if (op === 'unbind') {
        if (this.driverOf(bdf) !== driver) throw errnoError('ENODEV', -19, 'write', file);
        this.detach(bdf);
      } else {
        if (this.driverOf(bdf) !== undefined) throw errnoError('EBUSY', -16, 'write', file);
        if (this.matching(bdf) !== driver) throw errnoError('ENODEV', -19, 'write', file);
        this.attach(bdf, driver);
      }
      return;
    }
    if (rel === 'bus/pci/drivers_probe') {
      const driver = this.matching(bdf);
      if (this.driverOf(bdf) === undefined && driver !== undefined && fs.existsSync(path.join(this.paths.sys, 'bus/pci/drivers', driver)))
        this.attach(bdf, driver);
    }
  };

  /** A context for runCli on this tree, capturing the output. */
  context(): CliContext & { stdout: string; stderr: string } {
    const ctx = {
      paths: this.paths,
      env: {},
      stdout: '',
      stderr: '',
      out: (t: string) => {
        ctx.stdout += t;
      },
      err: (t: string) => {
        ctx.stderr += t;
      },
      writeSysfs: this.writeSysfs,
    };
    return ctx;
  }

  /** Runs the CLI in this process on the tree. */
  async run(...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    const ctx = this.context();
    const status = await runCli(argv, ctx);
    return { status, stdout: ctx.stdout, stderr: ctx.stderr };
  }

  /** Runs the built `dist/cli/main.js` in a child process on the tree; `uid` runs it as that user (setpriv). */
  runChild(argv: string[], o: { uid?: number } = {}): { status: number | null; stdout: string; stderr: string } {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(PATH_VARIABLES) as (keyof HostPaths)[]) env[PATH_VARIABLES[key]] = this.paths[key];
    const main = path.resolve(__dirname, '../../cli/main.js');
    const cmd =
      o.uid === undefined
        ? [process.execPath, main, ...argv]
        : ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', process.execPath, main, ...argv];
    const r = spawnSync(cmd[0], cmd.slice(1), { env, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
}

/** PCI addresses of the standard fake host's devices. */
export const FAKE = {
  hostBridge: '0000:00:00.0',
  rootPort: '0000:00:01.0',
  edu: '0000:00:03.0',
  ivshmem: '0000:00:04.0',
  audio: '0000:00:04.1',
  noGroup: '0000:00:06.0',
  loose: '0000:00:07.0',
  nvme: '0000:01:00.0',
  nic0: '0000:02:00.0',
  nic1: '0000:02:00.1',
} as const;

/**
 * A host with the cases the CLI must tell apart: a device bound to vfio-pci
 * in a group of its own (edu), one whose group holds a sound card on its
 * driver (ivshmem), an NVMe drive behind a root port (pcieport: the group is
 * still viable), two NIC functions sharing a group on e1000e, a device with
 * no driver, one with no IOMMU group, and both backends' nodes.
 */
export function standardHost(): FakeHost {
  const h = new FakeHost();
  h.iommuUnit('dmar0');
  h.device(FAKE.hostBridge, { vendor: 0x8086, device: 0x29c0, classCode: 0x060000, group: 0 });
  h.device(FAKE.rootPort, { vendor: 0x8086, device: 0x7000, classCode: 0x060400, driver: 'pcieport', group: 1, headerType: 0x81 });
  h.device(FAKE.edu, {
    vendor: 0x1234,
    device: 0x11e8,
    classCode: 0x00ff00,
    driver: 'vfio-pci',
    group: 3,
    resetMethods: 'flr bus',
    numaNode: 0,
  });
  h.device(FAKE.ivshmem, { vendor: 0x1af4, device: 0x1110, classCode: 0x050000, driver: 'vfio-pci', group: 4 });
  h.device(FAKE.audio, { vendor: 0x8086, device: 0x293e, classCode: 0x040300, driver: 'snd_hda_intel', group: 4 });
  h.device(FAKE.noGroup, { vendor: 0x1af4, device: 0x1000, classCode: 0x020000 });
  h.device(FAKE.loose, { vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, group: 8 });
  h.device(FAKE.nvme, { vendor: 0x1b36, device: 0x0010, classCode: 0x010802, driver: 'nvme', group: 1, headerType: 0 });
  h.device(FAKE.nic0, { vendor: 0x8086, device: 0x10d3, classCode: 0x020000, driver: 'e1000e', group: 7 });
  h.device(FAKE.nic1, { vendor: 0x8086, device: 0x10d3, classCode: 0x020000, driver: 'e1000e', group: 7 });
  h.idTables.set('1b36:0010', 'nvme');
  h.idTables.set('8086:10d3', 'e1000e');
  h.node('vfio/vfio', 0o666).node('iommu', 0o660);
  return h;
}
