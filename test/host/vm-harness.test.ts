import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { systemMirror } from '../../vm/apt';
import { parseVmArgs } from '../../cli/vm-args';
import { cpioArchive } from '../../vm/cpio';
import { DEVICE_BDF, deviceArgs, parseDevices } from '../../vm/devices';
import { EXIT_MARKER, qemuArgs } from '../../vm/guest';
import { compileProgress, customKernelDir, customKernelKey, moduleDepends, moduleLoadOrder } from '../../vm/kernel';
import { qemuChoice, releaseCodename } from '../../vm/qemu';
import { cacheDir } from '../../vm/paths';
import { commandScript, shQuote } from '../../vm/shell-quote';

describe('vm CLI arguments', () => {
  it('parses run with kernel, devices, env, timeout and the command after --', () => {
    const c = parseVmArgs([
      'vm',
      'run',
      '--kernel',
      'debian',
      '--devices',
      'edu,nvme',
      '--env',
      'A=b=c',
      '--timeout',
      '60',
      '--',
      'node',
      '-e',
      '1',
    ]);
    assert.equal(c.action, 'run');
    assert.equal(c.kernel, 'debian');
    assert.deepEqual(c.devices, ['edu', 'nvme']);
    assert.deepEqual(c.env, { A: 'b=c' });
    assert.equal(c.timeoutMs, 60_000);
    assert.deepEqual(c.command, ['node', '-e', '1']);
  });
  it('defaults to the custom kernel, every device, TCG', () => {
    const c = parseVmArgs(['vm', 'run', '--', 'true']);
    assert.equal(c.kernel, 'custom');
    assert.deepEqual(c.devices, ['edu', 'ivshmem', 'nvme']);
    assert.equal(c.accel, 'tcg');
    assert.equal(parseVmArgs(['vm', 'run', '--kvm', '--', 'x']).accel, 'kvm');
  });
  it('takes the command without -- when it is not an option, and keeps its own options', () => {
    assert.deepEqual(parseVmArgs(['vm', 'run', 'ls', '-l', '--kernel']).command, ['ls', '-l', '--kernel']);
  });
  it('shell and kernel take no command; help needs nothing', () => {
    assert.equal(parseVmArgs(['vm', 'shell', '--devices', 'edu']).action, 'shell');
    assert.equal(parseVmArgs(['vm']).action, 'help');
    assert.throws(() => parseVmArgs(['vm', 'shell', '--', 'ls']), /takes no command/);
  });
  it('refuses what it does not know, with a RangeError that says why', () => {
    assert.throws(() => parseVmArgs(['vm', 'run']), { name: 'RangeError', message: /needs a command/ });
    assert.throws(() => parseVmArgs(['vm', 'run', '--kernel', 'xen', '--', 'x']), /custom or debian/);
    assert.throws(() => parseVmArgs(['vm', 'run', '--devices', 'edu,gpu', '--', 'x']), /unknown device 'gpu'/);
    assert.throws(() => parseVmArgs(['vm', 'run', '--timeout', '-1', '--', 'x']), /positive/);
    assert.throws(() => parseVmArgs(['vm', 'run', '--env', 'NOVALUE', '--', 'x']), /NAME=VALUE/);
    assert.throws(() => parseVmArgs(['vm', 'run', '--bogus', '--', 'x']), /unknown option '--bogus'/);
    assert.throws(() => parseVmArgs(['vm', 'boot']), /unknown action/);
    assert.throws(() => parseVmArgs(['run']), /unknown command/);
    assert.throws(() => parseVmArgs(['vm', 'run', '--kernel']), /needs a value/);
  });
  it('deduplicates devices', () => {
    assert.deepEqual(parseDevices('edu, edu,ivshmem'), ['edu', 'ivshmem']);
  });
});

