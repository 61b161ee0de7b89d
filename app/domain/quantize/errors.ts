// A setting that cannot be used, named as the New run form names it. SettingsError is the app's
// UserError (so every face shows its message as it is, with its code); the CLI words it with its own
// flag instead (app/cli/commands/quantize.ts maps each field to its flag).
import { UserError } from '../../util/errors.js';

/** Every setting of a quantization run, with the name the studio shows for it. */
export const SETTING_LABELS = {
  bits: 'Bits',
  codebook: 'Codebook',
  sigma: 'Damping σ',
  rho: 'Scale ρ',
  tuneIters: 'Tune iterations',
  calibSamples: 'Calibration samples',
  calibCtx: 'Calibration length (tokens)',
  seed: 'Seed',
  threads: 'Threads',
  targetBpw: 'Target bits per weight',
  'finetune.mode': 'Fine-tuning',
  'finetune.epochs': 'Fine-tuning epochs',
  'finetune.lr': 'Fine-tuning learning rate',
  'finetune.lrSign': 'Sign-vector learning rate',
  'finetune.batch': 'Fine-tuning batch',
  'finetune.holdout': 'Held-out fraction',
  'finetune.patience': 'Early-stop patience',
  'evaluation.windows': 'Perplexity windows',
  'evaluation.ctx': 'Perplexity window length (tokens)',
} as const;
export type SettingField = keyof typeof SETTING_LABELS;

export class SettingsError extends UserError {
  /** The message is `${label} ${detail}`; `detail` alone says what is wrong with the value. */
  constructor(
    readonly field: SettingField,
    readonly detail: string,
    code: 'UNSUPPORTED_PAIRING' | 'BAD_SETTING' = 'BAD_SETTING',
  ) {
    super(`${SETTING_LABELS[field]} ${detail}`, code);
    this.name = 'SettingsError';
  }
}
