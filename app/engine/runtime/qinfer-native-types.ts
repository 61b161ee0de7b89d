// Types of the quantized-inference functions of the addon (native/addon/qinfer_bindings.cc).
import type { Architecture } from '../../contract/model.js';
import type { Codebook, LatticeCodebook } from '../../domain/quantize/index.js';
import type { MappedFile, TensorRef } from '../native-types.js';
import type { EngineLinearKind, EngineModel } from './native-types.js';

/** Bytes of one code plane: a typed array, or a range of a memory-mapped file (read in place). */
export type CodePlane = Uint16Array | Uint8Array | { file: MappedFile; offset: number; bytes: number };

/**
 * One quantized linear layer as inference needs it: W^ = diag(sv) H_m (scale * Q) H_n^T diag(su).
 * codes: E8P / RVQ the uint16 E8P plane (m x nPadded/8); RTN b bytes per group of 8 packed levels.
 * residual: RVQ4 uint16 E8P plane, RVQ3 uint8 E8-shell plane; null otherwise.
 */
export interface QuantizedLinearSpec {
  m: number;
  n: number;
  codebook: Codebook;
  codes: CodePlane;
  residual: CodePlane | null;
  scale: number;
  residualScale: number | null;
  incoherence: boolean;
  su: Int8Array | Float32Array | null;
  sv: Int8Array | Float32Array | null;
}

export interface QinferNative {
  /** Replaces one linear of a model by its quantized version; returns its description. */
  qinferSetLinear(model: EngineModel, block: number, kind: EngineLinearKind, spec: QuantizedLinearSpec): string;
  /** A model whose every linear layer is quantized; weights: embeddings, norms, lm_head. */
  createQuantizedModel(
    config: Architecture,
    weights: Record<string, TensorRef>,
    layers: Array<{ block: number; kind: EngineLinearKind; spec: QuantizedLinearSpec }>,
  ): EngineModel;
  /** y = W^ x for tokens rows of x (tests, benchmarks); kernel picks the decode implementation. */
  qinferForward(spec: QuantizedLinearSpec, x: Float32Array, tokens: number, kernel?: 'auto' | 'scalar' | 'avx2' | 'avx512' | 'neon'): Float32Array;
  /** W^ (m x n) in float64 as the layer applies it. */
  qinferDequantize(spec: QuantizedLinearSpec): Float64Array;
  /** Seconds quantized layers spent in their Hadamard transforms and decode-matvecs since profiling was switched on; passing `on` then switches it and clears the counters. */
  qinferProfile(on?: boolean): { transformS: number; matvecS: number; calls: number; tokens: number };
  /** Decode-matvec kernels this CPU runs, timed on one thread over a cached m x n matrix of random codes. */
  qinferKernelTimes(o?: { m?: number; n?: number; reps?: number }): { codebook: LatticeCodebook; kernel: 'scalar' | 'avx2' | 'avx512' | 'neon'; nsPerGroup: number }[];
}
