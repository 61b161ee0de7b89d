// Fine-tuning settings of a quantization run (spec section 6): off, in-block, or in-block plus
// end-to-end; epochs, learning rates (sign vectors apart), batch, held-out fraction, patience.
import { z } from 'zod';

import { SettingsError, type SettingField } from './errors.js';

export const FINETUNE_MODES = ['none', 'block', 'block+e2e'] as const;
export type FinetuneMode = (typeof FINETUNE_MODES)[number];

/** The reference recipe: Adam, lr 5e-5 (SU/SV 5e-4), 5 epochs, batch 8, a held-out split for the best
 * epoch, early stop after 3 epochs without improvement. */
export const FINETUNE_DEFAULTS = {
  mode: 'none' as FinetuneMode,
  epochs: 5,
  lr: 5e-5,
  lrSign: 5e-4,
  batch: 8,
  holdout: 0.1,
  patience: 3,
} as const;

export const FinetuneSettings = z.object({
  mode: z.enum(FINETUNE_MODES),
  epochs: z.number().int().min(0).max(1000),
  lr: z.number().min(0).max(1),
  lrSign: z.number().min(0).max(1),
  batch: z.number().int().min(1).max(100_000),
  holdout: z.number().min(0).lt(1),
  patience: z.number().int().min(1).max(1000),
});
export type FinetuneSettings = z.infer<typeof FinetuneSettings>;

export const FinetuneSettingsInput = FinetuneSettings.partial();
export type FinetuneSettingsInput = z.infer<typeof FinetuneSettingsInput>;

/** Fills defaults and checks ranges; a SettingsError names the setting that is wrong. */
export function resolveFinetuneSettings(input: FinetuneSettingsInput = {}): FinetuneSettings {
  const merged = { ...FINETUNE_DEFAULTS, ...Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) };
  const r = FinetuneSettings.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = String(issue.path[0] ?? 'mode');
    const value = (merged as Record<string, unknown>)[key];
    throw new SettingsError(`finetune.${key}` as SettingField, `${JSON.stringify(value)} is not valid: ${issue.message}`);
  }
  return r.data;
}
