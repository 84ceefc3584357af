/** Quoting for POSIX sh: the harness writes the guest's command as a script. */
export function shQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The script the guest's /init runs in the chroot of the host root. */
export function commandScript(command: readonly string[], cwd: string, env: Readonly<Record<string, string>>): string {
  if (command.length === 0) throw new RangeError('no command to run in the guest');
  for (const name of Object.keys(env)) {
    if (!/^[A-Za-z_]\w*$/.test(name)) throw new RangeError(`not an environment variable name: '${name}'`);
  }
  return [
    '# written by the node-vfio harness',
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}`),
    `cd ${shQuote(cwd)} || exit 126`,
    `exec ${command.map(shQuote).join(' ')}`,
    '',
  ].join('\n');
}
