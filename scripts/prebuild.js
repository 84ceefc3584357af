// `npm run prebuild`: the addon for this platform as a prebuild, with
// prebuildify (Node-API, so one build serves every Node >= 20; stripped;
// tagged with its libc, so node-gyp-build never loads a glibc build on musl),
// into prebuilds/<platform>-<arch>/, where node-gyp-build finds it in an
// installed package that has no build/ of its own.
//
// prebuildify runs `node-gyp rebuild` in the directory it is given and then
// moves the result out of build/Release. Run in the checkout, that would
// delete the checkout's own build while other tests and guests load it, so
// the build happens in a scratch copy of the sources.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/**
 * node-gyp needs the Node headers. Where npm's `nodedir` does not name them,
 * use the ones installed beside this node (Debian's /usr/include/node, the
 * official tarball's include/node) or the ones node-gyp already downloaded
 * for `npm install`, so a prebuild needs no network.
 */
function nodeHeadersDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const candidates = [
    path.resolve(path.dirname(fs.realpathSync(process.execPath)), '..'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node),
  ];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')));
}

function main() {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'node-vfio-prebuild-'));
  try {
    for (const file of ['package.json', 'binding.gyp']) fs.copyFileSync(path.join(root, file), path.join(scratch, file));
    fs.cpSync(path.join(root, 'native'), path.join(scratch, 'native'), { recursive: true });
    // binding.gyp asks node-addon-api for its include directory.
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'), 'dir');

    const out = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    fs.rmSync(out, { recursive: true, force: true }); // no stale build under another tag
    const env = { ...process.env };
    const nodedir = nodeHeadersDir();
    if (nodedir) env.npm_config_nodedir = nodedir;
    const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', '--cwd', scratch, '--out', root];
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
    if (r.status !== 0) {
      process.stderr.write(`prebuild: prebuildify failed (${r.error ? r.error.message : `exit ${r.status}, signal ${r.signal}`})\n`);
      return 1;
    }
    for (const file of fs.readdirSync(out)) {
      process.stdout.write(`prebuild: ${path.relative(root, path.join(out, file))} (${fs.statSync(path.join(out, file)).size} bytes)\n`);
    }
    return 0;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

process.exitCode = main();
