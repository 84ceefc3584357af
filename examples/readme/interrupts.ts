import { AddressSpace, EduDevice } from 'node-vfio';

async function main(): Promise<void> {
  using space = AddressSpace.open();
  using edu = EduDevice.open(space, '0000:00:03.0');
  const irqs = edu.device.interrupts;

  const [msi] = irqs.enableMsi(1); // n vectors: 1..irqs.info(IrqIndex.MSI).count
  msi.on('interrupt', (n) => console.log(`MSI: ${n} interrupt(s)`));
  edu.raiseInterrupt(0x42); // edu raises an interrupt with status 0x42
  await msi.wait({ timeoutMs: 1000 }); // the next interrupt, or ETIMEDOUT
  console.log(`status 0x${edu.acknowledgePending().toString(16)}`); // edu wants its status written back
  irqs.disable(); // one mode at a time

  const intx = irqs.enableIntx();
  edu.startFactorial(10, true); // with an interrupt when done
  await intx.wait({ timeoutMs: 1000 });
  edu.acknowledgeInterrupt(edu.interruptStatus); // quiet the device, then
  intx.unmask(); // INTx is automasked by the kernel
  console.log(`10! = ${edu.factorialResult}`);
  console.log(`12! = ${await edu.factorial(12, { irq: intx })}`); // the same, done by edu's driver

  let seen = 0;
  edu.raiseInterrupt(1);
  for await (const n of intx.events({ signal: AbortSignal.timeout(5000) })) {
    // AbortError on abort
    seen += n;
    edu.acknowledgePending(intx); // acknowledge, and unmask INTx
    if (seen >= 3) break; // (the loop also ends when the vector is torn down)
    edu.raiseInterrupt(1);
  }
  console.log(`${seen} interrupts through the async iterator`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
