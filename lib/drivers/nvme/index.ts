/**
 * An NVMe driver in TypeScript over VFIO: NvmeController (reset, admin
 * queue, Identify, I/O queue pairs, polled or MSI-X completions, shutdown)
 * and NvmeNamespace (Read, Write, Flush, Write Zeroes into the library's
 * DMA mappings, CPU memory or a peer device's BAR, as PRP entries and
 * lists). Every command can end through a
 * promise or, on the lean path, through a callback (readInto, writeFrom:
 * nothing allocated per command).
 *
 *   await using nvme = await NvmeController.open(space, '0000:00:05.0');
 *   const ns = nvme.namespace(1);
 *   await ns.read(0n, 8, space.map(buffer));
 *   ns.readInto(0, 8, mapping, 0, (err, tag) => { ... }, tag); // no promise
 *
 * Files: registers.ts (BAR0), commands.ts (submission entries),
 * completion.ts (completion entries), errors.ts (statuses, NvmeError,
 * NvmeRevokedError), prp.ts (data pointers), queue-pair.ts (rings, CIDs, callbacks, promises),
 * completion-modes.ts (polling, interrupts), identify.ts (Identify data),
 * controller.ts, namespace.ts.
 */
export { NvmeController, NVME_CLASS_CODE } from './controller';
export type { NvmeControllerOptions, NvmeCompletionMode } from './controller';
export { NvmeNamespace } from './namespace';
export type { IoOptions, NamespaceHost, BlockTransfer } from './namespace';
export { NvmeError, NvmeRevokedError, NvmeStatusError, StatusType, statusName } from './errors';
export type { NvmeErrorCode, CommandContext } from './errors';
export { AdminOpcode, IoOpcode, IdentifyCns } from './commands';
/**
 * The command builders and the submission entry encoder: plain
 * {@link NvmeCommand} objects for {@link NvmeController.adminCommand} and
 * {@link NvmeController.io}, for commands the driver has no method for.
 */
export * as nvmeCommands from './commands';
export type { NvmeCommand } from './commands';
export type { Completion } from './completion';
export type { ControllerIdentity, NamespaceIdentity, LbaFormat } from './identify';
export type { DataPointer, IoSegment } from './prp';
export { QueuePair } from './queue-pair';
export type { QueueStats, SubmitOptions, QueuePairOptions, IoCallback, Transfer } from './queue-pair';
export { PolledCompletions, InterruptCompletions } from './completion-modes';
export type { CompletionMode, InterruptSource, Reaper } from './completion-modes';
export { NvmeRegisters, decodeCapabilities } from './registers';
export type { Capabilities, ControllerStatus } from './registers';
