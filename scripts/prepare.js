// `prepare`: npm runs it after `npm install` in the checkout and before
// `npm pack` and `npm publish`: the TypeScript build (`npm run build:ts`).
//
// npm 11 also runs it when `npx node-vfio` inside the checkout links the
// checkout into npx's own cache to reach the package's "bin" (npm_command is
// then `exec`). That npx wants only the link, so the build is skipped there:
// it would make the first npx wait for tsc, and a build failing in the middle
// of an edit would leave npx's cache entry broken for every later npx.
'use strict';
const { spawnSync } = require('node:child_process');

if (process.env.npm_command !== 'exec') {
  const npm = process.env.npm_execpath;
  const r = npm
    ? spawnSync(process.execPath, [npm, 'run', 'build:ts'], { stdio: 'inherit' })
    : spawnSync('npm', ['run', 'build:ts'], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
