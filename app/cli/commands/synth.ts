// `quip synth --hidden 2048 --intermediate 5632 --layers 4 [--heads H --kv-heads K --vocab V
// --dtype f16|bf16|f32 --seed S] --out DIR`: a random-weight Hugging Face folder for benchmarks.
import type { Command } from 'commander';

import { exportGguf } from '../../engine/gguf/writer.js';
import { synthModel } from '../../engine/runtime/synth.js';
import { UserError } from '../../util/errors.js';
import { intOption } from '../options.js';

export function registerSynth(program: Command): void {
  program
    .command('synth')
    .description('Write a random-weight Llama model (Hugging Face folder) with the given layer sizes, for benchmarks')
    .requiredOption('--hidden <n>', 'hidden size')
    .requiredOption('--intermediate <n>', 'MLP width')
    .requiredOption('--layers <n>', 'decoder blocks')
    .option('--heads <n>', 'attention heads (default hidden / 64)')
    .option('--kv-heads <n>', 'key/value heads (default = heads)')
    .option('--vocab <n>', 'vocabulary size, at least 512 (default 32000)')
    .option('--context <n>', 'context length (default 2048)')
    .option('--dtype <t>', 'f16, bf16 or f32', 'f16')
    .option('--seed <s>', 'random seed', '0')
    .option('--tied', 'tie lm_head to the embedding')
    .requiredOption('--out <dir>', 'output folder')
    .option('--gguf <file>', 'also write the same weights as a 16-bit GGUF file, for llama.cpp side by side')
    .option('--json', 'print one JSON object')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      const s = (k: string) => opts[k] as string | undefined;
      const dtype = s('dtype');
      if (dtype !== 'f16' && dtype !== 'bf16' && dtype !== 'f32') throw new UserError(`--dtype must be f16, bf16 or f32, got "${dtype}"`, 'BAD_SETTING');
      const t0 = Date.now();
      const r = await synthModel({
        hidden: intOption(s('hidden'), '--hidden')!,
        intermediate: intOption(s('intermediate'), '--intermediate')!,
        layers: intOption(s('layers'), '--layers')!,
        heads: intOption(s('heads'), '--heads'),
        kvHeads: intOption(s('kvHeads'), '--kv-heads'),
        vocab: intOption(s('vocab'), '--vocab'),
        context: intOption(s('context'), '--context'),
        dtype,
        seed: intOption(s('seed'), '--seed', 0),
        tied: !!opts.tied,
        out: s('out')!,
      });
      const gguf = s('gguf') ? await exportGguf(r.dir, s('gguf')!, { name: 'synth' }) : null;
      if (opts.json) process.stdout.write(`${JSON.stringify(gguf ? { ...r, gguf } : r, null, 2)}\n`);
      else {
        process.stdout.write(
          `Wrote ${r.dir}: ${(r.parameters / 1e6).toFixed(1)}M parameters, ${(r.bytes / 1e6).toFixed(1)} MB (${dtype}), ` +
            `${((Date.now() - t0) / 1000).toFixed(1)} s. Random weights; tokenizer: stories260k's, padded with <synth_N> tokens.\n` +
            (gguf ? `Wrote ${gguf.file}: the same weights as GGUF (${gguf.type}, ${(gguf.bytes / 1e6).toFixed(1)} MB) for llama.cpp.\n` : ''),
        );
      }
    });
}
