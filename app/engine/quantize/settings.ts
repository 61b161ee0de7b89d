// Settings of a quantization job: what the user chooses (bits, codebook family, incoherence, LDLQ,
// damping, scale, calibration size, seed, threads), their defaults for a CPU workstation, the
// codebook each bits/codebook pairing means, and estimates of what a run costs before it starts.
// Pure (zod only), so the renderer can import it too.
import { z } from 'zod';

import { FINETUNE_DEFAULTS, FinetuneSettings, FinetuneSettingsInput, resolveFinetuneSettings } from '../finetune/settings.js';

/** The concrete codebooks of the numeric core. e8p = E8P 2-bit; rvq3/rvq4 = E8P + residual stage;
 * rtnB = scalar round-to-nearest at B bits (the baseline; same RHT and BlockLDLQ around it). */
export const CODEBOOKS = ['e8p', 'rvq3', 'rvq4', 'rtn2', 'rtn3', 'rtn4'] as const;
export type Codebook = (typeof CODEBOOKS)[number];

/** What the user picks: the lattice family (E8P, with RVQ at 3/4 bits), or scalar rounding.
 * 'rvq' is accepted as an explicit name for the residual codebooks and needs 3 or 4 bits. */
export const CODEBOOK_FAMILIES = ['e8p', 'rvq', 'rtn'] as const;
export type CodebookFamily = (typeof CODEBOOK_FAMILIES)[number];

export const Bits = z.union([z.literal(2), z.literal(3), z.literal(4)]);
export type Bits = z.infer<typeof Bits>;

/** Default scale rho per codebook: the quantizer sees W~ scaled to RMS rho (spec section 2).
 * Chosen on SmolLM2-135M (`quip bench quality-sweep`, docs/quality-smollm2.md "How the defaults were
 * chosen": all 210 linear layers, 8 x 512 calibration tokens, proxy loss over the layers and WikiText-2
 * perplexity, 8 windows of 512, llama.cpp's convention). Proxy loss is the steadier signal: perplexity at
 * one rho moves by 10-20% at 2 bits and 2% at 4 bits between sign-vector seeds.
 * E8P 1.03 (Gaussian-MSE optimal; the paper ran 0.9): proxy mean 0.0246 / 0.0237 / 0.0260 / 0.0325 at
 * rho 0.9 / 1.03 / 1.15 / 1.3, perplexity 158 / 113 (93 with seed 1) / 152 / 337; on stories260k too
 * (in-domain, seeds 1-3: 65 / 83 / 75 at 1.03 against 94 / 111 / 117 at 0.9).
 * RVQ3 0.98: proxy mean 0.0087 / 0.0072 / 0.0080 at 0.8 / 0.98 / 1.1, perplexity 42.5 / 35.5 / 38.4.
 * RVQ4 1.03: at 0.9 the proxy loss is 11-12% lower (mean 0.00209 against 0.00234, with or without row
 * scales; 0.8 is no better), but perplexity is not: SmolLM2 26.95 against 26.78 (a tie within the seed
 * spread), stories260k WikiText-2 4-bit +3.7% against -2.3% of full precision (job.test.ts).
 * Scalar levels sit at half-integer steps; the RMS at which 4 / 8 / 16 uniform levels minimise Gaussian
 * MSE is 1.0 / 1.71 / 2.98. */
export const DEFAULT_RHO: Record<Codebook, number> = {
  e8p: 1.03,
  rvq3: 0.98,
  rvq4: 1.03,
  rtn2: 1.0,
  rtn3: 1.71,
  rtn4: 2.98,
};

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
  /** Fine-tuning (--ft and the --ft-* flags); left out: off. */
  finetune: FinetuneSettingsInput.optional(),
});
export type QuantizeSettingsInput = z.infer<typeof QuantizeSettingsInput>;

/** Resolved settings, recorded in the run record and (minus threads) in quantization_config. */
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
});
export type QuantizeSettings = z.infer<typeof QuantizeSettings>;

