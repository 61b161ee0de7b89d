// The run record (run.json in a quantized folder): what was asked, what every layer came out as, how
// long each phase took, and the perplexities. The Compare view and `quip compare` read it.
import { z } from 'zod';

import { FinetuneRecord } from './finetune-record.js';
import { QuantizeSettings } from './settings.js';

export const RUN_RECORD_FILE = 'run.json';
export const RUN_RECORD_VERSION = 1;

export const LayerMetrics = z.object({
  block: z.number().int(),
  name: z.string(),
  kind: z.enum(['q', 'k', 'v', 'o', 'gate', 'up', 'down']),
  /** [m, n]: outputs, inputs. */
  shape: z.tuple([z.number().int(), z.number().int()]),
  /** tr((W^-W) H (W^-W)^T) / tr(W H W^T) with the damped, normalised H the quantizer used. */
  proxyLoss: z.number(),
  /** ||W^-W||_F^2 / ||W||_F^2. */
  frobeniusError: z.number(),
  seconds: z.number(),
  /** How the Cholesky of H succeeded: 'float32' | 'float64' | 'float64+sigma=...'. */
  cholesky: z.string(),
  /** --target-bpw runs: this layer's width ('f16': kept at 16 bits, no proxy loss) and its measured
   * sensitivity (output KLD with this layer alone at 2 bits). Absent in uniform runs. */
  width: z.enum(['e8p', 'rvq3', 'rvq4', 'f16']).optional(),
  kld2: z.number().optional(),
});
export type LayerMetrics = z.infer<typeof LayerMetrics>;

export const PerplexityRecord = z.object({
  /** The evaluation text's path. */
  dataset: z.string(),
  /** Its name for people ("WikiText-2 test"; evaluation.ts textName). Absent in older records. */
  text: z.string().optional(),
  ctx: z.number().int(),
  windows: z.number().int(),
  tokens: z.number().int(),
  quantized: z.number(),
  /** The source model on the same windows (null when not measured). */
  full: z.number().nullable(),
  /** Standard error of the mean NLL over windows (nats): the figure is quantized +- quantized *
   * stdErr (evaluation.ts perplexitySpread). Absent in older records; null with one window. */
  stdErr: z.number().nullable().optional(),
  /** The same for the source model's figure. */
  fullStdErr: z.number().nullable().optional(),
  /** Standard error of the mean per-window NLL difference, quantized - source (nats): the ratio
   * quantized / full is known to about +- this fraction, far tighter than either figure alone. */
  ratioStdErr: z.number().nullable().optional(),
  /** The run calibrated (and fine-tuned) on this same text: the figure flatters it. */
  calibratedOnText: z.boolean().optional(),
});
export type PerplexityRecord = z.infer<typeof PerplexityRecord>;

/** One session of a run (a resumed run has several): when it started and how long its job worked. */
export const RunSession = z.object({ startedAt: z.string(), seconds: z.number() });
export type RunSession = z.infer<typeof RunSession>;

export const RunRecord = z.object({
  version: z.literal(RUN_RECORD_VERSION),
  source: z.object({ dir: z.string(), fingerprint: z.string() }),
  settings: QuantizeSettings,
  /** Which H the proxy losses use. */
  proxyLossHessian: z.literal('damped-normalised'),
  /** Later blocks are calibrated on the quantized model's hidden states (as the reference does). */
  calibrationFlow: z.literal('quantized-inputs'),
  /** The calibration text's path, or "model-sampled, seed S" (absent in records from before it was kept). */
  calibrationSource: z.string().optional(),
  threads: z.number().int(),
  layers: z.array(LayerMetrics),
  timings: z.record(z.string(), z.number()),
  /** Peak resident memory of the process at the end of each phase of this run (bytes). */
  phasePeakRss: z.record(z.string(), z.number()).optional(),
  peakRssBytes: z.number(),
  /** Blocks done before a resume (0 for an uninterrupted run). */
  resumedFromBlock: z.number().int(),
  /** Every session's active time, resumes included (absent in older records: runSeconds falls back
   * to the phase timings, which a checkpoint carries across resumes). */
  sessions: z.array(RunSession).optional(),
  sizes: z.object({
    /** The folder as the job wrote it (weight files, config, tokenizer; not run.json). Every face
     * shows weightBytes instead (bytes of the .safetensors files, estimate.ts estimateWeightBytes). */
    bytesOnDisk: z.number(),
    /** Bytes of the weight files (.safetensors); absent in older records (count them on disk). */
    weightBytes: z.number().optional(),
    linearWeights: z.number(),
    /** Bits per linear weight: codes + sign vectors + scales. */
    bitsPerWeight: z.number(),
    /** Bits per parameter of the whole folder's tensors (16-bit embeddings and norms included). */
    bitsPerParameter: z.number(),
  }),
  perplexity: PerplexityRecord.nullable(),
  /** Fine-tuning: each block's held-out output error and tuning steps, end to end (null: --ft none). */
  finetune: FinetuneRecord.nullable().optional(),
  startedAt: z.string(),
  finishedAt: z.string(),
});
export type RunRecord = z.infer<typeof RunRecord>;

export function proxyLossSummary(layers: ReadonlyArray<Pick<LayerMetrics, 'name' | 'proxyLoss'>>): { mean: number; worst: number; worstLayer: string | null } {
  if (!layers.length) return { mean: 0, worst: 0, worstLayer: null };
  let sum = 0, worst = -Infinity, worstLayer: string | null = null;
  for (const l of layers) {
    sum += l.proxyLoss;
    if (l.proxyLoss > worst) {
      worst = l.proxyLoss;
      worstLayer = l.name;
    }
  }
  return { mean: sum / layers.length, worst, worstLayer };
}

/** A run's time, the one figure every face shows: the sum of its sessions' active time (a resumed
 * run counts every session, not only its last); older records: the sum of the phase timings. */
export function runSeconds(record: Pick<RunRecord, 'timings'> & { sessions?: RunSession[] | undefined }): number {
  if (record.sessions?.length) return record.sessions.reduce((a, s) => a + s.seconds, 0);
  return Object.values(record.timings).reduce((a, x) => a + x, 0);
}
