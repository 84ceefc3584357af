/**
 * The README's TypeScript examples and the files they are. Every ```ts block
 * of README.md follows a marker line naming its file,
 *
 *   <!-- example: examples/readme/edu-dma.ts -->
 *
 * and is that file byte for byte; the files are compiled with the project
 * (to dist/examples/readme/). The host test checks that blocks and files
 * agree; the guest test runs each compiled file and checks what it prints
 * against RUNS below. To change an example, edit the file and paste it into
 * the README (or the other way round): the host test names the first line
 * that differs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../vm/paths';

export const README = path.join(PROJECT_ROOT, 'README.md');
export const EXAMPLES_DIR = path.join(PROJECT_ROOT, 'examples', 'readme');
export const COMPILED_DIR = path.join(PROJECT_ROOT, 'dist', 'examples', 'readme');

/** A fenced code block of the README. */
export interface CodeBlock {
  /** The info string after the opening fence ('ts', 'sh', ...). */
  lang: string;
  /** The block's text, each line ending in a newline, without the fences. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The file named by an `<!-- example: PATH -->` line just before the fence (blank lines between allowed). */
  example?: string;
}

/** The fenced (```) code blocks of a Markdown text, in order. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j])) body.push(lines[j++]);
    if (j === lines.length) throw new Error(`README line ${i + 1}: a code block is never closed`);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const marker = k >= 0 ? /^<!-- example: (\S+) -->\s*$/.exec(lines[k]) : null;
    const block: CodeBlock = { lang: open[1], text: body.map((l) => `${l}\n`).join(''), line: i + 1 };
    if (marker) block.example = marker[1];
    blocks.push(block);
    i = j;
  }
  return blocks;
}

/** The README's TypeScript blocks (```ts or ```typescript). */
export function readmeTsBlocks(markdown = fs.readFileSync(README, 'utf8')): CodeBlock[] {
  return codeBlocks(markdown).filter((b) => b.lang === 'ts' || b.lang === 'typescript');
}

/** The example files (name.ts), sorted. */
export function exampleFiles(): string[] {
  return fs
    .readdirSync(EXAMPLES_DIR)
    .filter((f) => /^[a-z0-9-]+\.ts$/.test(f))
    .sort();
}

/** How the guest test runs an example: what it must print, or why it only compiles. */
export type ExampleRun =
  /** Run in the guest (`node dist/examples/readme/NAME.js`): exit status 0, and stdout has a line matching each pattern, in order. */
  | { prints: RegExp[] }
  /** Compiled and checked on the host only, for the reason given. */
  | { compileOnly: string };

/** Every example file, by name. */
export const RUNS: Record<string, ExampleRun> = {
  'edu-dma.ts': { prints: [/^hello, device$/] },
  'interrupts.ts': {
    prints: [
      /^MSI: 1 interrupt\(s\)$/,
      /^status 0x42$/,
      /^10! = 3628800$/,
      /^12! = 479001600$/,
      /^3 interrupts through the async iterator$/,
    ],
  },
  // (8192 - 0x200) + 4096 + 4096 bytes; the mapping's IOVA keeps the first fragment's offset in its page
  'phys-list.ts': { prints: [/^15872 bytes at IOVA 0x[0-9a-f]*200$/, /^15872 bytes at IOVA 0x[0-9a-f]*200$/] },
  'p2p.ts': { prints: [/^hello, peer$/] },
  'dma-pool.ts': { prints: [/^1024 pieces, 4194304 bytes at IOVA 0x[0-9a-f]+$/, /^hello, pool$/] },
  'nvme.ts': { prints: [/^QEMU NVMe Ctrl: read 65536 bytes of \d+$/] },
  'vm-harness.ts': { compileOnly: "a mocha suite for the host that boots guests itself, over a driver's own test files" },
};
