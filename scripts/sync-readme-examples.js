// `node scripts/sync-readme-examples.js`: copies each examples/readme/NAME.ts
// into the README's ```ts block that follows its `<!-- example: ... -->`
// marker, so the README shows the formatted, compiled file exactly (the host
// test test/host/readme-examples.test.ts checks that they match).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const readme = path.join(root, 'README.md');
const text = fs.readFileSync(readme, 'utf8');
const synced = text.replace(/(<!-- example: (\S+) -->\n```ts\n)([\s\S]*?)(```)/g, (all, head, file, _body, tail) => {
  const source = fs.readFileSync(path.join(root, file), 'utf8');
  return `${head}${source.endsWith('\n') ? source : `${source}\n`}${tail}`;
});
if (synced !== text) fs.writeFileSync(readme, synced);
