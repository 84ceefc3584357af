// `node scripts/clang-format.js [--fix]`: checks (or, with --fix, rewrites) the
// C and C++ sources with the clang-format binary that the clang-format npm
// package ships, so no system package is needed. Exits non-zero when a file
// is not formatted.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dirs = ['native', 'bench', 'test/abi'];
const files = [];
const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'build' && e.name !== 'node_modules') walk(p);
    } else if (/\.(c|cc|h)$/.test(e.name)) files.push(path.relative(root, p));
  }
};
for (const d of dirs) if (fs.existsSync(path.join(root, d))) walk(path.join(root, d));
const bin = path.join(
  path.dirname(require.resolve('clang-format/package.json')),
  'bin',
  `${process.platform}_${process.arch}`,
  'clang-format',
);
const args = process.argv.includes('--fix') ? ['-i', ...files] : ['--dry-run', '-Werror', ...files];
const r = spawnSync(bin, args, { cwd: root, stdio: 'inherit' });
if (r.error) {
  console.error(`clang-format could not run (${bin}): ${r.error.message}`);
  process.exit(2);
}
process.exit(r.status ?? 1);
