// After the TypeScript build: link node_modules/.bin/<name> to this
// checkout's own commands (package.json "bin"), so `npx node-vfio ...` runs
// them inside the checkout: npm links the bins of a package's dependencies,
// never the package's own.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { bin } = require(path.join(root, 'package.json'));
const binDir = path.join(root, 'node_modules', '.bin');
fs.mkdirSync(binDir, { recursive: true });
for (const [name, target] of Object.entries(bin)) {
  const abs = path.join(root, target);
  fs.chmodSync(abs, 0o755);
  const link = path.join(binDir, name);
  fs.rmSync(link, { force: true });
  fs.symlinkSync(path.relative(binDir, abs), link);
}
