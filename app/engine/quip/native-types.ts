// Types of the QuIP# numeric core exported by the native addon (native/addon/quip_bindings.cc).
import type { HadamardFactor } from '../../contract/model.js';
import type { Codebook } from '../../domain/quantize/index.js';
import type { ProgressFn, TensorRef } from '../native-types.js';
import type { GaussianSource } from './rate-distortion.js';

/** The codebooks are the domain's (app/domain/quantize/codebooks.ts: one row each). */
export type CodebookName = Codebook;

/** The native core's own row of a codebook (native/src/quip/e8p.cc kInfo); the TypeScript side reads
 * the domain's table, which codebook-table.test.ts checks against this. */
export interface NativeCodebookInfo {
  name: CodebookName;
  bits: number;
  /** RMS the quantizer input is scaled to by default. */
  defaultRho: number;
  /** Residual-stage scale of RVQ codebooks; 0 otherwise. */
  s2: number;
  /** Number of code arrays per layer (1 or 2). */
  stages: number;
}

export interface QuantizeLinearOptions {
  /** W is m x n row-major (m outputs, n inputs). */
  m: number;
  n: number;
  codebook: CodebookName;
  /** Randomized Hadamard transform on both sides (default true). */
  incoherence?: boolean;
  /** BlockLDLQ feedback; false = nearest rounding (default true). */
  ldlq?: boolean;
  /** Damping: H <- H / mean(diag H) + sigma I (default 0.01). */
  sigma?: number;
  /** RMS of the scaled W~ the codebook sees; 0 or absent = the codebook's default. */
  rho?: number;
  /** Residual scale of rvq3 / rvq4; 0 or absent = default (2.04 / 3.45). */
  s2?: number;
  /** Block coordinate-descent refinement passes (default 0). */
  tuneIters?: number;
  /**
   * With incoherence: normalise each row of W to RMS 1 before the transform and fold the row RMS
   * into sv (then a Float32Array), so every output channel gets the same relative error (default true).
   */
  rowScale?: boolean;
  /** Seed of the sign vectors SU (stream 0) and SV (stream 1), splitmix64 (default 0). */
  seed?: number;
}

/**
 * Code arrays, one per stage, m x nPadded/8 groups row-major:
 * e8p [Uint16Array]; rvq3 [Uint16Array (E8P), Uint8Array (E8 shell)]; rvq4 [Uint16Array, Uint16Array];
 * rtnB [Uint8Array of m x nPadded level indices, level l = value l - (2^B - 1)/2].
 */
export type QuipCodes = Array<Uint16Array | Uint8Array>;

/** What is stored per quantized layer (enough for dequantizeLinear and inference). */
export interface QuantizedLinear {
  m: number;
  n: number;
  /** n rounded up to a multiple of 8 (codes cover the padded width). */
  nPadded: number;
  codebook: CodebookName;
  rho: number;
  s2: number;
  /** W~ was divided by scale before rounding: W^~ = decode(codes) * scale. */
  scale: number;
  incoherence: boolean;
  seed: number;
  /** +-1 input-side signs (length n); all +1 without incoherence. */
  su: Int8Array;
  /** +-1 output-side signs (length m), or with row scales the real vector SV (.) row RMS. */
  sv: Int8Array | Float32Array;
  hadamardIn: HadamardFactor;
  hadamardOut: HadamardFactor;
  codes: QuipCodes;
}

export interface QuantizeLinearResult extends QuantizedLinear {
  /** W^ in the original basis, m x n row-major. */
  dequantized: Float32Array;
  /** tr((W^-W) H (W^-W)^T) / tr(W H W^T) with the damped, normalised H the quantizer used. */
  proxyLoss: number;
  /** ||W^ - W||^2 / ||W||^2. */
  frobeniusError: number;
  /** Damping actually used (larger than sigma when the Cholesky needed it). */
  sigmaUsed: number;
  /** null when float32 Cholesky worked; "float64" or "float64, sigma = X" otherwise. */
  choleskyFallback: string | null;
  seconds: number;
}

export interface BenchFigure {
  name: string;
  variant: string;
  value: number;
  unit: string;
  comparison: string;
}

export interface QuipNative {
  /** How the orthogonal Hadamard transform of size n is built: n = k * pow2 (see spec section 2). */
  hadamardPlan(n: number): HadamardFactor;
  /** Quantizes one linear layer off the JS thread (progress: JSON {stage, fraction} events). */
  quantizeLinear(
    W: TensorRef | Float32Array,
    H: Float64Array,
    options: QuantizeLinearOptions,
    onProgress?: ProgressFn,
    cancel?: Int32Array,
  ): Promise<QuantizeLinearResult>;
  /** W^ (m x n, original basis) from a stored layer. */
  dequantizeLinear(layer: Pick<QuantizedLinear, 'm' | 'n' | 'codebook' | 'scale' | 's2' | 'incoherence' | 'su' | 'sv' | 'codes'>): Float32Array;
  /** quantizeLinear's proxy loss for any W^ of W (another quantizer's, say), H damped and normalised with sigma. */
  proxyLoss(W: TensorRef | Float32Array, What: TensorRef | Float32Array, H: Float64Array, options: { m: number; n: number; sigma?: number }): Promise<number>;
  /** A layer as a Gaussian source for rate-distortion bounds (see rate-distortion.ts); H's eigenvalues
   * by Householder tridiagonalisation and bisection. */
  gaussianSource(W: TensorRef | Float32Array, H: Float64Array, options: { m: number; n: number; sigma?: number }): Promise<GaussianSource>;
  /** In place: x <- H_n^T (su .* x) (the input side of a quantized layer). Returns x. */
  rhtInput(x: Float32Array, su: Int8Array): Float32Array;
  /** In place: y <- sv .* (H_m y) (the output side). Returns y. */
  rhtOutput(y: Float32Array, sv: Int8Array): Float32Array;
  /** The 256 E8P magnitude patterns in code-index order (256 x 8). */
  e8pSourceTable(): Float32Array;
  codebookInfo(name: CodebookName): NativeCodebookInfo;
  quipBenchKernels(options: { threads?: number; quick?: boolean }, onProgress?: ProgressFn, cancel?: Int32Array): Promise<BenchFigure[]>;
}