export class SettingsError extends Error {
  constructor(
    message: string,
    readonly code: 'UNSUPPORTED_PAIRING' | 'BAD_SETTING' = 'BAD_SETTING',
  ) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** The concrete codebook of a bits/family pairing; throws SettingsError for pairings that do not exist. */
export function codebookFor(bits: number, family: string): Codebook {
  if (!(CODEBOOK_FAMILIES as readonly string[]).includes(family))
    throw new SettingsError(`Unknown codebook "${family}". Use e8p (E8P lattice, residual at 3/4 bits) or rtn (scalar rounding).`, 'UNSUPPORTED_PAIRING');
  if (bits !== 2 && bits !== 3 && bits !== 4)
    throw new SettingsError(`Unsupported bits ${bits} with codebook ${family}: choose 2, 3 or 4 bits.`, 'UNSUPPORTED_PAIRING');
  if (family === 'rtn') return `rtn${bits}` as Codebook;
  if (family === 'rvq') {
    if (bits === 2)
      throw new SettingsError('Unsupported pairing: the residual codebook (rvq) needs 3 or 4 bits; at 2 bits use --codebook e8p.', 'UNSUPPORTED_PAIRING');
    return bits === 3 ? 'rvq3' : 'rvq4';
  }
  return bits === 2 ? 'e8p' : bits === 3 ? 'rvq3' : 'rvq4';
}

/** Bits per weight of the codes alone (overhead of sign vectors and scales comes on top). */
export function codeBitsPerWeight(codebook: Codebook): number {
  return { e8p: 2, rvq3: 3, rvq4: 4, rtn2: 2, rtn3: 3, rtn4: 4 }[codebook];
}

/** Fills defaults and checks every value; messages name the setting and what to do. */
export function resolveSettings(input: QuantizeSettingsInput): QuantizeSettings {
  const bits = input.bits ?? DEFAULTS.bits;
  const family = (input.codebook ?? DEFAULTS.codebook).toLowerCase();
  const codebook = codebookFor(bits, family);
  const sigma = input.sigma ?? DEFAULTS.sigma;
  if (!(sigma > 0 && sigma <= 10)) throw new SettingsError(`--sigma ${sigma} is out of range: the damping must be > 0 and <= 10 (default 0.01).`);
  const rho = input.rho ?? DEFAULT_RHO[codebook];
  if (!(rho > 0 && rho <= 100)) throw new SettingsError(`--rho ${rho} is out of range: the scale must be > 0 (default ${DEFAULT_RHO[codebook]} for ${codebook}).`);
  const tuneIters = input.tuneIters ?? DEFAULTS.tuneIters;
  if (!Number.isInteger(tuneIters) || tuneIters < 0 || tuneIters > 10)
    throw new SettingsError(`--tune-iters ${tuneIters} is out of range: use a whole number from 0 to 10.`);
  const samples = input.calibSamples ?? DEFAULTS.calibSamples;
  if (!Number.isInteger(samples) || samples < 1 || samples > 100_000)
    throw new SettingsError(`--calib-samples ${samples} is out of range: use a whole number from 1 to 100000.`);
  const ctx = input.calibCtx ?? DEFAULTS.calibCtx;
  if (!Number.isInteger(ctx) || ctx < 8 || ctx > 1 << 17) throw new SettingsError(`--ctx ${ctx} is out of range: use a whole number of tokens from 8 up.`);
  const seed = input.seed ?? DEFAULTS.seed;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new SettingsError(`--seed ${seed} is out of range: use a whole number from 0 to 4294967295.`);
  const threads = input.threads ?? null;
  if (threads !== null && (!Number.isInteger(threads) || threads < 1 || threads > 1024))
    throw new SettingsError(`--threads ${threads} is out of range: use a whole number from 1 up.`);
  let finetune: FinetuneSettings;
  try {
    finetune = resolveFinetuneSettings(input.finetune ?? {});
  } catch (err) {
    throw new SettingsError((err as Error).message);
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
  });
}

// ---- estimates --------------------------------------------------------------------------------

/** The shape facts an estimate needs (from the model's config). */
export interface ModelShape {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  vocabSize: number;
}

export interface Estimate {
  /** Calibration tokens actually used (samples x min(ctx, model context)). */
  tokens: number;
  seconds: { calibration: number; hessians: number; quantization: number; evaluation: number; total: number };
  /** Peak resident bytes: one block in float32 + its 4 Hessians (float64) + calibration activations. */
  peakBytes: number;
  parts: { blockWeights: number; hessians: number; activations: number; workspace: number };
}

/** Sustained rate per thread, from `quip bench quantize` on a synth 1024 x 2816 model (2-core AVX2
 * machine: 45 s measured where 8 GFLOP/s per thread predicted 24 s). */
const FLOPS_PER_THREAD = 4e9;
const E8P_CANDIDATE_OPS = 2 * 256 * 12; // 2 shifts x 256 magnitude patterns x ~12 operations per group

