// The quantized model folder (architecture.md, "Data on disk"):
//   config.json        the source config plus quantization_config: codebook, bits, seeds, scales,
//                      Hadamard factors and engine version - everything needed to load and reproduce it
//   model.safetensors  per quantized linear <name>.codes (E8P/RVQ: U16 E8P codes [m, n_pad / 8]; RTN:
//                      U8 [m, n_pad / 8 * bits], each group's 8 levels packed little-endian, b bits
//                      each), RVQ adds <name>.codes_residual (RVQ4 U16, RVQ3 U8 E8-shell indices),
//                      <name>.su / <name>.sv (+-1 sign vectors, I8; F32 real numbers once
//                      fine-tuning has folded the tuned norms into them); every other tensor (embeddings,
//                      norms, lm_head) in 16 bits (F32 sources become F16), except the final norm
//                      tuned end to end (F32). End-to-end fine-tuning of a source with tied embeddings
//                      adds its own lm_head.weight (the embedding's dtype) and sets config.json's
//                      tie_word_embeddings to false. 2-byte tensors come before 1-byte ones so every
//                      code plane stays aligned in the memory map.
//   tokenizer files    copied from the source
//   run.json           the run record (settings, per-layer metrics, timings, perplexities)
// Mixed widths (--target-bpw, format_version 2): a layer record may name its own codebook (the
// top-level codebook is every other layer's), and dense_layers lists the linears kept at 16 bits,
// stored as plain <name>.weight tensors. Uniform folders stay format_version 1, byte for byte as
// before; a version that knows only 1 refuses a mixed folder by its version.
// A folder is a model only once config.json exists; the job writes config.json last (quantize/job.ts).
// The loader (model/loader.ts) reads quantization_config with these schemas; the quantizer writes it.
import { z } from 'zod';

import { dtypeBytes, type SafetensorsDType } from './safetensors-writer.js';

import { CODEBOOKS, CalibrationSettings, codeBitsPerWeight, type Codebook } from '../../domain/quantize/index.js';

export const QUANT_METHOD = 'quip-sharp';
export const FORMAT_VERSION = 1;
/** Folders with per-layer codebooks or layers kept at 16 bits. */
export const MIXED_FORMAT_VERSION = 2;
export const ENGINE_NAME = 'quip-studio';
export const ENGINE_VERSION = '0.1.0';

/** Tokenizer and generation files copied from the source folder when present. */
export const COPIED_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'chat_template.jinja'];

export const HadamardRecord = z.object({
  n: z.number().int(),
  k: z.number().int(),
  pow2: z.number().int(),
  method: z.enum(['sylvester', 'hadamard', 'random-orthogonal']),
  /** How the order-K factor was built, e.g. "Paley I (q = 11)"; null for K = 1. */
  construction: z.string().nullable().optional(),
});
export type HadamardRecord = z.infer<typeof HadamardRecord>;

/** One quantized linear layer: W ~= diag(sv) H_m (scale * decode(codes)) H_n^T diag(su). */
export const QuantizedLayerRecord = z.object({
  /** Mixed widths only: this layer's codebook (absent: quantization_config.codebook). */
  codebook: z.enum(CODEBOOKS).optional(),
  m: z.number().int().positive(),
  n: z.number().int().positive(),
  /** n rounded up to a multiple of 8 (codes cover the padded width; padded columns are dropped). */
  nPadded: z.number().int().positive(),
  /** The layer's own seed (sign vectors), derived from the run seed and the layer name. */
  seed: z.number().int(),
  /** W~ / scale is what the codebook saw (RMS rho). */
  scale: z.number(),
  /** RVQ: the second stage encodes (residual * residualScale); null for one-stage codebooks. */
  residualScale: z.number().nullable(),
  /** Null when incoherence processing was off (no transform, no sign vectors). */
  hadamardIn: HadamardRecord.nullable(),
  hadamardOut: HadamardRecord.nullable(),
  tensors: z.object({
    codes: z.string(),
    codesResidual: z.string().nullable(),
    su: z.string().nullable(),
    sv: z.string().nullable(),
  }),
});
export type QuantizedLayerRecord = z.infer<typeof QuantizedLayerRecord>;

