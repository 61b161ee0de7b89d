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
  /** lm_head shares the embedding table (one table in the source instead of two). */
  tiedEmbeddings?: boolean;
}

export interface Estimate {
  /** Calibration tokens actually used (samples x min(ctx, model context)). */
  tokens: number;
  /** calibration: the forward passes (with Hessian taps, then advancing); finetune: in-block and end
   * to end (0 without fine-tuning; the full number of epochs, so early stopping only shortens it). */
  seconds: { calibration: number; hessians: number; quantization: number; finetune: number; evaluation: number; total: number };
  /** Peak resident bytes: the runtime and the mapped source model, the calibration states, then the
   * largest of the per-block work (Hessians, quantizing the widest layer, in-block fine-tuning) and
   * end-to-end fine-tuning. */
  peakBytes: number;
  /** seconds.finetune in its two steps (the job's ETA adds what end to end will take). */
  finetuneSeconds: { block: number; endToEnd: number };
  parts: { runtime: number; model: number; activations: number; hessians: number; quantization: number; workspace: number; finetuneBlock: number; finetuneEndToEnd: number };
}

// Sustained rates per thread, fitted to the phase timings of real runs: SmolLM2-135M, 32 x 512
// calibration tokens, 2 threads, a quiet 2-core Zen 4 (run records of `quip quantize --bits 2|4
// --calib-samples 32 --ctx 512 [--ft block+e2e --ft-epochs 1 --ft-batch 1]`, docs/quality-smollm2.md):
// advance 68 s (one forward), Hessians 98 s (forward + accumulation), quantization 24 s, in-block
// fine-tuning 916-1219 s, end to end 454-478 s. Machines without AVX-512 or FMA are slower.
const FORWARD_FLOPS_PER_THREAD = 30e9;
const HESSIAN_FLOPS_PER_THREAD = 27e9;
const QUANTIZE_FLOPS_PER_THREAD = 6e9;
const TRAIN_FLOPS_PER_THREAD = 28e9;
const E8P_CANDIDATE_OPS = 2 * 256 * 12; // 2 shifts x 256 magnitude patterns x ~12 operations per group
/** Node, the addon and the tokenizer (stories260k peaks at ~110 MB in all), plus float32 copies of
 * source weights the garbage collector frees late: SmolLM2 and a 1024 x 2816 synth model both peaked
 * ~210 MB above the sum of the parts below and 110 MB. Small models are overestimated by that much. */
const RUNTIME_BYTES = 320 * 2 ** 20;
/** Bytes per source parameter: models arrive as 16-bit safetensors (imports and downloads alike). */
const SOURCE_BYTES_PER_PARAM = 2;

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

/** Number of held-out calibration sequences of fine-tuning (block_trainer.cc split_sequences). */
function heldoutSequences(sequences: number, holdout: number): number {
  if (holdout <= 0 || sequences < 2) return 0;
  return Math.min(Math.max(Math.round(holdout * sequences), 1), sequences - 1);
}

/** What a run will cost on `threads` threads, from the model's shapes and the settings alone;
 * `sampled`: the calibration sequences are first generated by the model (counted in calibration). */
