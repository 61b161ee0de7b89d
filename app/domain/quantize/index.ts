// The quantization domain: the vocabulary every layer shares (contract, services, worker, engine,
// CLI, benchmarks and the renderer all import it; it imports none of them). Pure: zod and plain
// TypeScript, no node builtins, no engine or native code (app/domain/layering.test.ts checks it).
//   codebooks.ts          one row per codebook (name, family, bits, default rho, stages, s2, code bits)
//   errors.ts             SettingsError (a UserError naming the setting as the studio shows it)
//   settings.ts           the settings schema, defaults and the one resolveSettings
//   finetune-settings.ts  fine-tuning settings, defaults and their resolution
//   estimate.ts           the cost model: seconds, peak memory and output bytes of a run
//   evaluation.ts         perplexity defaults (text, windows), its +- and how every face words it
//   machine-rates.ts      estimates calibrated on this machine (a probe, then finished runs), as a range
//   events.ts             the quantize job's event stream (finetune-events.ts: fine-tuning's part of it)
//   record.ts             the run record (run.json; finetune-record.ts: its fine-tuning section)
export * from './codebooks.js';
export * from './errors.js';
export * from './settings.js';
export * from './finetune-settings.js';
export * from './estimate.js';
export * from './evaluation.js';
export * from './machine-rates.js';
export * from './events.js';
export * from './finetune-events.js';
export * from './record.js';
export * from './finetune-record.js';
