#!/usr/bin/env node
/** The `node-vfio` command (bin entry): list, info, bind, unbind, doctor, vm. */
import { processContext } from './context';
import { runCli } from './run';

void runCli(process.argv.slice(2), processContext()).then((code) => {
  process.exitCode = code;
});
