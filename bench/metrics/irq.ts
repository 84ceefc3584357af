/**
 * MSI-X interrupt to JavaScript callback: nvme's MSI-X vector 0 on an
 * eventfd (DeviceInterrupts.enableMsix), signalled by VFIO's loopback
 * trigger (IrqVector.trigger: the kernel signals the same eventfd a device's
 * MSI-X would), timed until the 'interrupt' listener runs. The C side makes
 * the same system calls: the trigger ioctl, epoll_wait (libuv's), read of
 * the eventfd.
 */
import { BackendKind } from '../../lib';
import { AddonPrepared, BDF, BenchContext, Metric } from './types';

export function irqMetrics(backend: BackendKind): Metric[] {
  return [
    {
      id: 'irq.msix.latency',
      label: 'MSI-X trigger to JS callback',
      backend,
      devices: [BDF.nvme],
      samples: 100,
      warmup: 20,
      per: 1,
      cSpec: { op: 'irq', bdf: BDF.nvme },
      addon({ device }: BenchContext): AddonPrepared {
        const interrupts = device(BDF.nvme).interrupts;
        const [vector] = interrupts.enableMsix(1);
        let started = 0n;
        let arrived: ((ns: number) => void) | undefined;
        const onInterrupt = (): void => arrived?.(Number(process.hrtime.bigint() - started));
        vector.on('interrupt', onInterrupt);
        return {
          run: () =>
            new Promise<number>((resolve) => {
              arrived = resolve;
              started = process.hrtime.bigint();
              vector.trigger();
            }),
          close: () => {
            vector.off('interrupt', onInterrupt);
            interrupts.disable();
          },
          cSpec: {},
        };
      },
    },
  ];
}
