/**
 * kill -9 in the middle of work leaves nothing behind that keeps the next
 * process from the devices. Ten times per backend, a child process
 * (test/fixtures/kill-child.ts) is killed with SIGKILL while it has an edu
 * DMA loop running, 32 NVMe commands in flight, and a 1,024-fragment
 * phys_list link under way: the kill is sent when the child's own state,
 * read through /proc/PID/mem, says it is inside one. In odd rounds edu's
 * MSI and nvme's MSI-X vectors are enabled too. The next child opens edu
 * and nvme at once and checks bytes through both (edu through a
 * 1,024-fragment link; nvme written, read back, and read where the host
 * wrote).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { JsonChild, fixture } from '../support/children';
import { figure } from '../support/figures';
import { forEachBackend } from '../support/guest';

const KILLS = 10;
interface Busy {
  eduDmas: number;
  ios: number;
  inFlight: number;
  links: number;
  /** The address of the child's state bytes: [0] 1 inside a link, [1] 1 while an edu DMA runs, [2] NVMe commands in flight. */
  state: string;
}

/** What the child was doing when it was killed. */
interface AtKill {
  midLink: boolean;
  eduDma: boolean;
  nvmeInFlight: number;
}

/** The child's state bytes, read through /proc/PID/mem (one vCPU: while this process runs, the child does not). */
function readState(pid: number, address: bigint): AtKill | undefined {
  const b = Buffer.alloc(3);
  try {
    const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
    try {
      fs.readSync(fd, b, 0, 3, address);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  return { midLink: b[0] === 1, eduDma: b[1] === 1, nvmeInFlight: b[2] };
}

/**
 * Kills the child with SIGKILL at a moment it is inside a link (looking for
 * one for up to 3 s); what it was doing then. The child is stopped while
 * this process runs and dies where it stopped: a signal is acted on before
 * the process returns to user code.
 */
async function killMidLink(child: JsonChild, busy: Busy): Promise<AtKill> {
  const pid = child.process.pid!;
  const deadline = Date.now() + 3000;
  let at = readState(pid, BigInt(busy.state));
  while (!at?.midLink && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1 + Math.floor(Math.random() * 4)));
    at = readState(pid, BigInt(busy.state));
    if (at?.midLink) break;
  }
  child.process.kill('SIGKILL');
  return at ?? { midLink: false, eduDma: false, nvmeInFlight: 0 };
}

forEachBackend('SIGKILL in the middle of work', (backend) => {
  it(`${KILLS} kills, each mid edu DMA loop, mid 1,024-fragment link and mid NVMe I/O at QD32: the next process opens the devices at once and moves checked bytes`, async function () {
    this.timeout(KILLS * 60_000);
    const started = Date.now();
    const kills: (Busy & AtKill)[] = [];
    let survived = 0;
    for (let round = 0; round <= KILLS; round++) {
      const work = round < KILLS;
      const child = new JsonChild(fixture('kill-child'), [backend, String(round), work ? 'work' : 'verify']);
      try {
        await child.next<{ verified: object }>(120_000);
        if (round > 0) survived++; // the killed process's devices opened and worked
        if (!work) {
          const { code, signal } = await child.end(60_000);
          assert.equal(signal, null, `the last child died of ${signal}:\n${child.stderr}`);
          assert.equal(code, 0, child.stderr);
          break;
        }
        const { busy } = await child.next<{ busy: Busy }>(60_000);
        const at = await killMidLink(child, busy);
        const { signal } = await child.end(10_000);
        assert.equal(signal, 'SIGKILL', child.stderr);
        kills.push({ ...busy, ...at });
      } finally {
        child.process.kill('SIGKILL');
      }
    }
    const midLink = kills.filter((k) => k.midLink).length;
    const eduDma = kills.filter((k) => k.eduDma).length;
    figure(
      `kill -9 [${backend}]: ${survived} of ${KILLS} kills survived (the next process opened edu and nvme at once and checked bytes); ` +
        `at the kill (interrupts enabled in ${kills.filter((_, i) => i % 2 === 1).length}): ${midLink} inside a 1,024-fragment link, ${eduDma} with an edu DMA running, NVMe commands in flight ${kills.map((k) => k.nvmeInFlight).join(', ')}; ` +
        `${Math.round((Date.now() - started) / 1000)} s`,
    );
    assert.equal(survived, KILLS);
    assert.equal(midLink, KILLS, 'every kill landed inside a link');
  });
});
