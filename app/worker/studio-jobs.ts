// The studio's long jobs in the job process: a quantization run (the quantize job's own pipeline,
// its events passed on as progress data) and a GGUF import. Rows of kinds.ts. (Chat replies are
// served by a loaded model's long-lived `modelHost` job: ./model-host.ts.)
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

import { ImportGgufResult } from '../contract/channels.js';
import { importNote } from '../domain/gguf-import.js';
import { actualGroups, EvaluationSettings, predictedGroups, QuantizeEvent, QuantizeSettings, RateObservation, resolveEvaluation, resolveSettings } from '../domain/quantize/index.js';
import { weightFileBytes } from '../engine/model/safetensors.js';
import { synthModel } from '../engine/runtime/synth.js';
import { importGguf } from '../engine/gguf/index.js';
import { inspectModel } from '../engine/model/inspect.js';
import { defaultEvalText, runQuantizeJob, type QuantizeJobResult } from '../engine/quantize/job.js';
import { defineJobKind, NoEvents } from './runtime.js';

export const quantizeKind = defineJobKind({
  /** settings: resolved by the studio (app/services/runs), run exactly as they are, a resume too. */
  /** evaluation: resolved by the studio too (null: none); left out (older sidecars): the defaults,
   * the same as `quip quantize`'s (app/domain/quantize/evaluation.ts EVAL_DEFAULTS). */
  params: z.object({ modelDir: z.string().min(1), out: z.string().min(1), settings: QuantizeSettings, evaluation: EvaluationSettings.nullable().optional() }),
  events: QuantizeEvent,
  /** observation: the job's phase timings against the cost model's prediction (the studio keeps it
   * in machine-rates.json to calibrate later estimates); null for a resumed run. */
  result: z.object({ out: z.string(), observation: RateObservation.nullable().default(null) }),
  run: async (p, ctx) => {
    const e = p.evaluation === undefined ? resolveEvaluation() : p.evaluation;
    // Without a text of its own: the shipped WikiText-2 test (none if the file is missing).
    const textFile = e ? (e.textFile ?? defaultEvalText()) : null;
    const r = await runQuantizeJob({
      model: p.modelDir,
      out: p.out,
      settings: p.settings,
      evaluation: e && textFile && (e.textFile !== null || existsSync(textFile)) ? { textFile, ctx: e.ctx, maxWindows: e.windows, full: e.full } : null,
      onEvent: (e) => ctx.progress({ data: e, ...(e.type === 'eta' && e.layersTotal ? { fraction: e.layersDone / e.layersTotal } : {}) }),
      cancel: ctx.cancel,
    });
    return { out: r.out, observation: observationOf(r, p.modelDir, 'run', `${path.basename(p.modelDir)} ${p.settings.bits}-bit${p.settings.finetune.mode !== 'none' ? ` ${p.settings.finetune.mode}` : ''}`) };
  },
});

/** A finished single-session job as an observation of this machine's rates (null when resumed). */
export function observationOf(r: QuantizeJobResult, modelDir: string, source: RateObservation['source'], label: string): RateObservation | null {
  const actual = actualGroups(r.record);
  if (!r.estimate || !actual) return null;
  const { bytesOnDisk, bitsPerParameter } = r.record.sizes;
  return {
    at: new Date().toISOString(),
    source,
    label,
    params: bitsPerParameter > 0 ? Math.round((bytesOnDisk * 8) / bitsPerParameter) : 0,
    threads: r.record.threads,
    predicted: predictedGroups(r.estimate, weightFileBytes(modelDir) ?? 0),
    actual,
    units: r.estimate.units,
  };
}

/** The shapes the probe quantizes: one as small as the sample (64 wide, where per-token overheads
 * dominate), one 512 wide (where the FLOP rates do); a few seconds each on two cores. */
export const PROBE_MODELS = [
  { shape: { hidden: 64, intermediate: 172, layers: 5, heads: 8, kvHeads: 4, vocab: 512, context: 512 }, samples: 16, ctx: 128 },
  { shape: { hidden: 512, intermediate: 1376, layers: 4, heads: 8, kvHeads: 8, vocab: 2048, context: 512 }, samples: 4, ctx: 128 },
] as const;

/**
 * The short probe the studio runs the first time it estimates on a machine: a random-weight model of
 * PROBE_MODEL's shape quantized end to end as a run would be (calibration, 2-bit quantization, one
 * epoch of in-block and end-to-end fine-tuning, a few perplexity windows), its phases timed against
 * the cost model. Everything is written to a temporary folder, removed after.
 */
export const probeRatesKind = defineJobKind({
  params: z.object({}).strict(),
  events: NoEvents,
  result: z.object({ observations: z.array(RateObservation) }),
  run: async (_p, ctx) => ({ observations: await probeRates({ cancel: ctx.cancel }) }),
});

/** The probe itself (the job kind's, and `quip bench estimate`'s): its observations of this machine. */
export async function probeRates(o: { cancel?: Int32Array; threads?: number } = {}): Promise<RateObservation[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-probe-'));
  const out: RateObservation[] = [];
  try {
    for (const [i, { shape, samples, ctx }] of PROBE_MODELS.entries()) {
      const model = path.join(dir, `model-${i}`);
      await synthModel({ ...shape, out: model, seed: 1 });
      const text = defaultEvalText();
      const r = await runQuantizeJob({
        model,
        out: path.join(dir, `out-${i}`),
        settings: resolveSettings({ bits: 2, calibSamples: samples, calibCtx: ctx, threads: o.threads, finetune: { mode: 'block+e2e', epochs: 1, batch: 4 } }),
        evaluation: existsSync(text) ? { textFile: text, ctx, maxWindows: 4, full: true } : null,
        cancel: o.cancel,
      });
      const obs = observationOf(r, model, 'probe', `probe: synthetic ${shape.hidden}-wide, ${shape.layers} blocks, 2-bit, block+e2e`);
      if (obs) out.push(obs);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

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
