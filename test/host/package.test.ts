/**
 * The npm package as a user gets it: `npm pack` of this checkout, with the
 * linux-x64 prebuild, installed into a new project from the npm cache
 * (--offline: `npm install` of the checkout filled it) with no compiler, make
 * or python on PATH, then used from JavaScript, from `npx`, and from strict
 * TypeScript. Slow (a prebuild when there is none, a pack, an install, a tsc):
 * it runs in `npm run test:host` and `npm test`, not in `npm run test:unit`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeRun } from '../support/describe-run';

const ROOT = path.resolve(__dirname, '../../..');
const PREBUILDS = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
/** What a source build would run: each is on the install's PATH only as a script that logs its call and fails. */
const BUILD_TOOLS = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'make', 'python3', 'python'];
/** What the tarball must not carry. */
const FORBIDDEN = ['test/', 'bench/', 'examples/', '.vm/', 'build/', 'node_modules/', 'dist/test/', 'dist/bench/', 'dist/examples/'];

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: { path: string }[];
}

interface LockEntry {
  version: string;
  resolved?: string;
  dependencies?: Record<string, string>;
  [field: string]: unknown;
}

/**
 * The new project's package-lock.json: node-vfio from the tarball, and every
 * package it and @types/node need at the version and integrity of the
 * checkout's lockfile, so that \`npm ci --offline\` takes each from the npm
 * cache that the checkout's \`npm install\` filled. (\`npm install\` with no
 * lockfile would ask for the registry's full package documents, which that
 * install never fetched.)
 */
function consumerLock(root: Record<string, string>, tarballSpec: string, registry: string): object {
  const checkout = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, never>;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: root },
    'node_modules/node-vfio': {
      version: manifest.version,
      resolved: tarballSpec,
      hasInstallScript: true,
      license: manifest.license,
      os: manifest.os,
      engines: manifest.engines,
      bin: manifest.bin,
      dependencies: manifest.dependencies,
    },
  };
  const wanted = [...Object.keys(manifest.dependencies), ...Object.keys(root).filter((n) => n !== 'node-vfio')];
  for (let name = wanted.shift(); name !== undefined; name = wanted.shift()) {
    const key = `node_modules/${name}`;
    if (key in packages) continue;
    const entry = checkout.packages[key];
    assert.ok(entry, `${name} is not at ${key} in the checkout's package-lock.json`);
    const { dev: _dev, devOptional: _devOptional, ...kept } = entry;
    packages[key] = { ...kept, resolved: entry.resolved ?? `${registry}${name}/-/${name.split('/').pop()}-${entry.version}.tgz` };
    wanted.push(...Object.keys(entry.dependencies ?? {}));
  }
  return { name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages };
}

/** Runs a command to completion; asserts that it exited 0. */
function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }): string {
  const r = spawnSync(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.ok(r.status === 0 && !r.error, describeRun(`${cmd} ${args.join(' ')} (in ${opts.cwd})`, r));
  return r.stdout;
}

/** The real path of a command found on the test's own PATH. */
function onPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir || '.', name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.realpathSync(file);
    } catch {
      // not in this directory
    }
  }
  throw new Error(`${name} is not on PATH`);
}

/** The prebuilds of this platform, or none when binding.gyp or a file of native/ is newer than one of them. */
function freshPrebuilds(): string[] {
  if (!fs.existsSync(PREBUILDS)) return [];
  const built = fs
    .readdirSync(PREBUILDS)
    .filter((f) => f.endsWith('.node'))
    .map((f) => path.join(PREBUILDS, f));
  if (built.length === 0) return [];
  const oldest = Math.min(...built.map((f) => fs.statSync(f).mtimeMs));
  const native = path.join(ROOT, 'native');
  const sources = [
    path.join(ROOT, 'binding.gyp'),
    ...(fs.readdirSync(native, { recursive: true }) as string[]).map((f) => path.join(native, f)),
  ];
  return sources.some((f) => fs.statSync(f).mtimeMs > oldest) ? [] : built;
}

/**
 * A directory for PATH holding node, npm, npx and sh, and a logging stub for
 * every build tool; `log` receives a line per stub called.
 */
