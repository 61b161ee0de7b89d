// Fine-tuning (spec section 6): in-block and end-to-end fine-tuning for the quantization job, native
// types. Its settings, events and record are the quantization domain's (app/domain/quantize).
export * from './block.js';
export * from './e2e.js';
export * from './job-hook.js';
export type * from './native-types.js';
