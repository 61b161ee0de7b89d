// What the studio knows about a model: its architecture, parameters, linear layers with their
// Hadamard factorisation, and estimated quantized sizes. Produced by app/engine/model/inspect.ts,
// printed by `quip inspect`, shown by the Models page.
import { z } from 'zod';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'qwen3', 'smollm3'] as const;

export const RopeScaling = z.object({
  type: z.string(), // 'linear' | 'llama3' | 'dynamic' | ...
  factor: z.number(),
  lowFreqFactor: z.number().optional(),
  highFreqFactor: z.number().optional(),
  originalMaxPositionEmbeddings: z.number().optional(),
});

export const Architecture = z.object({
  modelType: z.enum(SUPPORTED_MODEL_TYPES),
  family: z.string(), // e.g. "Llama", "Mistral", "Qwen2"
  hiddenSize: z.number().int(),
  intermediateSize: z.number().int(),
  numLayers: z.number().int(),
  numHeads: z.number().int(),
  numKeyValueHeads: z.number().int(),
  headDim: z.number().int(),
  vocabSize: z.number().int(),
  contextLength: z.number().int(),
  ropeTheta: z.number(),
  ropeScaling: RopeScaling.nullable(),
  rmsNormEps: z.number(),
  tiedEmbeddings: z.boolean(),
  attentionBias: z.boolean(), // q/k/v bias (qwen2)
  torchDtype: z.string().nullable(),
  // Options of newer families, present only when the config switches them on (absent: the plain
  // Llama block).
  /** RMSNorm of each query and key head before RoPE (qwen3: self_attn.q_norm / k_norm). */
  qkNorm: z.boolean().optional(),
  /** Tokens a sliding-window layer attends to, itself included: keys at (p - window, p]. */
  slidingWindow: z.number().int().optional(),
  /** The layers (indices) that attend over slidingWindow tokens; the others see the whole past. */
  slidingLayers: z.array(z.number().int()).optional(),
  /** Layers (indices) without rotary embeddings (smollm3's no_rope_layers entries of 0). */
  noRopeLayers: z.array(z.number().int()).optional(),
});
export type Architecture = z.infer<typeof Architecture>;

/** n = K * 2^k; how the studio builds the orthogonal Hadamard transform of size n. */
export const HadamardFactor = z.object({
  n: z.number().int(),
  /** The non-power-of-two factor K (1 when n is a power of two). */
  k: z.number().int(),
  /** 2^k. */
  pow2: z.number().int(),
  /** 'sylvester' (K = 1), 'hadamard-K' (a constructed order-K Hadamard), or the documented fallback. */
  method: z.enum(['sylvester', 'hadamard', 'random-orthogonal']),
  /** How the order-K factor was obtained, e.g. "Paley I (q = 11)"; null for K = 1. */
  construction: z.string().nullable(),
});
export type HadamardFactor = z.infer<typeof HadamardFactor>;

export const LinearKind = z.enum(['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
export type LinearKind = z.infer<typeof LinearKind>;

export const LinearLayer = z.object({
  name: z.string(), // e.g. "model.layers.0.self_attn.q_proj"
  block: z.number().int(),
  kind: LinearKind,
  outFeatures: z.number().int(), // m
  inFeatures: z.number().int(), // n
  dtype: z.string(),
  hadamardIn: HadamardFactor, // the n side
  hadamardOut: HadamardFactor, // the m side
  /** n rounded up to a multiple of 8 for BlockLDLQ (equal to n when it already is). */
  paddedIn: z.number().int(),
});
export type LinearLayer = z.infer<typeof LinearLayer>;

export const ParameterCounts = z.object({
  total: z.number().int(),
  linear: z.number().int(), // the weights QuIP# quantizes
  embedding: z.number().int(), // token embedding (+ lm_head when untied)
  other: z.number().int(), // norms, biases
});

export const SizeEstimate = z.object({
  bits: z.union([z.literal(2), z.literal(3), z.literal(4), z.literal(16)]),
  bytes: z.number().int(),
  /** Bits per linear-layer weight including codes, sign vectors and scales. */
  bitsPerLinearWeight: z.number(),
});

export const TokenizerSummary = z.object({
  kind: z.string(), // 'BPE' | 'Unigram' | ...
  vocabSize: z.number().int(),
  bosToken: z.string().nullable(),
  eosToken: z.string().nullable(),
  addBos: z.boolean(),
  hasChatTemplate: z.boolean(),
});

export const ModelSource = z.object({
  kind: z.enum(['local', 'hub', 'sample']),
  path: z.string(), // the folder on disk
  repoId: z.string().nullable(),
  revision: z.string().nullable(),
});

export const ModelInspection = z.object({
  source: ModelSource,
  architecture: Architecture,
  parameters: ParameterCounts,
  linears: z.array(LinearLayer),
  sizes: z.array(SizeEstimate),
  tokenizer: TokenizerSummary.nullable(),
  weightFiles: z.array(z.object({ file: z.string(), bytes: z.number().int(), tensors: z.number().int() })),
  /** A quantized folder records how it was made; null for a full-precision model. */
  quantization: z.record(z.string(), z.unknown()).nullable(),
  warnings: z.array(z.string()),
});
export type ModelInspection = z.infer<typeof ModelInspection>;
