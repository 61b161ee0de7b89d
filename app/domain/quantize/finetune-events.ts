// Progress events of fine-tuning, part of the quantization job's event stream (so the studio can
// draw the train / held-out curves live): per epoch of each in-block tuning step, per tuned group,
// per finished block, per end-to-end epoch.
import { z } from 'zod';

export const TUNED_GROUPS = ['qkv', 'o', 'gateUp'] as const;
export type TunedGroup = (typeof TUNED_GROUPS)[number];

export const FtEpochEvent = z.object({
  type: z.literal('ft-epoch'),
  block: z.number().int(),
  group: z.enum(TUNED_GROUPS),
  epoch: z.number().int(),
  trainLoss: z.number(),
  heldoutLoss: z.number(),
  seconds: z.number(),
});

export const FtGroupEvent = z.object({
  type: z.literal('ft-group'),
  block: z.number().int(),
  group: z.enum(TUNED_GROUPS),
  initialHeldoutLoss: z.number(),
  bestHeldoutLoss: z.number(),
  bestEpoch: z.number().int(),
  epochs: z.number().int(),
  earlyStopped: z.boolean(),
  seconds: z.number(),
  tokensPerSecond: z.number(),
});

/** A block is finished: held-out MSE of its output against the original block's. */
export const FtBlockEvent = z.object({
  type: z.literal('ft-block'),
  block: z.number().int(),
  heldoutError: z.number(),
});

export const FtEndToEndEpochEvent = z.object({
  type: z.literal('ft-e2e-epoch'),
  epoch: z.number().int(),
  trainLoss: z.number(),
  heldoutLoss: z.number(),
  seconds: z.number(),
});

export type FtEpochEvent = z.infer<typeof FtEpochEvent>;
export type FtGroupEvent = z.infer<typeof FtGroupEvent>;
export type FtBlockEvent = z.infer<typeof FtBlockEvent>;
export type FtEndToEndEpochEvent = z.infer<typeof FtEndToEndEpochEvent>;

export const FINETUNE_EVENTS = [FtEpochEvent, FtGroupEvent, FtBlockEvent, FtEndToEndEpochEvent] as const;
/** What in-block tuning reports (app/engine/finetune/block.ts). */
export type FinetuneEvent = FtEpochEvent | FtGroupEvent;
/** What end-to-end tuning reports (app/engine/finetune/e2e.ts). */
export type EndToEndEvent = FtEndToEndEpochEvent;
/** Every fine-tuning event of a quantization job's stream. */
export type QuantizeFinetuneEvent = FinetuneEvent | FtBlockEvent | EndToEndEvent;
