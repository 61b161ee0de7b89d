// The full-precision engine over the native core: sessions (prefill/decode), perplexity, generation,
// sampling, calibration Hessians and synthetic models. The one import for the rest of the app.
export { createEngine, setEngineThreads } from './native-model.js';
export type { EngineModel, EngineSession, EngineCalibration, BlockHessians, HessianSum, EngineLinearKind } from './native-types.js';
export { generate, generateOn, type GenerateOptions, type GenerateResult } from './generation.js';
export { ChatSession } from './chat.js';
export { SeededRng, argmax, sampleToken, validateSampling, type SamplingOptions } from './sampling.js';
export {
  evaluateModelPerplexity, evaluatePerplexity, perplexityWindows, readEvalText, type PerplexityOptions, type PerplexityResult,
} from './perplexity.js';
export {
  calibrationIds, calibrationSampleSeed, collectHessians, defaultCalibrationText, describeCalibrationSource, hessianMean, resolveCalibrationSource,
  sampledCalibrationIds, samplingStartId, startCalibration, type CalibrationSettings, type CalibrationSource,
} from './calibration.js';
export { synthModel, type SynthOptions, type SynthResult } from './synth.js';
