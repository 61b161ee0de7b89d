// The event stream of a quantization job: phase changes, each finished linear layer, ETA, warnings,
// checkpoints and the final summary. The CLI prints them as NDJSON (--json) or a progress bar and a
// table; the studio charts them (app/services/runs/service.ts receives them typed, through the
// quantize job kind's events schema).
import { z } from 'zod';

import { FINETUNE_EVENTS } from './finetune-events.js';

import { LayerMetrics, PerplexityRecord } from './record.js';
import { QuantizeSettings } from './settings.js';

/** 'finetune': end-to-end fine-tuning after the last block (in-block tuning is part of 'quantize'). */
export const PHASES = ['load', 'calibrate', 'quantize', 'finetune', 'save', 'evaluate', 'done'] as const;
export const Phase = z.enum(PHASES);
export type Phase = z.infer<typeof Phase>;

export const EstimateEvent = z.object({
  type: z.literal('estimate'),
  settings: QuantizeSettings,
  threads: z.number().int(),
  tokens: z.number().int(),
  seconds: z.object({ calibration: z.number(), hessians: z.number(), quantization: z.number(), finetune: z.number(), evaluation: z.number(), allocation: z.number().optional(), total: z.number() }),
  peakBytes: z.number(),
  /** The calibration text's path, or "model-sampled, seed S" (no text given and none at hand). */
  calibrationSource: z.string().optional(),
});

export const PhaseEvent = z.object({
  type: z.literal('phase'),
  phase: Phase,
  message: z.string(),
});

/** One finished linear layer: the metrics the run record keeps (record.ts LayerMetrics). */
export const LayerEvent = LayerMetrics.extend({ type: z.literal('layer') });
export type LayerEvent = z.infer<typeof LayerEvent>;

export const BlockEvent = z.object({
  type: z.literal('block'),
  block: z.number().int(),
  blocks: z.number().int(),
  seconds: z.number(),
  /** The block's quantized output is checkpointed: a cancelled run resumes after it. */
  checkpointed: z.boolean(),
});

export const EtaEvent = z.object({
  type: z.literal('eta'),
  layersDone: z.number().int(),
  layersTotal: z.number().int(),
  elapsedSeconds: z.number(),
  etaSeconds: z.number().nullable(),
});

export const WarningEvent = z.object({
  type: z.literal('warning'),
  message: z.string(),
  layer: z.string().optional(),
});

export const ResumeEvent = z.object({
  type: z.literal('resume'),
  fromBlock: z.number().int(),
  checkpoint: z.string(),
});

export const SummaryEvent = z.object({
  type: z.literal('summary'),
  out: z.string(),
  codebook: z.string(),
  bits: z.number(),
  bitsPerWeight: z.number(),
  bytesOnDisk: z.number(),
  layers: z.number().int(),
  meanProxyLoss: z.number(),
  worstProxyLoss: z.number(),
  perplexity: z.number().nullable(),
  perplexityFull: z.number().nullable(),
  /** What the perplexity was measured on and its spread (the run record's; absent from older jobs). */
  perplexityInfo: PerplexityRecord.nullable().optional(),
  /** Bytes of the weight files (the size every face shows). */
  weightBytes: z.number().optional(),
  /** The run's time: every session's active time (record.ts runSeconds). */
  seconds: z.number(),
  peakRssBytes: z.number(),
});

export const QuantizeEvent = z.discriminatedUnion('type', [
  EstimateEvent,
  PhaseEvent,
  LayerEvent,
  BlockEvent,
  EtaEvent,
  WarningEvent,
  ResumeEvent,
  SummaryEvent,
  ...FINETUNE_EVENTS,
]);
export type QuantizeEvent = z.infer<typeof QuantizeEvent>;
export type QuantizeEventOf<T extends QuantizeEvent['type']> = Extract<QuantizeEvent, { type: T }>;
