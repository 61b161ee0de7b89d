// The QuIP# numeric core for TypeScript callers: typed wrappers over the native addon.
import { UserError } from '../../util/errors.js';
import { native, type ProgressFn, type TensorRef } from '../native.js';
import { CODEBOOKS, type CodebookName, type QuantizeLinearOptions, type QuantizeLinearResult, type QuantizedLinear } from './types.js';

export * from './rate-distortion.js';
export * from './types.js';

export function isCodebook(name: string): name is CodebookName {
  return (CODEBOOKS as readonly string[]).includes(name);
}

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
  const progress: ProgressFn | undefined = call.onProgress ? (json) => call.onProgress!(JSON.parse(json) as QuantizeProgress) : undefined;
  return native().quantizeLinear(W, H, options, progress, call.cancel);
}

export function dequantizeLinear(layer: QuantizedLinear): Float32Array {
  return native().dequantizeLinear(layer);
}
