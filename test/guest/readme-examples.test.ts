/**
 * The README's examples, run as a user would run them: each compiled file of
 * dist/examples/readme/ in its own Node process in the guest
 * (`node dist/examples/readme/NAME.js`), importing the package by its name
 * (Node resolves 'node-vfio' inside the package through its "exports"), and
 * judged by its exit status and what it prints (RUNS in
 * test/support/readme-examples.ts). Every example opens the devices itself,
 * so they run one after another.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../../vm/paths';
import { KERNEL } from '../support/guest';
import { COMPILED_DIR, exampleFiles, RUNS } from '../support/readme-examples';

interface Exit {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node file` with a deadline; SIGKILL past it. */
function runNode(file: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Each pattern matches a line of `lines`, in order (other lines may come between). */
function matchInOrder(lines: string[], patterns: RegExp[]): string | undefined {
  let at = 0;
  for (const p of patterns) {
    while (at < lines.length && !p.test(lines[at])) at++;
    if (at === lines.length) return `no line matches ${p} (in order)`;
    at++;
  }
  return undefined;
}

describe(`README examples, run in the guest [${KERNEL} kernel]`, () => {
  it('matches its own line checker: in order, other lines between', () => {
    assert.equal(matchInOrder(['a', 'x', 'b'], [/^a$/, /^b$/]), undefined);
    assert.match(matchInOrder(['b', 'a'], [/^a$/, /^b$/]) ?? '', /no line matches \/\^b\$\//);
  });

  for (const file of exampleFiles()) {
    const run = RUNS[file];
    if (!run || 'compileOnly' in run) continue; // the host test covers these (and that every file has an entry)
    it(`${file}: exits 0 and prints ${run.prints.map(String).join(', ')}`, async function () {
      this.timeout(180_000);
      const js = path.join(COMPILED_DIR, file.replace(/\.ts$/, '.js'));
      const exit = await runNode(js, process.env, 150_000);
      const transcript = `--- stdout\n${exit.stdout}--- stderr\n${exit.stderr}`;
      assert.equal(exit.signal, null, `${file} was killed (${exit.signal}): it ran past 150 s\n${transcript}`);
      assert.equal(exit.status, 0, `${file} exited with status ${exit.status}\n${transcript}`);
      const problem = matchInOrder(exit.stdout.split('\n'), run.prints);
      assert.equal(problem, undefined, `${file}: ${problem}\n${transcript}`);
    });
  }
});
