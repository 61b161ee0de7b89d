// What a run record keeps of fine-tuning (the Compare view reads run records too).
import { z } from 'zod';

import { TUNED_GROUPS } from './finetune-events.js';

/** What the run record keeps per tuned group. */
export const FinetuneGroupRecord = z.object({
  block: z.number().int(),
  group: z.enum(TUNED_GROUPS),
  initialHeldoutLoss: z.number(),
  bestHeldoutLoss: z.number(),
  bestEpoch: z.number().int(),
  earlyStopped: z.boolean(),
  seconds: z.number(),
  tokensPerSecond: z.number(),
  epochs: z.array(z.object({ epoch: z.number().int(), trainLoss: z.number(), heldoutLoss: z.number() })),
});
export type FinetuneGroupRecord = z.infer<typeof FinetuneGroupRecord>;

/** What the run record keeps of fine-tuning. */
export const FinetuneRecord = z.object({
  mode: z.enum(['block', 'block+e2e']),
  /** Per block: held-out MSE of the finished block against the original block's outputs, and each
   * tuning step (after q/k/v, o, gate/up). */
  blocks: z.array(z.object({ block: z.number().int(), heldoutError: z.number(), groups: z.array(FinetuneGroupRecord) })),
  endToEnd: z
    .object({
      initialHeldoutLoss: z.number(),
      bestHeldoutLoss: z.number(),
      bestEpoch: z.number().int(),
      seconds: z.number(),
      tokensPerSecond: z.number(),
      epochs: z.array(z.object({ epoch: z.number().int(), trainLoss: z.number(), heldoutLoss: z.number() })),
      /** lm_head: tuned along with the sign vectors and norms; untied when the source tied it to the
       * embeddings (the folder then carries its own lm_head.weight and tie_word_embeddings false).
       * Absent in records written before lm_head was tuned (it stayed frozen then). */
      lmHead: z.object({ tuned: z.boolean(), untied: z.boolean() }).optional(),
    })
    .nullable(),
  seconds: z.number(),
});
export type FinetuneRecord = z.infer<typeof FinetuneRecord>;
