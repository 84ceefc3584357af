/** The fuzz seed asked for on the host (NODE_VFIO_FUZZ_SEED), handed to the guest, where the fuzz runs. */
export function fuzzSeedEnv(): Record<string, string> {
  const seed = process.env.NODE_VFIO_FUZZ_SEED;
  return seed === undefined || seed === '' ? {} : { NODE_VFIO_FUZZ_SEED: seed };
}