export function estimateRun(shape: ModelShape, settings: QuantizeSettings, threads: number, contextLength: number, evalTokens = 0, sampled = false): Estimate {
  const ctx = Math.min(settings.calibration.ctx, contextLength);
  const samples = settings.calibration.samples;
  const tokens = samples * ctx;
  const lin = linearShapes(shape);
  const blockParams = lin.reduce((a, l) => a + l.m * l.n, 0);
  const t = Math.max(1, threads);
  const h = shape.hiddenSize, q = shape.numHeads * shape.headDim, kv = shape.numKeyValueHeads * shape.headDim, f = shape.intermediateSize;
  const V = shape.vocabSize;
  // One block's forward per token: 2 flops per weight plus attention (scores and values, 2 * ctx * width).
  const blockFwd = 2 * blockParams + 4 * ctx * q;
  // (calibration never runs the lm_head: only block inputs are needed)
  const fwd = shape.numLayers * tokens * blockFwd;
  const sampling = sampled ? (shape.numLayers * tokens * blockFwd + tokens * 2 * V * h) : 0;
  // Every block runs forward twice: once with the Hessian taps, once to advance the states.
  const calibration = (2 * fwd + sampling) / (FORWARD_FLOPS_PER_THREAD * t);
  // Hessians: n^2 per token for each of the 4 distinct inputs (symmetric: half of it).
  const hessians = (shape.numLayers * tokens * (h * h * 2 + q * q + f * f)) / (HESSIAN_FLOPS_PER_THREAD * t);
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
  const quantization = (quantFlops * shape.numLayers) / (QUANTIZE_FLOPS_PER_THREAD * t);
  // Fine-tuning, in forward passes over the calibration tokens (backward = 2 forwards). In-block, per
  // block: the original block's outputs, then per tuned group (q/k/v, o, gate/up) the loss on every
  // sequence before the first epoch and per epoch a step on each training sequence and the held-out
  // loss, the block's held-out error, and advancing the tuner's states. End to end: the teacher and
  // the student, both with the lm_head, the same way.
  const ft = settings.finetune;
  const held = ft.mode === 'none' ? 0 : heldoutSequences(samples, ft.holdout) / samples;
  const epochPasses = 3 * (1 - held) + held;
  const blockPasses = ft.mode === 'none' ? 0 : 2 + 3 * (1 + ft.epochs * epochPasses) + held;
  const modelFwd = shape.numLayers * blockFwd + 2 * V * h;
  const e2ePasses = ft.mode === 'block+e2e' ? 2 + ft.epochs * (4 * (1 - held) + 2 * held) : 0;
  const finetuneSeconds = { block: (blockPasses * fwd) / (TRAIN_FLOPS_PER_THREAD * t), endToEnd: (e2ePasses * tokens * modelFwd) / (TRAIN_FLOPS_PER_THREAD * t) };
  const finetune = finetuneSeconds.block + finetuneSeconds.endToEnd;
  const evaluation = (evalTokens * modelFwd) / (FORWARD_FLOPS_PER_THREAD * t);

  // Memory. The source is mapped and every page of it is read.
  const runtime = RUNTIME_BYTES;
  const model = SOURCE_BYTES_PER_PARAM * (shape.numLayers * (blockParams + 2 * h) + V * h * (shape.tiedEmbeddings ? 1 : 2) + h);
  const activations = tokens * h * 4; // the calibration states (hidden, float32)
  const workspace = ctx * Math.max(f, q + 2 * kv) * 4 * 4; // one sequence's intermediates
  // The block's 4 Hessians in float64, and the widest once more while it is handed to the job.
  const hessians64 = (2 * h * h + q * q + f * f + Math.max(h, q, f) ** 2) * 8;
  // quantize_linear's buffers for the widest layer: H in float64 and three n x n float32 (damped H,
  // its factor, L), and about ten m x n float32 (transformed, padded, feedback, result).
  const quantBytes = Math.max(...lin.map((l) => 20 * pad(l.n) ** 2 + 40 * l.m * pad(l.n)));
  // Training caches per token of one block (block_trainer.h BlockCache): 8 of width h, 4 of the
  // key/value width, 5 of the MLP width and the attention probabilities (heads x ctx).
  const cachePerToken = (8 * h + 4 * kv + 5 * f + shape.numHeads * ctx) * 4;
  // In-block: the tuner's states and the original outputs, one block's weights with gradients and two
  // Adam moments, one sequence's caches.
  const finetuneBlock = ft.mode === 'none' ? 0 : 2 * tokens * h * 4 + blockParams * 4 * 4 + ctx * cachePerToken;
  // End to end: every block's weights in float32; lm_head with its gradient, two Adam moments and the
  // best epoch's copy; one sequence's caches through every block; four tables of logits (teacher,
  // student, their gradient); the calibration embeddings.
  const finetuneEndToEnd = ft.mode === 'block+e2e'
    ? shape.numLayers * blockParams * 4 + V * h * 4 * 5 + shape.numLayers * ctx * cachePerToken + 4 * ctx * V * 4 + tokens * h * 4
    : 0;
  const perBlock = hessians64 + quantBytes + workspace + finetuneBlock;
  const peakBytes = runtime + model + activations + Math.max(perBlock, finetuneEndToEnd);
  return {
    tokens,
    seconds: { calibration, hessians, quantization, finetune, evaluation, total: calibration + hessians + quantization + finetune + evaluation },
    peakBytes,
    finetuneSeconds,
    parts: { runtime, model, activations, hessians: hessians64, quantization: quantBytes, workspace, finetuneBlock, finetuneEndToEnd },
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
