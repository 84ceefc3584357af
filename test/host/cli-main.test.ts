import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { README } from '../support/readme-examples';
import { formatOptions, oneOf, OptionSpecs, parseCommandArgs, UsageError } from '../../cli/args';
import { COMMANDS, usage } from '../../cli/run';
import { parseVmArgs } from '../../cli/vm-args';
import { FAKE, FakeHost, standardHost } from './cli-fake-host';

const OPTIONS: OptionSpecs = {
  json: { type: 'boolean', description: 'JSON' },
  memlock: { type: 'string', value: 'SIZE', description: 'a size' },
  env: { type: 'string', multiple: true, description: 'repeatable' },
  help: { type: 'boolean', short: 'h', description: 'help' },
};

function usageError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && e.name === 'RangeError' && message.test(e.message));
}

describe('CLI argument parser (parseArgs)', () => {
  it('parses booleans, strings (inline or not), repeated options and positionals', () => {
    assert.deepEqual(parseCommandArgs(['--json', 'x', '--memlock=64M', '--env', 'A=1', '--env', 'B=2', '-h'], OPTIONS), {
      values: { json: true, memlock: '64M', env: ['A=1', 'B=2'], help: true },
      positionals: ['x'],
      rest: undefined,
    });
    assert.deepEqual(parseCommandArgs(['--', '--json'], OPTIONS).positionals, ['--json'], 'after -- everything is positional');
  });
  it('stops at the first positional, or at --, when asked', () => {
    assert.deepEqual(parseCommandArgs(['--json', 'ls', '-l', '--json'], OPTIONS, { stopAtPositional: true }).rest, ['ls', '-l', '--json']);
    assert.deepEqual(parseCommandArgs(['--json', '--', '--x'], OPTIONS, { stopAtPositional: true }).rest, ['--x']);
    assert.deepEqual(parseCommandArgs(['--json'], OPTIONS, { stopAtPositional: true }).rest, []);
  });
  it('refuses unknown options, missing values and values on booleans, naming the option', () => {
    usageError(() => parseCommandArgs(['--bogus'], OPTIONS), /^unknown option '--bogus'$/);
    usageError(() => parseCommandArgs(['-x'], OPTIONS), /^unknown option '-x'$/);
    usageError(() => parseCommandArgs(['--memlock'], OPTIONS), /^--memlock needs a value$/);
    usageError(() => parseCommandArgs(['--memlock', '--json'], OPTIONS), /^--memlock needs a value$/);
    usageError(() => parseCommandArgs(['--json=yes'], OPTIONS), /^--json takes no value$/);
    usageError(() => parseCommandArgs(['--constructor'], OPTIONS), /unknown option/);
    assert.equal(parseCommandArgs(['--memlock', '-1'], OPTIONS).values.memlock, '-1', 'a negative number is a value');
  });
  it('writes the options of a help text aligned, and checks choices', () => {
    assert.equal(
      formatOptions(OPTIONS),
      ['  --json          JSON', '  --memlock SIZE  a size', '  --env VALUE     repeatable', '  -h, --help      help'].join('\n'),
    );
    assert.equal(oneOf('system', ['bundled', 'system'], '--qemu'), 'system');
    usageError(() => oneOf('kvm', ['bundled', 'system'], '--qemu'), /^--qemu takes bundled or system, not 'kvm'$/);
  });
});

describe('vm CLI arguments: --qemu', () => {
  it('defaults to the bundled QEMU, or $NODE_VFIO_QEMU, and takes --qemu system', () => {
    assert.equal(parseVmArgs(['vm', 'run', '--', 'x']).qemu, 'bundled');
    assert.equal(parseVmArgs(['vm', 'run', '--qemu', 'system', '--', 'x']).qemu, 'system');
    assert.equal(parseVmArgs(['vm', 'shell'], { NODE_VFIO_QEMU: 'system' }).qemu, 'system');
    assert.equal(parseVmArgs(['vm', 'shell', '--qemu=bundled'], { NODE_VFIO_QEMU: 'system' }).qemu, 'bundled');
    usageError(() => parseVmArgs(['vm', 'run', '--qemu', 'kvm', '--', 'x']), /--qemu takes bundled or system/);
    usageError(() => parseVmArgs(['vm', 'run', '--', 'x'], { NODE_VFIO_QEMU: 'nope' }), /\$NODE_VFIO_QEMU takes bundled or system/);
  });
  it('repeats --env, keeps --keep, and answers --help after the action', () => {
    const c = parseVmArgs(['vm', 'run', '--env', 'A=1', '--env', 'B=', '--keep', '--', 'x']);
    assert.deepEqual([c.env, c.keep], [{ A: '1', B: '' }, true]);
    assert.equal(parseVmArgs(['vm', 'run', '--help']).action, 'help');
  });
});

