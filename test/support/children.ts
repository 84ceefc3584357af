/**
 * What the process-level robustness tests share: the child scripts they
 * run (compiled to dist/test/fixtures), a child whose stdout is read as
 * JSON lines, and the blocks of the nvme image each of them may write.
 *
 * The nvme image's last 1 MiB is written by tests only (test/guest/nvme.test.ts
 * takes its first 64 blocks); these tests take its last 56 blocks of 4 KiB.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { NVME_IMAGE_SIZE } from '../../vm/devices';
import { NVME_BLOCK } from './witness';

/** 4 KiB blocks of the nvme image. */
export const NVME_BLOCKS_4K = NVME_IMAGE_SIZE / NVME_BLOCK;
/** First 4 KiB block of the blocks test/fixtures/kill-child writes (32 blocks: 16 checked, 16 written while it is killed). */
export const KILL_BLOCKS = NVME_BLOCKS_4K - 32;
/** First 4 KiB block of the blocks the NVMe worker of test/fixtures/workers writes (16 blocks). */
export const WORKER_BLOCKS = NVME_BLOCKS_4K - 48;
/** First 4 KiB block of the blocks test/guest/cycles.test.ts writes (8 blocks). */
export const CYCLES_BLOCKS = NVME_BLOCKS_4K - 56;

/** The compiled child script `name` (test/fixtures/NAME.ts). */
export function fixture(name: string): string {
  return path.resolve(__dirname, '../fixtures', `${name}.js`);
}

/**
 * A child node process that reports by JSON lines on its stdout; its stderr
 * is kept for the failure message.
 */
export class JsonChild {
  readonly process: ChildProcess;
  private readonly lines: unknown[] = [];
  private waiting?: () => void;
  private partial = '';
  private stderrText = '';
  /** The exit, once it came: code and signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(script: string, args: string[], options: { stdin?: boolean } = {}) {
    this.process = spawn(process.execPath, [script, ...args], { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    this.process.stdout!.setEncoding('utf8').on('data', (text: string) => {
      const parts = (this.partial + text).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) if (line.trim()) this.lines.push(JSON.parse(line));
      this.waiting?.();
    });
    this.process.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.stderrText = (this.stderrText + text).slice(-8000);
    });
    this.exited = new Promise((resolve) => this.process.once('exit', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => this.waiting?.());
  }

  /** What the child wrote to stderr (its last 8,000 characters). */
  get stderr(): string {
    return this.stderrText;
  }

  /** Its next JSON line; rejects when the child exits first, or after `timeoutMs`. */
  async next<T>(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      if (this.lines.length > 0) return this.lines.shift() as T;
      if (exited) {
        const { code, signal } = await this.exited;
        throw new Error(`the child ended (code ${code}, signal ${signal}) before its next report:\n${this.stderrText}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no report from the child within ${timeoutMs} ms:\n${this.stderrText}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiting = undefined;
    }
  }

  /** Writes a line to its stdin. */
  send(line: string): void {
    this.process.stdin!.write(`${line}\n`);
  }

  /** Waits for its exit, killing it first when it outlives `timeoutMs`. */
  async end(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
