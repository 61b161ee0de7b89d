// Settings of a quantization run: what the user chooses (bits, codebook family, incoherence, LDLQ,
// damping, scale, calibration size, seed, threads, fine-tuning), their defaults for a CPU
// workstation, and the one resolveSettings that fills the defaults and checks every value. The
// studio resolves once, when a run is estimated or started; the run's sidecar keeps the resolved
// settings and the job runs exactly those (a resume too, whatever the defaults are by then).
import { z } from 'zod';

import { CODEBOOK_FAMILIES, CODEBOOK_TABLE, CODEBOOKS, codebookFor, type CodebookFamily } from './codebooks.js';
import { SettingsError } from './errors.js';
import { FINETUNE_DEFAULTS, FinetuneSettings, FinetuneSettingsInput, resolveFinetuneSettings } from './finetune-settings.js';

export const Bits = z.union([z.literal(2), z.literal(3), z.literal(4)]);
export type Bits = z.infer<typeof Bits>;

export const DEFAULTS = {
  bits: 2 as Bits,
  codebook: 'e8p' as CodebookFamily,
  incoherence: true,
  rowScale: true,
  ldlq: true,
  sigma: 0.01,
  tuneIters: 0,
  /** Calibration: 128 sequences x 512 tokens on a CPU (the reference's 6144 x 4096 is for GPUs). More
   * is better, far from saturating: on SmolLM2 at 2 bits, 8 -> 32 sequences took WikiText-2 perplexity
   * from 113 to 82 (docs/quality-smollm2.md, "How the defaults were chosen"). */
  calibSamples: 128,
  calibCtx: 512,
  seed: 0,
} as const;

export const CalibrationSettings = z.object({
  /** A UTF-8 text file; null = the WikiText-2 training head shipped with the studio's data. */
  textFile: z.string().nullable(),
  samples: z.number().int().min(1).max(100_000),
  ctx: z.number().int().min(8).max(1 << 17),
});
export type CalibrationSettings = z.infer<typeof CalibrationSettings>;

/** The settings as the user gives them (anything left out takes its default). */
export const QuantizeSettingsInput = z.object({
  bits: z.number().optional(),
  codebook: z.string().optional(),
  incoherence: z.boolean().optional(),
  rowScale: z.boolean().optional(),
  ldlq: z.boolean().optional(),
  sigma: z.number().optional(),
  rho: z.number().optional(),
  tuneIters: z.number().optional(),
  calibTextFile: z.string().nullable().optional(),
  calibSamples: z.number().optional(),
  calibCtx: z.number().optional(),
  seed: z.number().optional(),
  threads: z.number().optional(),
  /** Fine-tuning; left out: off. */
  finetune: FinetuneSettingsInput.optional(),
  /** Bits per linear weight for the whole model (2 to 6): each layer gets its own width; null or left out: every layer at `bits`. */
  targetBpw: z.number().nullable().optional(),
});
export type QuantizeSettingsInput = z.infer<typeof QuantizeSettingsInput>;

/** The range of --target-bpw: all layers at 2 bits to well above all at 4. */
export const TARGET_BPW_RANGE = [2, 6] as const;

/** Resolved settings: what a run runs, recorded in the run record and (minus threads) in quantization_config. */
export const QuantizeSettings = z.object({
  bits: Bits,
  family: z.enum(CODEBOOK_FAMILIES),
  codebook: z.enum(CODEBOOKS),
  incoherence: z.boolean(),
  /** Row RMS folded into SV before the transform (quip/ldlq.h); records from before it had none. */
  rowScale: z.boolean().default(false),
  ldlq: z.boolean(),
  sigma: z.number().positive().max(10),
  rho: z.number().positive().max(100),
  tuneIters: z.number().int().min(0).max(10),
  calibration: CalibrationSettings,
  seed: z.number().int().min(0).max(0xffffffff),
  /** Threads for native work; null = all hardware threads. Never changes the result. */
  threads: z.number().int().min(1).max(1024).nullable(),
  /** Fine-tuning (spec section 6, app/engine/finetune); records from before it had none. */
  finetune: FinetuneSettings.default(() => ({ ...FINETUNE_DEFAULTS })),
  /**
   * Mixed widths (engine/quantize/allocate.ts): each linear layer gets E8P 2-bit, RVQ 3-bit, RVQ 4-bit
   * or stays at 16 bits so that the bits per linear weight (codes, sign vectors, scales) land at this
   * figure; null = every layer at `bits` with `codebook`. Records from before it had none.
   */
  targetBpw: z.number().min(TARGET_BPW_RANGE[0]).max(TARGET_BPW_RANGE[1]).nullable().default(null),
});
export type QuantizeSettings = z.infer<typeof QuantizeSettings>;

