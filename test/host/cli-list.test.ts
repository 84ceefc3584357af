import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeviceEntry } from '../../cli/list';
import { InfoEntry } from '../../cli/info';
import { groupConflicts, iommuGroupMembers, isDmaSafeDriver, keepsGroupViable, listPciDevices, readPciDetails } from '../../lib/sysfs';
import { FAKE, FakeHost, standardHost } from './cli-fake-host';

describe('sysfs: IOMMU groups and device details', () => {
  let h: FakeHost;
  before(() => {
    h = standardHost();
  });
  after(() => h.cleanup());

  it('lists every PCI device in address order', () => {
    assert.deepEqual(
      listPciDevices(h.paths.sys).map((d) => d.bdf),
      [FAKE.hostBridge, FAKE.rootPort, FAKE.edu, FAKE.ivshmem, FAKE.audio, FAKE.noGroup, FAKE.loose, FAKE.nvme, FAKE.nic0, FAKE.nic1],
    );
  });
  it("reads a group's members with their drivers, bridges by header type", () => {
    assert.deepEqual(iommuGroupMembers(1, h.paths.sys), [
      { name: FAKE.rootPort, driver: 'pcieport', classCode: 0x060400, bridge: true },
      { name: FAKE.nvme, driver: 'nvme', classCode: 0x010802, bridge: false },
    ]);
    assert.deepEqual(iommuGroupMembers(99, h.paths.sys), []);
    assert.throws(() => iommuGroupMembers(-1, h.paths.sys), RangeError);
  });
  it('names the members that keep a group from being viable', () => {
    assert.deepEqual(
      groupConflicts(FAKE.ivshmem, h.paths.sys).map((m) => m.name),
      [FAKE.audio],
    );
    assert.deepEqual(
      groupConflicts(FAKE.nic0, h.paths.sys).map((m) => `${m.name} ${m.driver}`),
      [`${FAKE.nic1} e1000e`],
    );
    assert.deepEqual(groupConflicts(FAKE.nvme, h.paths.sys), [], 'a root port on pcieport does not count');
    assert.deepEqual(groupConflicts(FAKE.noGroup, h.paths.sys), []);
  });
  it('knows which drivers leave DMA to VFIO', () => {
    for (const d of ['vfio-pci', 'mlx5_vfio_pci', 'nvgrace-gpu-vfio-pci', 'pci-stub', 'pcieport']) assert.ok(isDmaSafeDriver(d), d);
    for (const d of ['nvme', 'e1000e', 'vfio-pci-foo', 'snd_hda_intel']) assert.ok(!isDmaSafeDriver(d), d);
    assert.ok(keepsGroupViable({ name: 'x', bridge: false }));
    assert.ok(keepsGroupViable({ name: 'x', driver: 'shpchp', bridge: true }), 'bridges are excepted');
    assert.ok(!keepsGroupViable({ name: 'x', driver: 'nvme', bridge: false }));
  });
  it('reads NUMA node, reset methods, driver_override; a class stands in for a missing header type', () => {
    assert.deepEqual(readPciDetails(FAKE.edu, h.paths.sys), {
      numaNode: 0,
      resetMethods: ['flr', 'bus'],
      driverOverride: undefined,
      bridge: false,
    });
    fs.writeFileSync(path.join(h.paths.sys, 'bus/pci/devices', FAKE.loose, 'driver_override'), 'vfio-pci\n');
    assert.deepEqual(readPciDetails(FAKE.loose, h.paths.sys), {
      numaNode: undefined,
      resetMethods: [],
      driverOverride: 'vfio-pci',
      bridge: false,
    });
    fs.writeFileSync(path.join(h.paths.sys, 'bus/pci/devices', FAKE.loose, 'driver_override'), '(null)\n');
    assert.equal(readPciDetails(FAKE.hostBridge, h.paths.sys).bridge, false, 'a host bridge has a normal header');
  });
});

