// The studio's long jobs in the job process: a quantization run (the quantize job's own pipeline,
// its events passed on as progress data) and a GGUF import. Rows of kinds.ts. (Chat replies are
// served by a loaded model's long-lived `modelHost` job: ./model-host.ts.)
import { existsSync } from 'node:fs';
import { z } from 'zod';

import { ImportGgufResult } from '../contract/channels.js';
import { importNote } from '../domain/gguf-import.js';
import { QuantizeEvent, QuantizeSettings } from '../domain/quantize/index.js';
import { importGguf } from '../engine/gguf/index.js';
import { inspectModel } from '../engine/model/inspect.js';
import { defaultEvalText, runQuantizeJob } from '../engine/quantize/job.js';
import { defineJobKind } from './runtime.js';

/** How much perplexity evaluation a studio run does after quantizing (a few windows keep it short). */
const EVAL_WINDOWS = 8;
const EVAL_CTX = 256;

export const quantizeKind = defineJobKind({
  /** settings: resolved by the studio (app/services/runs), run exactly as they are, a resume too. */
  params: z.object({ modelDir: z.string().min(1), out: z.string().min(1), settings: QuantizeSettings }),
  events: QuantizeEvent,
  result: z.object({ out: z.string() }),
  run: async (p, ctx) => {
    const r = await runQuantizeJob({
      model: p.modelDir,
      out: p.out,
      settings: p.settings,
      // Perplexity on the shipped WikiText-2 test (the Compare view plots it); none if the file is missing.
      evaluation: existsSync(defaultEvalText()) ? { textFile: defaultEvalText(), ctx: EVAL_CTX, maxWindows: EVAL_WINDOWS, full: true } : null,
      onEvent: (e) => ctx.progress({ data: e, ...(e.type === 'eta' && e.layersTotal ? { fraction: e.layersDone / e.layersTotal } : {}) }),
      cancel: ctx.cancel,
    });
    return { out: r.out };
  },
});

const IMPORT_PHASES = { checking: 'Reading the GGUF header', tensors: 'Converting tensors', hashing: 'Checksumming the source', finishing: 'Writing the model folder', done: 'Imported' } as const;

/** The importer's progress (app/engine/gguf/import.ts ImportProgress). */
const ImportGgufEvent = z.object({
  phase: z.enum(['checking', 'tensors', 'hashing', 'finishing', 'done']),
  /** Tensors written so far and in all. */
  done: z.number().int(),
  total: z.number().int(),
  tensor: z.string().optional(),
});

export const importGgufKind = defineJobKind({
  params: z.object({ file: z.string().min(1), outDir: z.string().min(1), force: z.boolean().default(false) }),
  events: ImportGgufEvent,
  result: ImportGgufResult,
  run: async (p, ctx) => {
    const r = await importGguf(p.file, p.outDir, {
      force: p.force,
      signal: ctx.signal,
      onProgress: (e) =>
        ctx.progress({
          message: e.phase === 'tensors' && e.tensor ? `${IMPORT_PHASES.tensors}: ${e.tensor}` : IMPORT_PHASES[e.phase],
          ...(e.total > 0 ? { fraction: e.done / e.total } : {}),
          data: e,
        }),
    });
    const inspection = await inspectModel({ path: r.outDir });
    return { inspection, lossy: r.lossy, note: importNote(r.lossy), warnings: r.warnings, seconds: r.seconds };
  },
});
