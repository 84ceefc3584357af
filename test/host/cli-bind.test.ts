import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BindResult } from '../../cli/bind';
import { FAKE, FakeHost, standardHost } from './cli-fake-host';

/** Every file's content and every link's target under `dir`: a snapshot to prove nothing changed. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
      else if (e.isDirectory()) walk(p);
      else {
        // sysfs's write-only files (bind, unbind, drivers_probe) cannot be read but as root: their size and time tell a write
        const st = fs.statSync(p);
        out.set(p, st.mode & 0o444 ? fs.readFileSync(p, 'utf8') : `write-only ${st.size} ${st.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out;
}

describe('node-vfio bind / unbind', () => {
  let h: FakeHost;
  beforeEach(() => {
    h = standardHost();
  });
  afterEach(() => h.cleanup());

  const sys = (rel: string): string => path.join(h.paths.sys, rel);
  const record = (bdf: string): string => path.join(h.paths.state, `${bdf}.json`);

  it('binds through driver_override, unbind and drivers_probe, and remembers the driver', async () => {
    const r = await h.run('bind', FAKE.nvme);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(h.writes, [
      { path: sys(`bus/pci/devices/${FAKE.nvme}/driver_override`), value: 'vfio-pci\n' },
      { path: sys('bus/pci/drivers/nvme/unbind'), value: `${FAKE.nvme}\n` },
      { path: sys('bus/pci/drivers_probe'), value: `${FAKE.nvme}\n` },
    ]);
    assert.equal(h.driverOf(FAKE.nvme), 'vfio-pci');
    assert.equal(JSON.parse(fs.readFileSync(record(FAKE.nvme), 'utf8')).previousDriver, 'nvme');
    assert.match(r.stdout, new RegExp(`^${FAKE.nvme}: nvme -> vfio-pci\n  echo vfio-pci > \\S+/driver_override\n`));
    const listed = JSON.parse((await h.run('list', '--json')).stdout) as { bdf: string; usable: boolean }[];
    assert.equal(listed.find((e) => e.bdf === FAKE.nvme)?.usable, true, 'the library can open it now');
  });

  it('unbind gives the device back to the driver it had and forgets it', async () => {
    await h.run('bind', FAKE.nvme);
    h.writes.length = 0;
    const r = await h.run('unbind', FAKE.nvme, '--json');
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as BindResult;
    assert.deepEqual(
      { from: result.from, to: result.to, previousDriver: result.previousDriver },
      { from: 'vfio-pci', to: 'nvme', previousDriver: 'nvme' },
    );
    assert.deepEqual(h.writes, [
      { path: sys(`bus/pci/devices/${FAKE.nvme}/driver_override`), value: '\n' },
      { path: sys('bus/pci/drivers/vfio-pci/unbind'), value: `${FAKE.nvme}\n` },
      { path: sys('bus/pci/drivers/nvme/bind'), value: `${FAKE.nvme}\n` },
    ]);
    assert.equal(h.driverOf(FAKE.nvme), 'nvme');
    assert.equal(fs.readFileSync(sys(`bus/pci/devices/${FAKE.nvme}/driver_override`), 'utf8'), '(null)\n');
    assert.equal(fs.existsSync(record(FAKE.nvme)), false);
  });

  it('a device that had no driver gets none back', async () => {
    assert.equal((await h.run('bind', FAKE.loose)).status, 0);
    assert.deepEqual(
      h.writes.map((w) => path.basename(w.path)),
      ['driver_override', 'drivers_probe'],
      'nothing to unbind from',
    );
    assert.equal(h.driverOf(FAKE.loose), 'vfio-pci');
    h.writes.length = 0;
    const r = await h.run('unbind', FAKE.loose);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      h.writes.map((w) => path.relative(h.paths.sys, w.path)),
      [`bus/pci/devices/${FAKE.loose}/driver_override`, 'bus/pci/drivers/vfio-pci/unbind'],
    );
    assert.equal(h.driverOf(FAKE.loose), undefined);
    assert.match(r.stdout, /vfio-pci -> no driver[^]*it had no driver before vfio-pci/);
  });

  it('without a record, unbind lets the kernel probe: the matching driver, or none', async () => {
    const r = await h.run('unbind', FAKE.edu, '--json');
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as BindResult;
    assert.equal(result.previousDriver, undefined);
    assert.equal(result.to, null);
    assert.match(result.note ?? '', /no record of a driver before vfio-pci/);
    assert.equal(path.basename(h.writes[2].path), 'drivers_probe');
    assert.equal(h.driverOf(FAKE.edu), undefined);
    h.idTables.set('1234:11e8', 'edu_driver');
    h.driver('edu_driver');
    await h.run('bind', FAKE.edu);
    fs.rmSync(record(FAKE.edu));
    await h.run('unbind', FAKE.edu);
    assert.equal(h.driverOf(FAKE.edu), 'edu_driver', 'drivers_probe found the driver whose id table matches');
  });

  it('refuses, listing them, when other devices of the group are bound to other drivers', async () => {
    const before = snapshot(h.root);
    const r = await h.run('bind', FAKE.nic0);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`refusing to bind ${FAKE.nic0}: VFIO takes whole IOMMU groups, and group 7[^]*\n  ${FAKE.nic1} \\(e1000e\\)\n`),
    );
    assert.match(r.stderr, /code ERR_GROUP_NOT_VIABLE/);
    assert.deepEqual(h.writes, []);
    assert.deepEqual(snapshot(h.root), before, 'no record, no write');
    const json = await h.run('bind', FAKE.nic0, '--json');
    assert.equal(json.status, 1);
    assert.equal((JSON.parse(json.stdout) as { error: { code: string } }).error.code, 'ERR_GROUP_NOT_VIABLE');
  });

  it('takes a device whose group mates are a bridge on pcieport or vfio-pci devices', async () => {
    assert.equal((await h.run('bind', FAKE.nvme)).status, 0, 'the root port in group 1 does not block');
    assert.equal((await h.run('bind', FAKE.audio)).status, 0, 'ivshmem in group 4 is on vfio-pci already');
    assert.equal(h.driverOf(FAKE.audio), 'vfio-pci');
  });

  it('--dry-run prints the exact writes and writes nothing', async () => {
    const before = snapshot(h.root);
    const r = await h.run('bind', FAKE.nvme, '--dry-run');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n'), [
      `dry run, nothing written: bind ${FAKE.nvme} (now nvme) would write:`,
      `  echo vfio-pci > ${sys(`bus/pci/devices/${FAKE.nvme}/driver_override`)}`,
      `  echo ${FAKE.nvme} > ${sys('bus/pci/drivers/nvme/unbind')}`,
      `  echo ${FAKE.nvme} > ${sys('bus/pci/drivers_probe')}`,
      `and remember nvme in ${record(FAKE.nvme)}`,
      '',
    ]);
    const json = JSON.parse((await h.run('unbind', FAKE.edu, '--dry-run', '--json')).stdout) as BindResult;
    assert.equal(json.dryRun, true);
    assert.equal(json.writes.length, 3);
    assert.deepEqual(h.writes, []);
    assert.deepEqual(snapshot(h.root), before);
  });

  it('has nothing to do for a device on vfio-pci already, and refuses to unbind one that is not', async () => {
    const r = await h.run('bind', FAKE.edu);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /already bound to vfio-pci: nothing to do/);
    const u = await h.run('unbind', FAKE.nvme);
    assert.equal(u.status, 1);
    assert.match(u.stderr, /is not bound to vfio-pci \(its driver: nvme\)/);
    assert.deepEqual(h.writes, []);
  });

  it('says modprobe when vfio-pci, or the driver to give back to, is not loaded', async () => {
    h.cleanup();
    h = new FakeHost();
    h.device(FAKE.nvme, { vendor: 0x1b36, device: 0x0010, classCode: 0x010802, driver: 'nvme', group: 1 });
    h.idTables.set('1b36:0010', 'nvme');
    const r = await h.run('bind', FAKE.nvme);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /vfio-pci is not loaded \(no \S+\/drivers\/vfio-pci\): modprobe vfio-pci/);
    assert.deepEqual(h.writes, []);
    assert.match((await h.run('bind', FAKE.nvme, '--dry-run')).stdout, /as things are it would fail: vfio-pci is not loaded/);
    h.driver('vfio-pci');
    assert.equal((await h.run('bind', FAKE.nvme)).status, 0);
    fs.rmSync(sys('bus/pci/drivers/nvme'), { recursive: true });
    h.writes.length = 0;
    const u = await h.run('unbind', FAKE.nvme);
    assert.equal(u.status, 1);
    assert.match(u.stderr, /nvme is not loaded .*modprobe nvme, then unbind again/);
    assert.deepEqual(h.writes, []);
  });

  it('refuses a device without an IOMMU group: vfio-pci would not take it', async () => {
    const r = await h.run('bind', FAKE.noGroup);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /has no IOMMU group.*code ERR_NO_IOMMU_GROUP/);
  });

  it('checks that vfio-pci took the device, and points at unbind when it did not', async () => {
    const ctx = h.context();
    ctx.writeSysfs = (file, value) => {
      if (!file.endsWith('drivers_probe')) h.writeSysfs(file, value);
    };
    const { runCli } = await import('../../cli/run');
    assert.equal(await runCli(['bind', FAKE.nvme], ctx), 1);
    assert.match(
      ctx.stderr,
      new RegExp(
        `after drivers_probe ${FAKE.nvme} is bound to no driver, not vfio-pci; node-vfio unbind ${FAKE.nvme} gives it back to nvme`,
      ),
    );
    assert.equal((await h.run('unbind', FAKE.nvme)).status, 0, 'half-bound (driver_override set, no driver) is undone');
    assert.equal(h.driverOf(FAKE.nvme), 'nvme');
  });

  it('a failed write names itself, what was done before it, and the errno', async () => {
    const ctx = h.context();
    ctx.writeSysfs = (file, value) => {
      if (file.endsWith('drivers_probe'))
        throw Object.assign(new Error('EINVAL'), { code: 'EINVAL', errno: -22, syscall: 'write', path: file });
      h.writeSysfs(file, value);
    };
    const { runCli } = await import('../../cli/run');
    assert.equal(await runCli(['bind', FAKE.nvme], ctx), 1);
    assert.match(
      ctx.stderr,
      /echo 0000:01:00\.0 > \S+drivers_probe failed: EINVAL; done before it: echo vfio-pci > \S+; echo 0000:01:00\.0 > \S+\/nvme\/unbind \(code EINVAL, errno -22, syscall write\)/,
    );
  });

  it('as another user: EACCES from the real sysfs writes, with errno and syscall, and "sudo"', function () {
    if (process.getuid?.() !== 0) this.skip();
    fs.mkdirSync(h.paths.state, { recursive: true, mode: 0o777 });
    fs.chmodSync(h.paths.state, 0o777);
    const r = h.runChild(['bind', FAKE.nvme], { uid: 65534 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /echo vfio-pci > \S+driver_override failed: EACCES \(sysfs writes need root: run it with sudo\); nothing was changed \(code EACCES, errno -13, syscall open\)/,
    );
    assert.equal(fs.existsSync(record(FAKE.nvme)), false, 'nothing changed: nothing remembered');
    const json = h.runChild(['unbind', FAKE.edu, '--json'], { uid: 65534 });
    assert.equal(json.status, 1);
    const { error } = JSON.parse(json.stdout) as { error: Record<string, unknown> };
    assert.deepEqual(
      [error.code, error.errno, error.syscall, error.path],
      ['EACCES', -13, 'open', sys(`bus/pci/devices/${FAKE.edu}/driver_override`)],
    );
    assert.equal(h.driverOf(FAKE.nvme), 'nvme');
  });
});
