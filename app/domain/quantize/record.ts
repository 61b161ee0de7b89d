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
});
export type LayerMetrics = z.infer<typeof LayerMetrics>;

export const PerplexityRecord = z.object({
  dataset: z.string(),
  ctx: z.number().int(),
  windows: z.number().int(),
  tokens: z.number().int(),
  quantized: z.number(),
  /** The source model on the same windows (null when not measured). */
  full: z.number().nullable(),
});
export type PerplexityRecord = z.infer<typeof PerplexityRecord>;

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
  sizes: z.object({
    bytesOnDisk: z.number(),
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
