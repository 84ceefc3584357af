/**
 * The README's code cannot drift from code that compiles: each ```ts block
 * is exactly one file of examples/readme/, in the project's compile, and
 * the guest test knows what it prints.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { PROJECT_ROOT } from '../../vm/paths';
import { codeBlocks, COMPILED_DIR, EXAMPLES_DIR, exampleFiles, readmeTsBlocks, RUNS } from '../support/readme-examples';

/** The first line where two texts differ, for a message a person can act on. */
function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] !== y[i]) return `line ${i + 1}:\n  README: ${JSON.stringify(x[i])}\n  file:   ${JSON.stringify(y[i])}`;
  }
  return 'no line differs';
}

describe('README examples (host)', () => {
  it('reads fenced blocks with their language, line and example marker, and refuses an unclosed one', () => {
    const md = 'text\n<!-- example: examples/readme/a.ts -->\n\n```ts\nconst a = 1;\n\n```\nmore\n```sh\nls\n```\n';
    assert.deepEqual(codeBlocks(md), [
      { lang: 'ts', text: 'const a = 1;\n\n', line: 4, example: 'examples/readme/a.ts' },
      { lang: 'sh', text: 'ls\n', line: 9 },
    ]);
    assert.throws(() => codeBlocks('```ts\nx\n'), /line 1: a code block is never closed/);
  });

  it('names an examples/readme file before every ```ts block of README.md, each file once', () => {
    const blocks = readmeTsBlocks();
    assert.ok(blocks.length >= 5, `README.md has ${blocks.length} ts blocks`);
    for (const b of blocks) {
      assert.ok(
        b.example,
        `README.md line ${b.line}: a ts block needs a line <!-- example: examples/readme/NAME.ts --> before it, naming the file it is`,
      );
      assert.match(b.example, /^examples\/readme\/[a-z0-9-]+\.ts$/, `README.md line ${b.line}`);
    }
    const named = blocks.map((b) => path.basename(b.example!));
    assert.deepEqual([...named].sort(), exampleFiles(), 'the README shows every example file exactly once, and no other');
    assert.deepEqual(
      fs.readdirSync(EXAMPLES_DIR).filter((f) => !exampleFiles().includes(f)),
      [],
      'examples/readme holds only examples',
    );
  });

  it('shows each example file byte for byte', () => {
    for (const block of readmeTsBlocks()) {
      const file = path.join(EXAMPLES_DIR, path.basename(block.example ?? 'none'));
      assert.ok(fs.existsSync(file), `README.md line ${block.line}: ${block.example} does not exist`);
      const source = fs.readFileSync(file, 'utf8');
      assert.ok(
        block.text === source,
        `README.md's ts block at line ${block.line} is not ${block.example}: ${firstDifference(block.text, source)}`,
      );
    }
  });

  it('imports the library by its package name, as a user would', () => {
    for (const file of exampleFiles()) {
      const source = fs.readFileSync(path.join(EXAMPLES_DIR, file), 'utf8');
      const specifiers = [...source.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
      assert.ok(specifiers.length > 0, `${file} imports nothing`);
      for (const s of specifiers) assert.match(s, /^(node-vfio(\/vm)?|node:.*)$/, `${file} imports '${s}'`);
    }
  });

  it('compiles every example with the project (tsconfig.json), to dist/examples/readme', () => {
    const configFile = path.join(PROJECT_ROOT, 'tsconfig.json');
    const read = ts.readConfigFile(configFile, ts.sys.readFile);
    assert.equal(read.error, undefined);
    const config = ts.parseJsonConfigFileContent(read.config, ts.sys, PROJECT_ROOT);
    assert.deepEqual(config.options.paths?.['node-vfio'], ['./lib/index.ts'], "tsconfig maps 'node-vfio' to the library's entry point");
    const compiled = new Set(config.fileNames.map((f) => path.resolve(f)));
    for (const file of exampleFiles()) {
      assert.ok(compiled.has(path.join(EXAMPLES_DIR, file)), `${file} is not in tsconfig's compile`);
      const js = path.join(COMPILED_DIR, file.replace(/\.ts$/, '.js'));
      assert.ok(fs.existsSync(js), `${js} is missing: build first (npx tsc -p .)`);
      assert.match(fs.readFileSync(js, 'utf8'), /require\("node-vfio(\/vm)?"\)/, `${js} loads the package by name`);
    }
  });

  it('says how the guest test runs each example: what it prints, or why it only compiles', () => {
    assert.deepEqual(Object.keys(RUNS).sort(), exampleFiles());
    const run = Object.values(RUNS).filter((r) => 'prints' in r);
    assert.ok(run.length >= 5, 'the library examples run in the guest');
  });
});