describe('node-vfio: help and exit status', () => {
  let h: FakeHost;
  before(() => {
    h = standardHost();
  });
  after(() => h.cleanup());

  it('--help and help list every command', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await h.run(...argv);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /^usage: node-vfio COMMAND \[options\]/);
      for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`\n  ${c.synopsis.replace(/\|/g, '\\|')} +\\S`), c.name);
    }
    assert.deepEqual(
      COMMANDS.map((c) => c.name),
      ['list', 'info', 'bind', 'unbind', 'doctor', 'vm'],
    );
  });
  it("help CMD and CMD --help print the command's usage with its options", async () => {
    for (const c of COMMANDS) {
      const a = await h.run('help', c.name);
      const b = await h.run(c.name, '--help');
      assert.equal(a.status, 0);
      assert.equal(b.status, 0);
      assert.equal(a.stdout, b.stdout, c.name);
      assert.match(a.stdout, new RegExp(`node-vfio ${c.name}`));
    }
    assert.match((await h.run('doctor', '--help')).stdout, /--memlock SIZE +the RLIMIT_MEMLOCK to expect/);
    assert.match((await h.run('vm', 'run', '--help')).stdout, /--qemu bundled\|system/);
  });
  it('exits 2 with a clear message for unknown commands, options and arguments', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['frob'],
        /^node-vfio: unknown command 'frob' \(commands: list, info, bind, unbind, doctor, vm, help\)\nrun 'node-vfio --help' for usage\n$/,
      ],
      [['--json'], /unknown option '--json': options come after the command/],
      [['list', '--bogus'], /^node-vfio list: unknown option '--bogus'\nrun 'node-vfio list --help' for usage\n$/],
      [['list', 'extra'], /unexpected argument 'extra'/],
      [['info'], /info needs BDF/],
      [['bind', '0000:00:20.0'], /is not a PCI address/],
      [['help', 'frob'], /unknown command 'frob'/],
      [['vm', 'boot'], /unknown action 'vm boot'/],
      [['vm', 'run'], /vm run needs a command/],
    ];
    for (const [argv, message] of cases) {
      const r = await h.run(...argv);
      assert.equal(r.status, 2, argv.join(' '));
      assert.match(r.stderr, message, argv.join(' '));
      assert.equal(r.stdout, '', argv.join(' '));
    }
  });
  it('README shows the --help text as it is', () => {
    const text = fs.readFileSync(README, 'utf8');
    const at = text.indexOf('<!-- node-vfio --help -->\n```text\n');
    assert.ok(at >= 0, 'README has the marked --help block');
    const start = text.indexOf('\n', text.indexOf('```text', at)) + 1;
    assert.equal(text.slice(start, text.indexOf('```', start)), `${usage()}\n`);
  });
  it('prints the usage on stderr and exits 2 with no command', async () => {
    const r = await h.run();
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^usage: node-vfio/);
  });
  it('runs as dist/cli/main.js in a child process, on the paths from the environment', function () {
    this.timeout(30_000); // child processes: seconds on a loaded machine
    const list = h.runChild(['list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    const entries = JSON.parse(list.stdout) as { bdf: string; usable: boolean }[];
    assert.deepEqual(
      entries.filter((e) => e.usable).map((e) => e.bdf),
      [FAKE.edu],
    );
    const help = h.runChild(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /commands:\n {2}list/);
    const unknown = h.runChild(['frob']);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command 'frob'/);
    const dry = h.runChild(['bind', FAKE.nvme, '--dry-run', '--json']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.equal((JSON.parse(dry.stdout) as { writes: unknown[] }).writes.length, 3);
    assert.equal(h.driverOf(FAKE.nvme), 'nvme');
    const info = h.runChild(['info', FAKE.nvme]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^${FAKE.nvme} {2}1b36:0010 {2}class 010802 storage\n`));
  });
});