/** A linear layer kept at 16 bits in a mixed folder: its weight as a plain tensor. */
export const DenseLayerRecord = z.object({
  m: z.number().int().positive(),
  n: z.number().int().positive(),
  dtype: z.enum(['F16', 'BF16', 'F32']),
  tensor: z.string(),
});
export type DenseLayerRecord = z.infer<typeof DenseLayerRecord>;

export const QuantizationConfig = z.object({
  quant_method: z.literal(QUANT_METHOD),
  format_version: z.union([z.literal(FORMAT_VERSION), z.literal(MIXED_FORMAT_VERSION)]),
  engine: z.object({ name: z.string(), version: z.string() }),
  codebook: z.enum(CODEBOOKS),
  bits: z.number().int(),
  incoherence: z.boolean(),
  ldlq: z.boolean(),
  sigma: z.number(),
  rho: z.number(),
  tune_iters: z.number().int(),
  seed: z.number().int(),
  calibration: CalibrationSettings,
  /** The Hessian the proxy losses use: damped and normalised (spec section 1). */
  hessian: z.literal('damped-normalised'),
  /** The dtype of the unquantized tensors when they share one (F32 sources become F16). */
  unquantized_dtype: z.enum(['F16', 'BF16', 'F32']).optional(),
  layers: z.record(z.string(), QuantizedLayerRecord),
  /** Mixed widths: the target bits per linear weight the widths were allocated for. */
  target_bpw: z.number().optional(),
  /** Mixed widths: linears kept at 16 bits (not in `layers`). */
  dense_layers: z.record(z.string(), DenseLayerRecord).optional(),
});
export type QuantizationConfig = z.infer<typeof QuantizationConfig>;

/** The seed of one layer: FNV-1a over the layer name mixed with the run seed (stable everywhere). */
export function layerSeed(runSeed: number, name: string): number {
  let h = 0x811c9dc5 ^ (runSeed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= Math.imul(runSeed >>> 0, 0x9e3779b1) >>> 0;
  return h >>> 0;
}

/**
 * Bits of one layer including overhead: codes + sign vectors + scales (32-bit). Sign vectors count
 * at the dtype they are stored in (`dtypeOf`, from the safetensors header): I8 for plain +-1 signs,
 * F32 where fine-tuning made them real numbers.
 */
export function layerBits(l: QuantizedLayerRecord, codebook: Codebook, dtypeOf: (tensor: string) => SafetensorsDType): number {
  const codes = l.m * l.nPadded * codeBitsPerWeight(l.codebook ?? codebook);
  const signBits = (tensor: string | null, count: number) => (tensor ? count * 8 * dtypeBytes(dtypeOf(tensor)) : 0);
  const signs = signBits(l.tensors.su, l.n) + signBits(l.tensors.sv, l.m);
  const scales = 32 * (l.residualScale === null ? 1 : 2);
  return codes + signs + scales;
}

/** Bits of a layer kept at 16 bits (its weight as stored). */
export function denseLayerBits(d: DenseLayerRecord): number {
  return d.m * d.n * 8 * dtypeBytes(d.dtype);
}

/** Every linear layer's width: its codebook, or 'f16' (16 bits) for a dense layer. */
export function layerWidths(q: Pick<QuantizationConfig, 'codebook' | 'layers' | 'dense_layers'>): Record<string, Codebook | 'f16'> {
  const out: Record<string, Codebook | 'f16'> = {};
  for (const [name, l] of Object.entries(q.layers)) out[name] = l.codebook ?? q.codebook;
  for (const name of Object.keys(q.dense_layers ?? {})) out[name] = 'f16';
  return out;
}

export function isQuantizedConfig(config: unknown): boolean {
  const q = (config as { quantization_config?: { quant_method?: unknown } } | null)?.quantization_config;
  return !!q && q.quant_method === QUANT_METHOD;
}
