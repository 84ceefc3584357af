/**
 * The checks of {@link QueuePairOptions}, made before a queue pair
 * allocates or maps anything: TypeError or RangeError naming the option.
 */
import { checkFunction, checkInstance, checkInt, checkObject, kindOf } from '../../validate';
import type { QueuePairOptions } from './queue-pair';
import { NvmeRegisters } from './registers';

/** NVMe's largest queue: 65536 entries (CAP.MQES is 0's based, 16 bits). */
const MAX_ENTRIES = 0x10000;

/** @internal Throws for options a queue pair cannot be built from. */
export function checkQueuePairOptions(o: QueuePairOptions): void {
  checkObject(o, 'options');
  checkInt(o.id, 'id', 0, 0xffff);
  checkInt(o.entries, 'entries', 2, MAX_ENTRIES);
  checkInstance(o.registers, NvmeRegisters, 'registers');
  checkObject(o.space, 'space');
  checkFunction(o.space.map, 'space.map');
  checkInt(o.pageSize, 'pageSize', 4096, 1 << 27);
  if ((o.pageSize & (o.pageSize - 1)) !== 0) throw new RangeError(`pageSize must be a power of two, got ${o.pageSize}`);
  checkInt(o.prpPagesPerCommand, 'prpPagesPerCommand', 0, 1 << 20);
  checkObject(o.mode, 'mode');
  checkFunction(o.mode.attach, 'mode.attach');
  checkFunction(o.mode.kick, 'mode.kick');
  checkFunction(o.mode.idle, 'mode.idle');
  checkFunction(o.mode.detach, 'mode.detach');
  if (typeof o.defaultTimeoutMs !== 'number' || !(o.defaultTimeoutMs >= 0))
    throw new TypeError(
      `defaultTimeoutMs must be a non-negative number, not ${typeof o.defaultTimeoutMs === 'number' ? o.defaultTimeoutMs : kindOf(o.defaultTimeoutMs)}`,
    );
  checkFunction(o.health, 'health');
}
