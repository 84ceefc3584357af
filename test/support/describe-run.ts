/** How a child process ended, for an assertion message. */
import type { SpawnSyncReturns } from 'node:child_process';

/** `what`: how it ended (exit status and signal, or why it did not start), then its whole stdout and stderr. */
export function describeRun(what: string, r: SpawnSyncReturns<string>): string {
  const how = r.error ? `failed to start: ${r.error.message}` : `exit ${r.status}, signal ${r.signal}`;
  return `${what}: ${how}\n--- stdout ---\n${r.stdout ?? ''}--- stderr ---\n${r.stderr ?? ''}`;
}
