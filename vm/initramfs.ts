/** The guest's initramfs: busybox, the project's /init, and a stock kernel's modules. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cpioArchive, CpioEntry } from './cpio';
import { HarnessError } from './apt';
import { PROJECT_ROOT } from './paths';

const BUSYBOX = '/bin/busybox';
const INIT = path.join(PROJECT_ROOT, 'vm/guest/init');

export function buildInitramfs(out: string, modules: readonly string[]): void {
  if (!fs.existsSync(BUSYBOX)) throw new HarnessError(`${BUSYBOX} is missing: apt-get install busybox-static`);
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'host', 'tmp', 'modules'].map((d): CpioEntry => ({ kind: 'dir', path: d })),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { kind: 'file', path: 'bin/busybox', data: fs.readFileSync(BUSYBOX), mode: 0o755 },
    { kind: 'file', path: 'init', data: fs.readFileSync(INIT), mode: 0o755 },
    ...modules.map((m): CpioEntry => ({ kind: 'file', path: `modules/${path.basename(m)}`, data: fs.readFileSync(m) })),
  ];
  if (modules.length > 0) {
    entries.push({ kind: 'file', path: 'modules/order', data: Buffer.from(modules.map((m) => path.basename(m)).join('\n') + '\n') });
  }
  fs.writeFileSync(out, cpioArchive(entries));
}