describe('guest kernel cache keys', () => {
  const base = { pkg: 'linux-source-7.2', version: '7.2.13-1', fragment: 'CONFIG_VFIO=y\n', buildScript: 'make' };
  it('is stable for the same inputs', () => {
    assert.equal(customKernelKey(base), customKernelKey({ ...base }));
    assert.match(customKernelKey(base), /^[0-9a-f]{16}$/);
  });
  it('changes with the source version, the fragment and the build script', () => {
    const keys = new Set([
      customKernelKey(base),
      customKernelKey({ ...base, version: '7.2.14-1' }),
      customKernelKey({ ...base, fragment: 'CONFIG_VFIO=y\nCONFIG_IOMMUFD=y\n' }),
      customKernelKey({ ...base, buildScript: 'make -j3' }),
      customKernelKey({ ...base, pkg: 'linux-source-7.3' }),
    ]);
    assert.equal(keys.size, 5);
  });
  it('cannot be forged by moving text between parts', () => {
    assert.notEqual(customKernelKey({ ...base, version: 'ab', fragment: 'c' }), customKernelKey({ ...base, version: 'a', fragment: 'bc' }));
  });
  it('names a directory under the cache, safe for any version string', () => {
    const d = customKernelDir('/c', 'linux-source-7.2', '7.2.13-1~bpo13+1', 'abc');
    assert.equal(d, '/c/kernel/linux-source-7.2_7.2.13-1_bpo13+1_abc');
    assert.equal(cacheDir({ HOME: '/h', XDG_CACHE_HOME: '/x' } as NodeJS.ProcessEnv), '/x/node-vfio');
    assert.equal(cacheDir({ NODE_VFIO_CACHE: '/n' } as NodeJS.ProcessEnv), '/n');
  });
});

describe('stock kernel modules', () => {
  const modinfo = (deps: string): Buffer => Buffer.from(`\0license=GPL\0depends=${deps}\0vermagic=6.1\0`);
  it('reads depends= from .modinfo, normalising - to _', () => {
    assert.deepEqual(moduleDepends(modinfo('vfio-pci-core,vfio')), ['vfio_pci_core', 'vfio']);
    assert.deepEqual(moduleDepends(modinfo('')), []);
    assert.deepEqual(moduleDepends(Buffer.from('no modinfo here')), []);
  });
  it('orders modules dependencies first, each once', () => {
    const deps: Record<string, string> = {
      'vfio-pci.ko': 'vfio-pci-core,vfio',
      'vfio-pci-core.ko': 'vfio,irqbypass',
      'vfio.ko': '',
      'irqbypass.ko': '',
      '9p.ko': '9pnet,netfs',
      '9pnet.ko': '',
      'netfs.ko': '',
    };
    const files = new Map(Object.keys(deps).map((f) => [f.replace('.ko', '').replace(/-/g, '_'), f]));
    const order = moduleLoadOrder(['vfio_pci', '9p'], files, (f) => moduleDepends(modinfo(deps[f])));
    assert.deepEqual(order, ['vfio.ko', 'irqbypass.ko', 'vfio-pci-core.ko', 'vfio-pci.ko', '9pnet.ko', 'netfs.ko', '9p.ko']);
  });
  it('says which module is missing and who needs it', () => {
    const files = new Map([['a', 'a.ko']]);
    assert.throws(() => moduleLoadOrder(['a'], files, () => ['b']), /module b \(needed by a\)/);
  });
});

describe('initramfs (newc cpio)', () => {
  it('is read back by cpio with the same names, modes and contents', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpio-'));
    const archive = path.join(dir, 'a.cpio');
    fs.writeFileSync(
      archive,
      cpioArchive([
        { kind: 'dir', path: 'bin' },
        { kind: 'file', path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
        { kind: 'file', path: 'odd', data: Buffer.from('12345') },
        { kind: 'symlink', path: 'bin/sh', target: 'hello' },
      ]),
    );
    const listing = execFileSync('cpio', ['-itv', '--quiet', '-F', archive], { encoding: 'utf8' });
    assert.match(listing, /^drwxr-xr-x .* bin$/m);
    assert.match(listing, /^-rwxr-xr-x .* 18 .* bin\/hello$/m);
    assert.match(listing, /^lrwxrwxrwx .* bin\/sh -> hello$/m);
    execFileSync('cpio', ['-id', '--quiet', '-F', archive], { cwd: dir });
    assert.equal(fs.readFileSync(path.join(dir, 'odd'), 'utf8'), '12345');
    assert.equal(fs.readFileSync(path.join(dir, 'bin/hello'), 'utf8'), '#!/bin/sh\necho hi\n');
    fs.rmSync(dir, { recursive: true });
  });
});

