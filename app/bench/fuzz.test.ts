// The bounded fuzz run of `npm test` (issue #16): a few hundred seeded mutations per loader, each
// batch in a child process; every case must end in success or a clean error, none may crash the
// process, hang past the bound or go over the memory goal. The long run is `quip bench fuzz`.
import { describe, expect, it } from 'vitest';

import { fuzzTable, runFuzz, type FuzzLoaderResult } from './fuzz.js';
import type { FuzzLoaderName } from './fuzz-loaders.js';

const CASES = Number(process.env.QUIP_FUZZ_CASES ?? 0);
// Under 20 s in all on a 2-core machine; the GGUF cases import a whole (tiny) model each.
const PLAN: Array<[FuzzLoaderName, number]> = [['safetensors', 400], ['config', 400], ['gguf', 300], ['chat-template', 300]];

describe('fuzzed loaders end in success or a clear error', () => {
  for (const [loader, cases] of PLAN) {
    it(`${loader}: ${CASES || cases} seeded mutations`, async () => {
      const [r] = await runFuzz({ loaders: [loader], cases: CASES || cases, seed: 16, timeoutMs: 20_000, batch: CASES || cases });
      console.log(fuzzTable([r]));
      const report = (x: FuzzLoaderResult) => x.failures.map((f) => `case ${f.index} ${f.kind}: ${f.message} [${f.mutation}]`).join('\n');
      expect({ crashes: r.crashes, hangs: r.hangs, unclean: r.unclean, overMemory: r.overMemory }, report(r)).toEqual({ crashes: 0, hangs: 0, unclean: 0, overMemory: 0 });
      expect(r.cases).toBe(CASES || cases);
      expect(r.peakRssBytes).toBeLessThan(r.memoryGoalBytes);
    }, 120_000);
  }
});