describe('node-vfio list', () => {
  let h: FakeHost;
  beforeEach(() => {
    h = standardHost();
  });
  afterEach(() => h.cleanup());

  async function entries(): Promise<Map<string, DeviceEntry>> {
    const r = await h.run('list', '--json');
    assert.equal(r.status, 0, r.stderr);
    return new Map((JSON.parse(r.stdout) as DeviceEntry[]).map((e) => [e.bdf, e]));
  }

  it('prints one JSON object per device with ids, driver, group and members', async () => {
    const e = await entries();
    assert.equal(e.size, 10);
    assert.deepEqual(e.get(FAKE.edu), {
      bdf: FAKE.edu,
      vendor: '0x1234',
      device: '0x11e8',
      class: '0x00ff00',
      driver: 'vfio-pci',
      iommuGroup: 3,
      groupMembers: [],
      cdev: 'vfio0',
      usable: true,
      reason: null,
      backends: { iommufd: { ok: true }, type1: { ok: true } },
    });
    assert.deepEqual(e.get(FAKE.nvme)?.groupMembers, [{ bdf: FAKE.rootPort, driver: 'pcieport' }]);
    assert.equal(e.get(FAKE.noGroup)?.iommuGroup, null);
  });
  it('says why each unusable device is unusable', async () => {
    const e = await entries();
    const reason = (bdf: string): string | null | undefined => e.get(bdf)?.reason;
    assert.equal(reason(FAKE.nvme), 'bound to nvme, not vfio-pci');
    assert.equal(reason(FAKE.loose), 'no driver: not bound to vfio-pci');
    assert.equal(reason(FAKE.ivshmem), `IOMMU group 4 is not viable: ${FAKE.audio} (snd_hda_intel)`);
    assert.equal(e.get(FAKE.ivshmem)?.usable, false);
    assert.equal(e.get(FAKE.ivshmem)?.backends.type1.reason, reason(FAKE.ivshmem), 'the group blocks both backends');
  });
  it('falls back to type1 without /dev/iommu, and says both reasons when neither backend can', async () => {
    fs.rmSync(path.join(h.paths.dev, 'iommu'));
    let edu = (await entries()).get(FAKE.edu);
    assert.equal(edu?.usable, true);
    assert.deepEqual(edu?.backends.iommufd, { ok: false, reason: `no ${path.join(h.paths.dev, 'iommu')}` });
    fs.rmSync(path.join(h.paths.dev, 'vfio/3'));
    edu = (await entries()).get(FAKE.edu);
    assert.equal(edu?.usable, false);
    assert.equal(edu?.reason, `iommufd: no ${path.join(h.paths.dev, 'iommu')}; type1: no ${path.join(h.paths.dev, 'vfio/3')}`);
  });
  it('needs the VFIO cdev for iommufd (a kernel without VFIO_DEVICE_CDEV)', async () => {
    h.cleanup();
    h = new FakeHost();
    h.cdevs = false;
    h.device(FAKE.edu, { vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, driver: 'vfio-pci', group: 3 })
      .node('vfio/vfio', 0o666)
      .node('iommu');
    const edu = (await entries()).get(FAKE.edu);
    assert.equal(edu?.cdev, null);
    assert.match(edu?.backends.iommufd.reason ?? '', /no VFIO cdev.*CONFIG_VFIO_DEVICE_CDEV/);
    assert.equal(edu?.backends.type1.ok, true);
  });
  it('prints an aligned table', async () => {
    const r = await h.run('list');
    assert.equal(r.status, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 11);
    assert.match(lines[0], /^BDF +ID +CLASS +DRIVER +GROUP +SHARES GROUP WITH +VFIO$/);
    const col = lines[0].indexOf('VFIO');
    const edu = lines.find((l) => l.startsWith(FAKE.edu)) ?? '';
    assert.equal(edu.slice(col), 'yes (iommufd, type1)');
    assert.match(edu, /1234:11e8 +00ff00 unclassified +vfio-pci +3 +- /);
    assert.equal((lines.find((l) => l.startsWith(FAKE.nvme)) ?? '').slice(col), 'no: bound to nvme, not vfio-pci');
    assert.match(lines.find((l) => l.startsWith(FAKE.nic0)) ?? '', new RegExp(`${FAKE.nic1} \\(e1000e\\)`));
  });
  it('says so when there are no PCI devices', async () => {
    const empty = new FakeHost();
    try {
      const r = await empty.run('list');
      assert.equal(r.status, 0);
      assert.match(r.stdout, /^no PCI devices under /);
      assert.equal((await empty.run('list', '--json')).stdout.trim(), '[]');
    } finally {
      empty.cleanup();
    }
  });
});

