// After the TypeScript build: link node_modules/.bin/node-vfio to this
// checkout's CLI, so `npx node-vfio ...` runs it. (package.json has no "bin"
// field on purpose: npm 11's npx then tries to install the package into its
// own cache, and fails there, instead of using the local link.)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { nodeVfioBin } = require(path.join(root, 'package.json'));
const binDir = path.join(root, 'node_modules', '.bin');
fs.mkdirSync(binDir, { recursive: true });
for (const [name, target] of Object.entries(nodeVfioBin)) {
  const abs = path.join(root, target);
  fs.chmodSync(abs, 0o755);
  const link = path.join(binDir, name);
  fs.rmSync(link, { force: true });
  fs.symlinkSync(path.relative(binDir, abs), link);
}
