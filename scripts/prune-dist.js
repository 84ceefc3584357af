// After the TypeScript build: delete what tsc once wrote into dist/ for a
// source that no longer exists (a moved or deleted .ts file), so neither
// mocha's globs nor the npm package pick up stale output.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const OUTPUT = /\.(d\.ts|js\.map|js)$/;

/** Prunes `dir` (under dist/); returns whether it is now empty. */
function prune(dir) {
  let left = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (prune(file)) fs.rmdirSync(file);
      else left++;
      continue;
    }
    const source = path.join(root, path.relative(dist, file)).replace(OUTPUT, '.ts');
    if (OUTPUT.test(entry.name) && !fs.existsSync(source)) {
      fs.rmSync(file);
      process.stdout.write(`prune-dist: removed ${path.relative(root, file)} (no ${path.relative(root, source)})\n`);
    } else {
      left++;
    }
  }
  return left === 0;
}

if (fs.existsSync(dist)) prune(dist);
