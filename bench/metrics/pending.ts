/**
 * Metrics whose subject is still being written. Each becomes a Metric in
 * its own file (addon side through the library, C side as a native-bench
 * op) once its module has landed; until then the report lists it as
 * pending, with no numbers.
 */
import { PendingMetric } from './types';

export const PENDING: PendingMetric[] = [
  {
    id: 'irq.msix.latency',
    label: 'MSI-X interrupt to JavaScript callback latency',
    target: 'report',
    pending: 'lib/interrupts.ts (the eventfd watcher\'s TypeScript side) has not landed in git',
  },
  {
    id: 'nvme.randread4k.iops',
    label: 'NVMe 4 KiB random read IOPS vs the kernel\'s nvme driver',
    target: 'report',
    pending: 'lib/drivers/nvme/ (the userspace NVMe driver) has not landed in git',
  },
];
