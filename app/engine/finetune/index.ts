// Fine-tuning (spec section 6): settings, in-block fine-tuning for the quantization job, native types.
export * from './settings.js';
export * from './events.js';
export * from './record.js';
export * from './block.js';
export * from './e2e.js';
export * from './job-hook.js';
export type * from './native-types.js';
