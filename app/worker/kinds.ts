// Every kind of work the job process does, one row each: params, events and result schemas and the
// code that runs it. Adding a kind is adding a row here; the studio starts it with
// jobs.run('<kind>', params, {onEvent}) and gets typed params, events and result from this table
// (app/services/jobs/client.ts).
import { z } from 'zod';

import { SimdPath } from '../contract/channels.js';
import { ModelInspection } from '../contract/model.js';
import { inspectModel } from '../engine/model/inspect.js';
import { native } from '../engine/native.js';
import { defineJobKind, NoEvents } from './runtime.js';
import { tokenKldKind } from './compare-jobs.js';
import { modelHostKind } from './model-host.js';
import { importGgufKind, probeRatesKind, quantizeKind } from './studio-jobs.js';

const CpuInfo = z.object({ summary: z.string(), simd: SimdPath, avx2: z.boolean(), avx512: z.boolean(), neon: z.boolean(), threads: z.number().int() });

export const jobKinds = {
  /** Architecture, parameters, linear layers with Hadamard factors and sizes of a local model folder. */
  inspect: defineJobKind({
    params: z.object({ path: z.string().min(1), repoId: z.string().nullable().default(null), revision: z.string().nullable().default(null) }),
    events: NoEvents,
    result: ModelInspection,
    run: async (p) => inspectModel(p),
  }),
  /** What the native core sees of this CPU (features it dispatches on, threads). */
  cpuInfo: defineJobKind({
    params: z.object({}).strict(),
    events: NoEvents,
    result: CpuInfo,
    run: async () => native().cpuInfo(),
  }),
  /** A GGUF file converted into a model folder, then inspected (progress: fraction of tensors written). */
  importGguf: importGgufKind,
  /** A quantization run of the studio with resolved settings (events: the quantize job's QuantizeEvent). */
  quantize: quantizeKind,
  /** The short probe that calibrates estimates on this machine the first time (a small synthetic run). */
  probeRates: probeRatesKind,
  /** A loaded model serving chat and completion requests (HostInput in, HostEvent events out) until cancelled. */
  modelHost: modelHostKind,
  /** Compare's token by token: a base model and its runs on one text, each token's KLD and top-5 tokens. */
  tokenKld: tokenKldKind,
};

export type JobKinds = typeof jobKinds;