const isWhole = (x: number, min: number, max: number) => Number.isInteger(x) && x >= min && x <= max;

/** Fills defaults and checks every value; a SettingsError names the setting and says what to do. */
export function resolveSettings(input: QuantizeSettingsInput): QuantizeSettings {
  const bits = input.bits ?? DEFAULTS.bits;
  const family = (input.codebook ?? DEFAULTS.codebook).toLowerCase();
  const codebook = codebookFor(bits, family);
  const defaultRho = CODEBOOK_TABLE[codebook].defaultRho;
  const sigma = input.sigma ?? DEFAULTS.sigma;
  if (!(sigma > 0 && sigma <= 10)) throw new SettingsError('sigma', `${sigma} is out of range: the damping must be > 0 and <= 10 (default ${DEFAULTS.sigma}).`);
  const rho = input.rho ?? defaultRho;
  if (!(rho > 0 && rho <= 100)) throw new SettingsError('rho', `${rho} is out of range: the scale must be > 0 (default ${defaultRho} for ${codebook}).`);
  const tuneIters = input.tuneIters ?? DEFAULTS.tuneIters;
  if (!isWhole(tuneIters, 0, 10)) throw new SettingsError('tuneIters', `${tuneIters} is out of range: use a whole number from 0 to 10.`);
  const samples = input.calibSamples ?? DEFAULTS.calibSamples;
  if (!isWhole(samples, 1, 100_000)) throw new SettingsError('calibSamples', `${samples} is out of range: use a whole number from 1 to 100000.`);
  const ctx = input.calibCtx ?? DEFAULTS.calibCtx;
  if (!isWhole(ctx, 8, 1 << 17)) throw new SettingsError('calibCtx', `${ctx} is out of range: use a whole number of tokens from 8 up.`);
  const seed = input.seed ?? DEFAULTS.seed;
  if (!isWhole(seed, 0, 0xffffffff)) throw new SettingsError('seed', `${seed} is out of range: use a whole number from 0 to 4294967295.`);
  const threads = input.threads ?? null;
  if (threads !== null && !isWhole(threads, 1, 1024)) throw new SettingsError('threads', `${threads} is out of range: use a whole number from 1 up.`);
  const finetune = resolveFinetuneSettings(input.finetune ?? {});
  const targetBpw = input.targetBpw ?? null;
  if (targetBpw !== null) {
    if (!(targetBpw >= TARGET_BPW_RANGE[0] && targetBpw <= TARGET_BPW_RANGE[1])) {
      throw new SettingsError('targetBpw', `${targetBpw} is out of range: the target bits per weight must be from ${TARGET_BPW_RANGE[0]} to ${TARGET_BPW_RANGE[1]}.`);
    }
    if (family === 'rtn') throw new SettingsError('targetBpw', 'a target bits per weight mixes E8P and RVQ widths; it does not apply to the scalar rounding baseline (rtn).', 'UNSUPPORTED_PAIRING');
  }
  return QuantizeSettings.parse({
    bits,
    family: family as CodebookFamily,
    codebook,
    incoherence: input.incoherence ?? DEFAULTS.incoherence,
    rowScale: input.rowScale ?? DEFAULTS.rowScale,
    ldlq: input.ldlq ?? DEFAULTS.ldlq,
    sigma,
    rho,
    tuneIters,
    calibration: { textFile: input.calibTextFile ?? null, samples, ctx },
    seed,
    threads,
    finetune,
    targetBpw,
  });
}
