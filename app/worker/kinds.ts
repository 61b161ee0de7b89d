// Every kind of work the job process does, one row each: params and result schemas and the code that
// runs it. Adding a kind is adding a row here; the studio starts it with jobs.run('<kind>', params)
// and gets typed params and result from this table (app/services/jobs/client.ts).
import { z } from 'zod';

import { native } from '../engine/native.js';
import { defineJobKind } from './runtime.js';

const CpuInfo = z.object({ summary: z.string(), avx2: z.boolean(), avx512: z.boolean(), neon: z.boolean(), threads: z.number().int() });

export const jobKinds = {
  /** What the native core sees of this CPU (features it dispatches on, threads). */
  cpuInfo: defineJobKind({
    params: z.object({}).strict(),
    result: CpuInfo,
    run: async () => native().cpuInfo(),
  }),
};

export type JobKinds = typeof jobKinds;
