/** A lock between processes of the harness, by lock file. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Runs `fn` holding a lock file (its content: the holder's pid), so two
 * processes never build or unpack the same thing at once; a lock whose
 * holder is gone is taken over.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  for (;;) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      break;
    } catch {
      let pid: number;
      try {
        pid = Number(fs.readFileSync(file, 'utf8'));
      } catch {
        continue; // released between our try and this read
      }
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (!alive) {
        fs.rmSync(file, { force: true });
        continue;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(file, { force: true });
  }
}
