// The QuIP# numeric core for TypeScript callers: typed wrappers over the native addon. Options left out
// take the domain's defaults (app/domain/quantize: the settings' DEFAULTS and the codebook table), so
// the TypeScript side never depends on the defaults the bindings keep for other callers.
import { UserError } from '../../util/errors.js';
import { native, type ProgressFn, type TensorRef } from '../native.js';
import { CODEBOOK_TABLE, CODEBOOKS, DEFAULTS, isCodebook } from '../../domain/quantize/index.js';
import type { QuantizeLinearOptions, QuantizeLinearResult, QuantizedLinear } from './native-types.js';

export * from './rate-distortion.js';
export * from './native-types.js';

/** Progress events of quantizeLinear, parsed. */
export type QuantizeProgress = { stage: 'ldlq'; fraction: number } | { stage: 'tune'; iteration: number; of: number };

export interface QuantizeCall {
  onProgress?: (p: QuantizeProgress) => void;
  cancel?: Int32Array;
}

/** Quantizes one linear layer W (m x n) with its input second moment H (n x n, float64). */
export async function quantizeLinear(
  W: TensorRef | Float32Array,
  H: Float64Array,
  options: QuantizeLinearOptions,
  call: QuantizeCall = {},
): Promise<QuantizeLinearResult> {
  if (!isCodebook(options.codebook)) {
    throw new UserError(`Unknown codebook "${String(options.codebook)}"; use one of ${CODEBOOKS.join(', ')}.`, 'BAD_CODEBOOK');
  }
  const row = CODEBOOK_TABLE[options.codebook];
  const o: QuantizeLinearOptions = {
    ...options,
    incoherence: options.incoherence ?? DEFAULTS.incoherence,
    ldlq: options.ldlq ?? DEFAULTS.ldlq,
    sigma: options.sigma ?? DEFAULTS.sigma,
    rowScale: options.rowScale ?? DEFAULTS.rowScale,
    tuneIters: options.tuneIters ?? DEFAULTS.tuneIters,
    seed: options.seed ?? DEFAULTS.seed,
    // 0 means the codebook's own, as it does natively.
    rho: options.rho || row.defaultRho,
    s2: options.s2 || row.s2,
  };
  const progress: ProgressFn | undefined = call.onProgress ? (json) => call.onProgress!(JSON.parse(json) as QuantizeProgress) : undefined;
  return native().quantizeLinear(W, H, o, progress, call.cancel);
}

export function dequantizeLinear(layer: QuantizedLinear): Float32Array {
  return native().dequantizeLinear(layer);
}
