// The native model over a loaded model folder: builds the native model from the folder's memory-mapped
// tensors and sets the thread count that every native parallel loop uses.
import type { LoadedModel } from '../model/index.js';
import { native, type TensorRef } from '../native.js';
import { openQuantizedEngine } from './quantized-model.js';
import type { EngineModel } from './native-types.js';

export type { EngineModel, EngineSession, EngineCalibration, BlockHessians, HessianSum } from './native-types.js';

/** Builds the native model over every tensor of the folder (read in place, never copied). */
export function createEngine(
  model: Pick<LoadedModel, 'architecture' | 'tensor' | 'tensorNames'> & Partial<Pick<LoadedModel, 'dir' | 'config' | 'quantization'>>,
): EngineModel {
  // A quantized folder: qinfer builds its linear layers from the codes (runtime/quantized-model.ts).
  if (model.quantization && model.dir && model.config) return openQuantizedEngine(model.dir, model.config, model.architecture);
  const weights: Record<string, TensorRef> = {};
  for (const name of model.tensorNames()) weights[name] = model.tensor(name);
  return native().createModel(model.architecture, weights);
}

/** Sets the native thread pool size (0 or undefined: one per hardware thread); returns what it is now. */
export function setEngineThreads(threads?: number): number {
  if (threads !== undefined && (!Number.isInteger(threads) || threads < 0)) {
    throw new Error(`threads must be a whole number >= 0 (0 = all cores), got ${threads}`);
  }
  return native().setThreads(threads ?? 0);
}