describe('node-vfio info (sysfs part)', () => {
  let h: FakeHost;
  before(() => {
    h = standardHost();
  });
  after(() => h.cleanup());

  it('prints sysfs facts, resources and backends, and why the VFIO part is missing', async () => {
    const r = await h.run('info', '00:03.0', '--json');
    assert.equal(r.status, 0, r.stderr);
    const e = JSON.parse(r.stdout) as InfoEntry;
    assert.equal(e.bdf, FAKE.edu);
    assert.deepEqual(e.resetMethods, ['flr', 'bus']);
    assert.equal(e.numaNode, 0);
    assert.equal(e.driverOverride, null);
    assert.equal(e.groupNode, path.join(h.paths.dev, 'vfio/3'));
    assert.equal(e.cdevNode, path.join(h.paths.dev, 'vfio/devices/vfio0'));
    assert.deepEqual(e.resources, [
      { index: 0, name: 'BAR0', start: '0x00000000fea00000', end: '0x00000000feafffff', size: 1 << 20, flags: '0x40200', kind: 'mem32' },
      {
        index: 2,
        name: 'BAR2',
        start: '0x0000000800000000',
        end: '0x00000008000fffff',
        size: 1 << 20,
        flags: '0x14220c',
        kind: 'mem64 prefetchable',
      },
    ]);
    assert.equal(e.vfio, null);
    assert.match(e.vfioMissing ?? '', /not opened: sysfs or \/dev is a test tree/);
  });
  it("names the group's other members and the reason a backend cannot open it", async () => {
    const e = JSON.parse((await h.run('info', FAKE.ivshmem, '--json')).stdout) as InfoEntry;
    assert.deepEqual(e.groupMembers, [{ bdf: FAKE.audio, driver: 'snd_hda_intel' }]);
    assert.match(e.vfioMissing ?? '', /test tree/);
    assert.equal(e.usable, false);
    const text = (await h.run('info', FAKE.ivshmem)).stdout;
    assert.match(text, new RegExp(`IOMMU group +4, \\S+/vfio/4; also ${FAKE.audio} \\(snd_hda_intel\\)`));
    assert.match(text, /iommufd +no: IOMMU group 4 is not viable/);
    assert.match(text, /^VFIO: not opened/m);
  });
  it('--sysfs-only does not open the device, and a bridge says so', async () => {
    const e = JSON.parse((await h.run('info', FAKE.rootPort, '--json', '--sysfs-only')).stdout) as InfoEntry;
    assert.equal(e.vfioMissing, 'not opened (--sysfs-only)');
    assert.equal(e.bridge, true);
    assert.match((await h.run('info', FAKE.rootPort)).stdout, /class 060400 bridge \(bridge\)/);
  });
  it('prints the reset methods, or that there are none', async () => {
    assert.match((await h.run('info', FAKE.edu)).stdout, /reset methods +flr, bus/);
    assert.match((await h.run('info', FAKE.nvme)).stdout, /reset methods +none/);
  });
  it('fails with ENOENT for a device that is not there, and exits 2 for what is not an address', async () => {
    const missing = await h.run('info', '0000:00:1f.7');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no PCI device 0000:00:1f\.7.*code ENOENT/);
    const json = await h.run('info', '0000:00:1f.7', '--json');
    assert.equal(json.status, 1);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'ENOENT');
    const bad = await h.run('info', 'edu');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /'edu' is not a PCI address/);
  });
});