function bareBin(dir: string, log: string): string {
  fs.mkdirSync(dir);
  const npm = onPath('npm');
  const links: Record<string, string> = {
    node: process.execPath,
    npm,
    npx: path.join(path.dirname(npm), 'npx-cli.js'),
    sh: '/bin/sh',
  };
  for (const [name, target] of Object.entries(links)) fs.symlinkSync(target, path.join(dir, name));
  for (const tool of BUILD_TOOLS) {
    fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> '${log}'\nexit 1\n`, { mode: 0o755 });
  }
  return dir;
}

/** This environment without npm's per-script variables (npm_package_*, npm_config_local_prefix...), PATH replaced. */
function cleanEnv(pathDirs: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) || k.toLowerCase() === 'npm_config_cache') env[k] = v;
  }
  delete env.INIT_CWD;
  env.PATH = pathDirs;
  return env;
}

const CONSUMER_TS = `import { AddressSpace, DmaBuffer, VfioError } from 'node-vfio';

export function mapForDevice(space: AddressSpace, buffer: DmaBuffer): string {
  const mapping = space.map(buffer);
  return \`\${buffer.length} bytes at IOVA 0x\${mapping.iova.toString(16)}\`;
}

export function errorCode(err: unknown): string | undefined {
  return err instanceof VfioError ? \`\${err.syscall}: \${err.code} (\${err.errno})\` : undefined;
}

export function internals(buffer: DmaBuffer): void {
  // @ts-expect-error DmaBuffer.native is @internal: the published declarations do not have it
  void buffer.native;
}
`;

describe('the npm package, installed with no compiler and no network', function () {
  this.timeout(600_000);

  let tmp = '';
  let pack: PackResult;
  let project = '';
  let env: NodeJS.ProcessEnv;
  let toolLog = '';
  let installLog = '';

  before(function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nvfio-package-'));
    if (freshPrebuilds().length === 0) run(onPath('npm'), ['run', 'prebuild'], { cwd: ROOT });
    assert.notEqual(freshPrebuilds().length, 0, `npm run prebuild made nothing in ${PREBUILDS}`);

    // dist/ is this test's own build: packing it as it is (no prepare, no tsc) packs what the tests ran.
    const out = run(onPath('npm'), ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT });
    [pack] = JSON.parse(out) as PackResult[];
    process.stderr.write(`    ${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.entryCount} files\n`);

    toolLog = path.join(tmp, 'build-tools-called.log');
    env = cleanEnv(bareBin(path.join(tmp, 'bin'), toolLog));
    project = path.join(tmp, 'project');
    fs.mkdirSync(project);
    run('npm', ['init', '-y'], { cwd: project, env });
    const manifestFile = path.join(project, 'package.json');
    const typesNode = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')).version as string;
    const dependencies = { 'node-vfio': `file:../${pack.filename}`, '@types/node': typesNode };
    fs.writeFileSync(
      manifestFile,
      JSON.stringify({ ...JSON.parse(fs.readFileSync(manifestFile, 'utf8')), name: 'consumer', dependencies }, null, 2),
    );
    const registry = run('npm', ['config', 'get', 'registry'], { cwd: project, env }).trim().replace(/\/?$/, '/');
    fs.writeFileSync(
      path.join(project, 'package-lock.json'),
      JSON.stringify(consumerLock(dependencies, dependencies['node-vfio'], registry), null, 2),
    );
    installLog = run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--foreground-scripts'], { cwd: project, env });
  });

  after(function () {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs the library, its declarations and maps, the native sources and the prebuild, and nothing else', function () {
    const files = pack.files.map((f) => f.path);
    for (const required of [
      'package.json',
      'README.md',
      'LICENSE',
      'binding.gyp',
      'native/addon.cc',
      'vm/guest/init',
      'dist/lib/index.js',
      'dist/lib/index.d.ts',
      'dist/lib/index.js.map',
      'dist/cli/main.js',
    ]) {
      assert.ok(files.includes(required), `${required} is not in the tarball`);
    }
    assert.ok(
      files.some((f) => /^prebuilds\/linux-x64\/[^/]+\.node$/.test(f)),
      'no linux-x64 prebuild in the tarball',
    );
    assert.ok(
      files.some((f) => f.startsWith('vm/kernel/')),
      'vm/kernel/ is not in the tarball',
    );
    for (const prefix of FORBIDDEN) {
      assert.deepEqual(
        files.filter((f) => f.startsWith(prefix)),
        [],
        `the tarball holds files under ${prefix}`,
      );
    }
    const stale = files
      .filter((f) => f.startsWith('dist/') && f.endsWith('.js'))
      .filter((f) => !fs.existsSync(path.join(ROOT, f.slice('dist/'.length).replace(/\.js$/, '.ts'))));
    assert.deepEqual(stale, [], 'compiled files whose source no longer exists');
  });

  it('publishes no @internal member in its declarations', function () {
    const dir = path.join(project, 'node_modules/node-vfio/dist/lib');
    const declarations = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.d.ts'));
    assert.ok(declarations.includes('index.d.ts'));
    const leaking = declarations.filter((f) => fs.readFileSync(path.join(dir, f), 'utf8').includes('@internal'));
    assert.deepEqual(leaking, []);
  });

  it('installs from the prebuild: its install script ran, called no build tool, compiled nothing', function () {
    assert.match(installLog, /^> node-vfio@[^ ]+ install\n> node-gyp-build$/m, installLog);
    assert.ok(!fs.existsSync(toolLog), `build tools were called:\n${fs.existsSync(toolLog) ? fs.readFileSync(toolLog, 'utf8') : ''}`);
    assert.ok(!fs.existsSync(path.join(project, 'node_modules/node-vfio/build')), 'the install made a build/ directory');
  });

  it("require('node-vfio') loads the addon and works", function () {
    const script = `const m = require('node-vfio');
      const b = m.DmaBuffer.allocate(m.PAGE_SIZE);
      b.bytes[0] = 0xa5;
      process.stdout.write(JSON.stringify({ AddressSpace: typeof m.AddressSpace, byte: b.bytes[0], length: String(b.length), page: String(m.PAGE_SIZE) }));
      b.close();`;
    const out = JSON.parse(run('node', ['-e', script], { cwd: project, env })) as Record<string, string | number>;
    assert.deepEqual(out, { AddressSpace: 'function', byte: 0xa5, length: out.page, page: out.page });
    assert.ok(Number(out.page) >= 4096, `page size ${out.page}`);
  });

  it("resolves 'node-vfio/vm' through the exports map", function () {
    const out = run('node', ['-p', "require.resolve('node-vfio/vm')"], { cwd: project, env }).trim();
    assert.equal(out, path.join(fs.realpathSync(project), 'node_modules/node-vfio/dist/vm/index.js'));
  });

  it('npx node-vfio --help exits 0 and lists the commands', function () {
    const out = run('npx', ['--offline', 'node-vfio', '--help'], { cwd: project, env });
    assert.match(out, /\bvm\b/, out);
  });

  it('compiles strict TypeScript against the published types', function () {
    fs.writeFileSync(path.join(project, 'index.ts'), CONSUMER_TS);
    const tsconfig = {
      compilerOptions: {
        strict: true,
        module: 'node16',
        moduleResolution: 'node16',
        target: 'ES2022',
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['index.ts'],
    };
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    run('node', [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', project], { cwd: project, env });
  });
});