describe('the guest command script', () => {
  it('quotes every word so sh runs exactly the argv given', () => {
    const argv = ['printf', '%s|', "it's", 'a b', '$HOME', '`x`', '', '"q"'];
    const script = commandScript(argv, '/', { X: "y'z" });
    const out = execFileSync('sh', ['-c', script], { encoding: 'utf8' });
    assert.equal(out, `it's|a b|$HOME|\`x\`||"q"|`);
    assert.equal(shQuote('plain/path-1.0'), 'plain/path-1.0');
  });
  it('exports the environment and refuses bad names', () => {
    const out = execFileSync('sh', ['-c', commandScript(['sh', '-c', 'echo "$X"'], '/', { X: "y'z $a" })], { encoding: 'utf8' });
    assert.equal(out, "y'z $a\n");
    assert.throws(() => commandScript(['x'], '/', { 'A-B': '1' }), RangeError);
    assert.throws(() => commandScript([], '/', {}), RangeError);
  });
  it('recognises the exit marker', () => {
    assert.equal(EXIT_MARKER.exec('out\n@@NODE-VFIO-EXIT 3@@\n')?.[1], '3');
  });
});

describe('QEMU command line', () => {
  it('has the vIOMMU before the devices, each device at its fixed address, and both 9p shares', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qemu-'));
    const files = {};
    const args = qemuArgs({
      kernel: { kind: 'custom', source: 'x', bzImage: '/k/bzImage', modules: [] },
      initrd: '/k/i',
      runDir: dir,
      projectDir: '/p',
      devices: ['edu', 'ivshmem', 'nvme'],
      files,
      accel: 'tcg',
      memoryMiB: 1024,
      hugepages: 8,
      interactive: false,
    });
    const line = args.join(' ');
    assert.ok(line.indexOf('intel-iommu,intremap=on') < line.indexOf('edu,addr=03.0'));
    assert.match(line, /ivshmem-plain,memdev=ivshmem0,addr=04\.0/);
    assert.match(line, /nvme,serial=\S+,drive=nvme0,addr=05\.0/);
    assert.match(line, /accel=tcg/);
    assert.match(line, /mount_tag=hostroot,security_model=none,readonly=on/);
    assert.match(line, /path=\/p,mount_tag=project/);
    assert.match(line, new RegExp(`nodevfio.bind=${DEVICE_BDF.edu},${DEVICE_BDF.ivshmem},${DEVICE_BDF.nvme}`));
    assert.ok(fs.existsSync(path.join(dir, 'ivshmem.bin')) && fs.existsSync(path.join(dir, 'nvme.img')));
    assert.deepEqual(deviceArgs([], dir, {}), []);
    assert.ok(!args.includes('-L'), 'the system QEMU finds its own firmware');
    const bundled = qemuArgs({
      kernel: { kind: 'custom', source: 'x', bzImage: '/k/bzImage', modules: [] },
      dataDir: '/q/usr/share/qemu',
      initrd: '/k/i',
      runDir: dir,
      projectDir: '/p',
      devices: [],
      files: {},
      accel: 'tcg',
      memoryMiB: 1024,
      hugepages: 8,
      interactive: false,
    });
    assert.equal(bundled[bundled.indexOf('-L') + 1], '/q/usr/share/qemu');
    fs.rmSync(dir, { recursive: true });
  });
});

describe('QEMU choice', () => {
  it('takes bundled (the default) or system, and refuses anything else', () => {
    assert.equal(qemuChoice(undefined), 'bundled');
    assert.equal(qemuChoice(''), 'bundled');
    assert.equal(qemuChoice('system'), 'system');
    assert.throws(() => qemuChoice('7.2'), { name: 'RangeError', message: /bundled.*system.*7\.2/ });
  });
  it('reads the release codename that names the backports suite', () => {
    assert.equal(releaseCodename('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'), 'bookworm');
    assert.equal(releaseCodename('VERSION_CODENAME="trixie"\n'), 'trixie');
    assert.equal(releaseCodename('ID=debian\n'), undefined);
  });
});

describe('kernel build progress', () => {
  it('shows files compiled out of the expected total, and never 100 % before make is done', () => {
    assert.equal(compileProgress(0, 2000), '0/~2000 files (0%)');
    assert.equal(compileProgress(500, 2000), '500/~2000 files (25%)');
    assert.equal(compileProgress(2500, 2000), '2500/~2000 files (99%)');
  });
});

describe('apt sources', () => {
  it('finds the Debian mirror in deb822 and one-line formats', () => {
    assert.equal(systemMirror('Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n'), 'http://mirror.example/debian');
    assert.equal(systemMirror('deb [arch=amd64] http://m.example/debian bookworm main\n'), 'http://m.example/debian');
    assert.equal(systemMirror('# nothing\n'), undefined);
  });
});
