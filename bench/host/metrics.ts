/**
 * The host lane's metrics: ids, what each times, and its target. Every
 * target bounds the overhead (library minus C, in ns per operation), except
 * irq.event's, which bounds the ratio of CPU time per event.
 */

/** One row of the host lane. */
export interface HostMetric {
  /** Unique, as it appears in bench/results/host.json. */
  id: string;
  label: string;
  /** The most the library may add to C: ns, or a ratio of the two times. */
  target: { overheadNs: number } | { ratio: number };
}

/**
 * MMIO targets: the issue sets 20 ns for read32 and 5 ns for write32. Reads
 * and writes of 8 and 16 bits cost what 32 bits cost, so they get the same
 * targets; 64 bits pass a bigint (a read allocates one, a write converts
 * one), so they get 1.5x the read's and 2x the write's: 30 and 10 ns.
 */
const MMIO_TARGETS = { read: { 8: 20, 16: 20, 32: 20, 64: 30 }, write: { 8: 5, 16: 5, 32: 5, 64: 10 } } as const;

const mmio = (['read', 'write'] as const).flatMap((access) =>
  ([8, 16, 32, 64] as const).map((bits): HostMetric => ({
    id: `mmio.${access}${bits}`,
    label: `Region.${access}${bits} of an mmap'd BAR`,
    target: { overheadNs: MMIO_TARGETS[access][bits] },
  })),
);

/** Every metric, in the order both sides measure them and the table lists them. */
export const HOST_METRICS: readonly HostMetric[] = [
  { id: 'map4k', label: 'AddressSpace.map(4 KiB) + unmap', target: { overheadNs: 150 } },
  { id: 'map4k.live1000', label: 'the same, 1,000 other mappings live', target: { overheadNs: 300 } },
  { id: 'link1024', label: 'IovaWindow.link(1,024 × 4 KiB) + unmap, per fragment', target: { overheadNs: 25 } },
  ...mmio,
  { id: 'irq.event', label: "interrupt (eventfd written as the loop waits) to 'interrupt' listener, CPU time", target: { ratio: 1.3 } },
  { id: 'irq.trigger.p50', label: "IrqVector.trigger() to 'interrupt' listener, p50", target: { overheadNs: 1500 } },
];
