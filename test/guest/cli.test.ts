/**
 * The node-vfio command on a kernel with real VFIO: what `list` and `info`
 * print is what the library reports; `unbind` and `bind` move edu off
 * vfio-pci and back, and the library can use it afterwards; `doctor` is
 * green as root and names the permission problem as another user.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AddressSpace } from '../../lib/address-space';
import { readPciDevice } from '../../lib/sysfs';
import type { BindResult } from '../../cli/bind';
import type { DoctorReport } from '../../cli/doctor';
import type { InfoEntry } from '../../cli/info';
import type { DeviceEntry } from '../../cli/list';
import { PATH_VARIABLES } from '../../cli/context';
import { BDF, KERNEL } from '../support/guest';

const MAIN = path.resolve(__dirname, '../../cli/main.js');
const NOBODY = 65534;

/** Runs the built CLI on the system's paths, as root or (uid) as another user. */
function cli(args: string[], o: { uid?: number } = {}): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env };
  for (const v of Object.values(PATH_VARIABLES)) delete env[v];
  const argv =
    o.uid === undefined
      ? [process.execPath, MAIN, ...args]
      : ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', process.execPath, MAIN, ...args];
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json<T>(args: string[], o: { uid?: number; status?: number } = {}): T {
  const r = cli([...args, '--json'], o);
  assert.equal(r.status, o.status ?? 0, `node-vfio ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const iommufd = KERNEL === 'custom';

describe(`node-vfio CLI in the guest (${KERNEL} kernel)`, () => {
  it('list --json reports each test device as the library reads it from sysfs, usable', () => {
    const entries = new Map(json<DeviceEntry[]>(['list']).map((e) => [e.bdf, e]));
    for (const bdf of Object.values(BDF)) {
      const lib = readPciDevice(bdf);
      const e = entries.get(bdf);
      assert.ok(e, bdf);
      assert.deepEqual(
        [Number(e.vendor), Number(e.device), Number(e.class), e.driver, e.iommuGroup, e.cdev],
        [lib.vendor, lib.device, lib.classCode, lib.driver, lib.iommuGroup, lib.vfioCdev ?? null],
        bdf,
      );
      assert.equal(e.usable, true, `${bdf}: ${e.reason}`);
      assert.deepEqual(e.groupMembers, [], `${bdf} has a group of its own`);
      assert.equal(e.backends.type1.ok, true);
      assert.equal(e.backends.iommufd.ok, iommufd, e.backends.iommufd.reason);
    }
  });

  it('info --json shows the regions and IRQs VFIO reports to the library', () => {
    for (const bdf of Object.values(BDF)) {
      const e = json<InfoEntry>(['info', bdf]);
      assert.ok(e.vfio, `${bdf}: ${e.vfioMissing}`);
      assert.equal(e.vfio.backend, iommufd ? 'iommufd' : 'type1');
      const space = AddressSpace.open();
      try {
        const dev = space.openDevice(bdf);
        const info = dev.info();
        assert.equal(e.vfio.flags, info.flags);
        // What the library answers for each index, EINVAL (no such region or IRQ on this device) as undefined.
        const each = <T>(count: number, ask: (i: number) => T): (T | undefined)[] =>
          Array.from({ length: count }, (_, i) => {
            try {
              return ask(i);
            } catch (err) {
              assert.equal((err as NodeJS.ErrnoException).code, 'EINVAL');
              return undefined;
            }
          });
        const regions = each(info.numRegions, (i) => dev.regionInfo(i));
        assert.deepEqual(
          e.vfio.regions.map((r) => [r.index, r.size, r.flags, r.mmap, r.sparseAreas]),
          regions.flatMap((r, index) =>
            r
              ? [
                  [
                    index,
                    Number(r.size),
                    r.flags,
                    r.mappable,
                    r.sparseAreas?.map((a) => ({ offset: Number(a.offset), size: Number(a.size) })) ?? null,
                  ],
                ]
              : [],
          ),
          `${bdf} regions`,
        );
        const irqs = each(info.numIrqs, (i) => dev.irqInfo(i));
        assert.deepEqual(
          e.vfio.irqs.map((i) => [i.name, i.count, i.flags]),
          irqs.flatMap((q, index) => (q ? [[['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'][index], q.count, q.flags]] : [])),
          `${bdf} IRQs`,
        );
        assert.equal(e.vfio.dmaBuf.supported, iommufd, e.vfio.dmaBuf.reason);
      } finally {
        space.close();
      }
    }
    const nvme = json<InfoEntry>(['info', BDF.nvme]);
    assert.ok((nvme.vfio?.irqs.find((i) => i.name === 'MSI-X')?.count ?? 0) > 0, 'nvme has MSI-X');
  });

  it('unbind leaves edu without a driver (it had none), bind gives it back to vfio-pci, and the library uses it', () => {
    const off = json<BindResult>(['unbind', BDF.edu]);
    assert.deepEqual([off.from, off.to], ['vfio-pci', null]);
    assert.equal(readPciDevice(BDF.edu).driver, undefined);
    assert.equal(fs.existsSync(`/dev/vfio/${readPciDevice(BDF.edu).iommuGroup}`), false, 'the group node went with vfio-pci');
    const listed = json<DeviceEntry[]>(['list']).find((e) => e.bdf === BDF.edu);
    assert.deepEqual([listed?.usable, listed?.reason], [false, 'no driver: not bound to vfio-pci']);
    const unbound = AddressSpace.open();
    try {
      assert.throws(() => unbound.openDevice(BDF.edu), { code: 'ERR_VFIO_NOT_BOUND' });
    } finally {
      unbound.close();
    }

    const on = json<BindResult>(['bind', BDF.edu]);
    assert.deepEqual([on.from, on.to, on.previousDriver], [null, 'vfio-pci', null]);
    assert.equal(readPciDevice(BDF.edu).driver, 'vfio-pci');
    const space = AddressSpace.open();
    try {
      assert.equal(space.openDevice(BDF.edu).bar(0).read32(0), 0x010000ed, "edu's identification register");
    } finally {
      space.close();
    }
    // Back as at boot, without bind's record: unbind with the record, then bind, keeps it on vfio-pci.
    assert.equal(json<BindResult>(['unbind', BDF.edu]).to, null);
    assert.equal(json<BindResult>(['bind', BDF.edu]).to, 'vfio-pci');
  });

  it('refuses to unbind a device that is not on vfio-pci, and to bind what is not a PCI address', () => {
    const r = cli(['bind', '0000:00:1f.7']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no PCI device 0000:00:1f\.7.*ENOENT/);
    assert.equal(cli(['bind', 'edu']).status, 2);
    assert.equal(cli(['frob']).status, 2);
  });

  it('doctor passes as root (--probe asks VFIO about dma-buf export)', () => {
    const report = json<DoctorReport>(['doctor', '--probe']);
    const failed = report.checks.filter((c) => c.status === 'fail');
    assert.deepEqual(failed, []);
    assert.equal(report.ok, true);
    const status = Object.fromEntries(report.checks.map((c) => [c.id, c.status]));
    if (iommufd) {
      assert.deepEqual(
        report.checks.filter((c) => c.status !== 'ok'),
        [],
        "all green on the project's kernel",
      );
    } else {
      assert.deepEqual(
        [status.iommufd, status['vfio-devices'], status['dma-buf']],
        ['warn', 'warn', 'warn'],
        'Debian 6.1: no iommufd, no cdevs, no dma-buf',
      );
    }
    const text = cli(['doctor']);
    assert.equal(text.status, 0, text.stdout);
    assert.match(text.stdout, /^ok {4}IOMMU enabled +dmar0/m);
  });

  it('doctor as uid 65534 fails on the device nodes it cannot open, and names them', () => {
    const report = json<DoctorReport>(['doctor'], { uid: NOBODY, status: 1 });
    assert.equal(report.uid, NOBODY);
    const perm = report.checks.find((c) => c.id === 'permissions');
    assert.equal(perm?.status, 'fail');
    const group = readPciDevice(BDF.edu).iommuGroup;
    assert.ok(perm?.detail.includes(`/dev/vfio/${group}`), perm?.detail);
    if (iommufd) assert.ok(perm?.detail.includes('/dev/iommu'), perm?.detail);
    assert.match(perm?.fix ?? '', /^sudo chown nobody \/dev\//);
    const listed = json<DeviceEntry[]>(['list'], { uid: NOBODY }).find((e) => e.bdf === BDF.edu);
    assert.equal(listed?.usable, false);
    assert.match(listed?.reason ?? '', /not readable and writable by this user \(EACCES\)/);
  });
});
