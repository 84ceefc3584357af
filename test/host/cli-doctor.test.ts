import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { UsageError } from '../../cli/args';
import { DoctorReport } from '../../cli/doctor';
import { hasIpcLock, kernelVersion, meminfoField, parseKernelConfig, parseLimit, parseSize, versionAtLeast } from '../../cli/host-facts';
import { FAKE, FakeHost } from './cli-fake-host';

const LIMITS = (soft: string, hard: string): string =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    `Max locked memory         ${soft.padEnd(20)} ${hard.padEnd(20)} bytes     `,
    'Max address space         unlimited            unlimited            bytes     ',
  ].join('\n');

const MEMINFO = (total: number, free: number): string =>
  `MemTotal:        2015768 kB\nHugePages_Total:    ${total}\nHugePages_Free:     ${free}\nHugePages_Rsvd:        0\nHugepagesize:       2048 kB\n`;

/** A host where every check passes: IOMMU, vfio-pci with a device and its cdev, both backends, memlock, huge pages, dma-buf in the config. */
function healthyHost(): FakeHost {
  const h = new FakeHost();
  h.iommuUnit('dmar0');
  h.device(FAKE.edu, { vendor: 0x1234, device: 0x11e8, classCode: 0x00ff00, driver: 'vfio-pci', group: 3 });
  h.node('vfio/vfio', 0o666).node('iommu', 0o660);
  h.proc('self/limits', LIMITS('134217728', '134217728'));
  h.proc('self/status', 'Name:\tnode\nCapEff:\t0000000000000000\n');
  h.proc('meminfo', MEMINFO(64, 64));
  h.proc('cmdline', 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on\n');
  h.proc('cpuinfo', 'processor\t: 0\nvendor_id\t: GenuineIntel\n');
  h.proc('sys/kernel/osrelease', '7.2.13-amd64\n');
  h.proc('config.gz', zlib.gzipSync('CONFIG_IOMMUFD=y\nCONFIG_VFIO_PCI_DMABUF=y\n# CONFIG_FOO is not set\n'));
  return h;
}

describe('doctor: host facts', () => {
  it('reads RLIMIT_MEMLOCK from /proc/self/limits, unlimited as null', () => {
    assert.deepEqual(parseLimit(LIMITS('8388608', 'unlimited'), 'Max locked memory'), { soft: 8388608n, hard: null });
    assert.equal(parseLimit('Limit  Soft\n', 'Max locked memory'), undefined);
  });
  it('reads meminfo fields, CAP_IPC_LOCK, kernel versions and configs', () => {
    assert.equal(meminfoField(MEMINFO(8, 3), 'HugePages_Free'), 3);
    assert.equal(meminfoField(MEMINFO(8, 3), 'Hugepagesize'), 2048);
    assert.equal(meminfoField('', 'HugePages_Total'), undefined);
    assert.equal(hasIpcLock('CapEff:\t000001ffffffffff\n'), true);
    assert.equal(hasIpcLock('CapEff:\t0000000000004000\n'), true, 'bit 14 alone');
    assert.equal(hasIpcLock('CapEff:\t0000000000000000\n'), false);
    assert.deepEqual(kernelVersion('6.19.2-amd64'), [6, 19]);
    assert.equal(kernelVersion('weird'), undefined);
    assert.ok(versionAtLeast([7, 0], 6, 19) && versionAtLeast([6, 19], 6, 19) && !versionAtLeast([6, 18], 6, 19));
    assert.deepEqual(
      [...parseKernelConfig('CONFIG_A=y\nCONFIG_B="x y"\n# CONFIG_C is not set\n# comment\n')],
      [
        ['CONFIG_A', 'y'],
        ['CONFIG_B', '"x y"'],
        ['CONFIG_C', 'n'],
      ],
    );
  });
  it('parses sizes in binary units and refuses what is not one', () => {
    assert.equal(parseSize('64M', '--memlock'), 64n << 20n);
    assert.equal(parseSize('1GiB', '--memlock'), 1n << 30n);
    assert.equal(parseSize('512k', '--memlock'), 512n << 10n);
    assert.equal(parseSize('4096', '--memlock'), 4096n);
    for (const bad of ['', 'M', '-1', '1.5G', 'lots'])
      assert.throws(
        () => parseSize(bad, '--memlock'),
        (e: unknown) => e instanceof UsageError && /--memlock takes a size/.test(e.message),
      );
  });
});

describe('node-vfio doctor', () => {
  let h: FakeHost;
  beforeEach(() => {
    h = healthyHost();
  });
  afterEach(() => h.cleanup());

  async function doctor(
    ...args: string[]
  ): Promise<{ status: number; report: DoctorReport; check: (id: string) => DoctorReport['checks'][number] }> {
    const r = await h.run('doctor', '--json', ...args);
    const report = JSON.parse(r.stdout) as DoctorReport;
    const check = (id: string): DoctorReport['checks'][number] => {
      const c = report.checks.find((x) => x.id === id);
      assert.ok(c, `check ${id}`);
      return c;
    };
    return { status: r.status, report, check };
  }

  it('passes every check on a healthy host, and says which checks it made', async () => {
    const { status, report } = await doctor();
    assert.equal(status, 0);
    assert.equal(report.ok, true);
    assert.equal(report.kernel, '7.2.13-amd64');
    assert.deepEqual(
      report.checks.map((c) => [c.id, c.status]),
      [
        ['iommu', 'ok'],
        ['vfio-pci', 'ok'],
        ['vfio-container', 'ok'],
        ['iommufd', 'ok'],
        ['vfio-devices', 'ok'],
        ['permissions', 'ok'],
        ['memlock', 'ok'],
        ['hugepages', 'ok'],
        ['dma-buf', 'ok'],
      ],
    );
    for (const c of report.checks) assert.equal(typeof c.title, 'string');
    const text = await h.run('doctor');
    assert.equal(text.status, 0);
    assert.match(
      text.stdout,
      /^kernel 7\.2\.13-amd64, uid \d+, RLIMIT_MEMLOCK wanted 64 MiB\nok {4}IOMMU enabled +dmar0; 1 IOMMU groups\n/,
    );
    assert.match(text.stdout, /\nready\n$/);
  });

  it('fails without an IOMMU, naming the fix for the CPU and command line', async () => {
    fs.rmSync(path.join(h.paths.sys, 'class/iommu/dmar0'), { recursive: true });
    fs.rmSync(path.join(h.paths.sys, 'kernel/iommu_groups'), { recursive: true });
    const asked = await doctor();
    assert.equal(asked.status, 1);
    assert.equal(asked.check('iommu').status, 'fail');
    assert.match(asked.check('iommu').detail, /intel_iommu=on is on the kernel command line, but no IOMMU registered/);
    assert.equal(asked.check('iommu').fix, 'turn on VT-d in the firmware setup and reboot');
    h.proc('cmdline', 'root=/dev/sda1\n');
    assert.match((await doctor()).check('iommu').fix ?? '', /intel_iommu=on .*update-grub/);
    h.proc('cpuinfo', 'vendor_id\t: AuthenticAMD\n');
    assert.match((await doctor()).check('iommu').fix ?? '', /AMD-Vi/);
  });

  it('fails without vfio-pci: modprobe', async () => {
    h.cleanup();
    h = healthyHost();
    fs.rmSync(path.join(h.paths.sys, 'bus/pci/drivers/vfio-pci'), { recursive: true });
    const { status, check } = await doctor();
    assert.equal(status, 1);
    assert.deepEqual([check('vfio-pci').status, check('vfio-pci').fix], ['fail', 'sudo modprobe vfio-pci']);
  });

  it("warns when one backend's node is missing, fails when both are", async () => {
    fs.rmSync(path.join(h.paths.dev, 'iommu'));
    let r = await doctor();
    assert.equal(r.status, 0);
    assert.deepEqual([r.check('iommufd').status, r.check('iommufd').fix], ['warn', 'sudo modprobe iommufd']);
    h.proc('config.gz', zlib.gzipSync('# CONFIG_IOMMUFD is not set\n'));
    r = await doctor();
    assert.match(r.check('iommufd').fix ?? '', /CONFIG_IOMMUFD=y/);
    fs.rmSync(path.join(h.paths.dev, 'vfio/vfio'));
    r = await doctor();
    assert.equal(r.status, 1);
    assert.deepEqual([r.check('vfio-container').status, r.check('iommufd').status], ['fail', 'fail']);
    assert.equal(r.check('vfio-container').fix, 'sudo modprobe vfio vfio_iommu_type1');
  });

  it('warns when no device is bound to vfio-pci, or the kernel makes no VFIO cdevs', async () => {
    h.cleanup();
    h = healthyHost();
    await h.run('unbind', FAKE.edu);
    let r = await doctor();
    assert.deepEqual(
      [r.check('vfio-devices').status, r.check('vfio-devices').fix],
      ['warn', 'node-vfio list, then: sudo node-vfio bind BDF'],
    );
    h.cdevs = false;
    await h.run('bind', FAKE.edu);
    r = await doctor();
    assert.equal(r.check('vfio-devices').status, 'warn');
    assert.match(r.check('vfio-devices').detail, /0000:00:03\.0 \(group 3\); no VFIO cdevs/);
    assert.equal(r.status, 0, 'type1 still works');
  });

  it('fails when RLIMIT_MEMLOCK is below --memlock, unless CAP_IPC_LOCK lifts it', async () => {
    h.proc('self/limits', LIMITS('8388608', '8388608'));
    let r = await doctor();
    assert.equal(r.status, 1);
    assert.equal(r.check('memlock').status, 'fail');
    assert.match(r.check('memlock').detail, /^8 MiB \(hard 8 MiB\), less than the 64 MiB asked/);
    assert.equal(r.check('memlock').fix, 'sudo prlimit --pid $$ --memlock=67108864:67108864', 'the hard limit is too low for ulimit');
    h.proc('self/limits', LIMITS('8388608', 'unlimited'));
    assert.equal((await doctor()).check('memlock').fix, 'ulimit -l 65536');
    assert.equal((await doctor('--memlock', '4M')).check('memlock').status, 'ok');
    h.proc('self/status', 'CapEff:\t0000000000004000\n');
    r = await doctor();
    assert.equal(r.check('memlock').status, 'ok');
    assert.match(r.check('memlock').detail, /^CAP_IPC_LOCK/);
  });

  it('warns about huge pages: none reserved, or none free', async () => {
    h.proc('meminfo', MEMINFO(0, 0));
    let r = await doctor();
    assert.deepEqual([r.check('hugepages').status, r.check('hugepages').fix], ['warn', 'echo 32 | sudo tee /proc/sys/vm/nr_hugepages']);
    h.proc('meminfo', MEMINFO(8, 0));
    r = await doctor('--memlock', '4M');
    assert.match(r.check('hugepages').detail, /all 8 in use/);
    assert.equal(r.check('hugepages').fix, 'echo 10 | sudo tee /proc/sys/vm/nr_hugepages');
  });

  it('tells dma-buf export from the config, /boot, the release, or says it is unknown', async () => {
    h.proc('config.gz', zlib.gzipSync('# CONFIG_VFIO_PCI_DMABUF is not set\n'));
    let r = await doctor();
    assert.equal(r.check('dma-buf').status, 'warn');
    assert.match(r.check('dma-buf').detail, /CONFIG_VFIO_PCI_DMABUF is not set \(\S+config\.gz\)/);
    fs.rmSync(path.join(h.paths.proc, 'config.gz'));
    fs.writeFileSync(path.join(h.paths.boot, 'config-7.2.13-amd64'), 'CONFIG_VFIO_PCI_DMABUF=y\n');
    r = await doctor();
    assert.equal(r.check('dma-buf').status, 'ok');
    assert.match(r.check('dma-buf').detail, /config-7\.2\.13-amd64/);
    fs.rmSync(path.join(h.paths.boot, 'config-7.2.13-amd64'));
    r = await doctor();
    assert.equal(r.check('dma-buf').status, 'warn');
    assert.match(r.check('dma-buf').detail, /^unknown: Linux 7\.2\.13-amd64 can have it, but its config is not readable/);
    h.proc('sys/kernel/osrelease', '6.18.4\n');
    r = await doctor();
    assert.match(r.check('dma-buf').detail, /^absent: Linux 6\.18\.4 predates 6\.19/);
  });

  it("--probe does not open devices of a test tree (the library opens the system's /dev)", async () => {
    fs.rmSync(path.join(h.paths.proc, 'config.gz'));
    const r = await doctor('--probe');
    assert.match(r.check('dma-buf').detail, /^unknown/);
  });

  it('as another user: fails on the nodes it cannot open, with the chown that fixes it', function () {
    if (process.getuid?.() !== 0) this.skip();
    const r = h.runChild(['doctor', '--json'], { uid: 65534 });
    assert.equal(r.status, 1, r.stderr);
    const report = JSON.parse(r.stdout) as DoctorReport;
    assert.equal(report.uid, 65534);
    const perm = report.checks.find((c) => c.id === 'permissions');
    const refused = ['iommu', 'vfio/3', 'vfio/devices/vfio0'].map((n) => path.join(h.paths.dev, n));
    assert.equal(perm?.status, 'fail');
    assert.match(perm?.title ?? '', /for nobody \(uid 65534\)/);
    assert.equal(perm?.fix, `sudo chown nobody ${refused.join(' ')}`);
    assert.ok(!perm?.detail.includes(path.join(h.paths.dev, 'vfio/vfio')), '/dev/vfio/vfio is 0666');
    const text = h.runChild(['doctor'], { uid: 65534 });
    assert.equal(text.status, 1);
    assert.match(text.stdout, /FAIL {2}device node access for nobody \(uid 65534\) +no read\/write access to /);
    assert.match(text.stdout, /fix: sudo chown nobody /);
    assert.match(text.stdout, /1 check\(s\) failed/);
  });

  it('exits 2 for a bad --memlock', async () => {
    const r = await h.run('doctor', '--memlock', 'lots');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--memlock takes a size like 64M/);
  });
});