function linearShapes(s: ModelShape): Array<{ m: number; n: number }> {
  const kv = s.numKeyValueHeads * s.headDim;
  const q = s.numHeads * s.headDim;
  return [
    { m: q, n: s.hiddenSize },
    { m: kv, n: s.hiddenSize },
    { m: kv, n: s.hiddenSize },
    { m: s.hiddenSize, n: q },
    { m: s.intermediateSize, n: s.hiddenSize },
    { m: s.intermediateSize, n: s.hiddenSize },
    { m: s.hiddenSize, n: s.intermediateSize },
  ];
}

/** What a run will cost on `threads` threads, from the model's shapes and the settings alone;
 * `sampled`: the calibration sequences are first generated by the model (counted in calibration). */
export function estimateRun(shape: ModelShape, settings: QuantizeSettings, threads: number, contextLength: number, evalTokens = 0, sampled = false): Estimate {
  const ctx = Math.min(settings.calibration.ctx, contextLength);
  const tokens = settings.calibration.samples * ctx;
  const lin = linearShapes(shape);
  const blockParams = lin.reduce((a, l) => a + l.m * l.n, 0);
  const rate = FLOPS_PER_THREAD * Math.max(1, threads);
  // Forward through every block once (2 flops per weight per token) plus attention (2 * ctx * width).
  const attn = 4 * ctx * shape.numHeads * shape.headDim;
  // (calibration never runs the lm_head: only block inputs are needed)
  const fwd = shape.numLayers * tokens * (2 * blockParams + attn);
  // Hessians: n^2 per token for each of the 4 distinct inputs (symmetric: half of it).
  const h = shape.hiddenSize, q = shape.numHeads * shape.headDim, f = shape.intermediateSize;
  const hessFlops = shape.numLayers * tokens * (h * h * 2 + q * q + f * f);
  // Quantization: Cholesky/LDL n^3/3 per input, feedback m n^2 per layer, codebook search per group.
  const pad = (n: number) => Math.ceil(n / 8) * 8;
  let quantFlops = 0;
  for (const l of lin) {
    const n = pad(l.n);
    const stages = settings.codebook === 'rvq3' || settings.codebook === 'rvq4' ? 2 : 1;
    const search = settings.codebook.startsWith('rtn') ? 8 * 4 : E8P_CANDIDATE_OPS * stages;
    quantFlops += (settings.ldlq ? 2 * l.m * n * n : 0) + (l.m * n / 8) * search * (1 + settings.tuneIters) + n * n * n / 3;
    if (settings.tuneIters > 0) quantFlops += settings.tuneIters * 2 * l.m * n * n;
    if (settings.incoherence) quantFlops += 4 * l.m * n * Math.log2(Math.max(2, n));
  }
  quantFlops *= shape.numLayers;
  // Sampling decodes every calibration token through every block and the lm_head, one token at a time.
  const sampling = sampled ? (shape.numLayers * tokens * (2 * blockParams + attn) + tokens * 2 * shape.vocabSize * shape.hiddenSize) : 0;
  const calibration = (fwd + sampling) / rate;
  const hessians = hessFlops / rate;
  const quantization = quantFlops / rate;
  const evaluation = (evalTokens * shape.numLayers * (2 * blockParams + attn) + evalTokens * 2 * shape.vocabSize * h) / rate;
  const blockWeights = blockParams * 4 * 2; // original float32 + its dequantized copy
  const hessians64 = (2 * h * h + q * q + f * f) * 8;
  const activations = tokens * h * 4 * 2; // block input and output hidden states, float32
  const workspace = tokens / settings.calibration.samples * Math.max(f, q + 2 * shape.numKeyValueHeads * shape.headDim) * 4 * 4; // one sequence's intermediates
  const peakBytes = blockWeights + hessians64 + activations + workspace;
  return {
    tokens,
    seconds: { calibration, hessians, quantization, evaluation, total: calibration + hessians + quantization + evaluation },
    peakBytes,
    parts: { blockWeights, hessians: hessians64, activations, workspace },
  };
}

export function formatBytes(b: number): string {
  if (b >= 1 << 30) return `${(b / (1 << 30)).toFixed(1)} GiB`;
  if (b >= 1 << 20) return `${(b / (1 << 20)).toFixed(1)} MiB`;
  if (b >= 1 << 10) return `${(b / (1 << 10)).toFixed(1)} KiB`;
  return `${Math.round(b)} B`;
}

export function formatSeconds(s: number): string {
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
