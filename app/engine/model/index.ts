// Model loading and inspection: the one import for the rest of the app.
export { loadModel, openModel, type LoadedModel, type OpenedModel, type TensorInfo } from './loader.js';
export type { ModelTokenizer, ChatMessage, ChatTemplateFn } from './tokenizer.js';
export { parseArchitecture, readConfig } from './config.js';
export { inspectModel, inspectLoaded, estimateSize, formatHadamard, hadamardFactor, paddedWidth, type InspectSource } from './inspect.js';
