// `quip eval <model> --text FILE --ctx N [--max-windows K] [--threads T] [--convention ours|llama.cpp] [--decode-path] [--json]`:
// perplexity with our convention (rows joined by blank lines, non-overlapping windows of N tokens, BOS
// where the tokenizer adds it) or llama.cpp's (runtime/perplexity-llamacpp.ts), printing ppl, tokens
// scored and tokens/s. Ctrl-C cancels between blocks.
import type { Command } from 'commander';

import { loadModel } from '../../engine/model/index.js';
import { isCancelled } from '../../engine/native.js';
import { createEngine, setEngineThreads } from '../../engine/runtime/engine.js';
import { evaluatePerplexity, perplexityWindows, readEvalText } from '../../engine/runtime/perplexity.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, PERPLEXITY_CONVENTIONS, readLlamaCppText } from '../../engine/runtime/perplexity-llamacpp.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { UserError } from '../../util/errors.js';
import { cancelOnSigint } from '../cancel.js';
import { intOption } from '../options.js';

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('Perplexity of a model on a text file (rows joined by blank lines, non-overlapping windows)')
    .argument('<model>', 'model folder (or hub id)')
    .requiredOption('--text <file>', 'text file to score, e.g. wikitext-2-raw/wiki.test.raw')
    .option('--ctx <n>', 'window length in tokens (default 512, at most the model context)')
    .option('--max-windows <k>', 'score only the first K windows')
    .option('--threads <t>', 'threads (default: all cores)')
    .option('--convention <c>', "ours, or llama.cpp (llama-perplexity's: whole text, second half of each window scored)", 'ours')
    .option('--decode-path', 'score every token from a one-token forward, as chat decodes (slower; differs slightly where the decode kernels round x to int8)')
    .option('--json', 'print one JSON object')
    .action(async (modelArg: string, opts: { text: string; ctx?: string; maxWindows?: string; threads?: string; convention: string; decodePath?: boolean; json?: boolean }) => {
      if (!(PERPLEXITY_CONVENTIONS as readonly string[]).includes(opts.convention)) {
        throw new UserError(`--convention must be ${PERPLEXITY_CONVENTIONS.join(' or ')}, got "${opts.convention}"`, 'BAD_SETTING');
      }
      const llamaCpp = opts.convention === 'llama.cpp';
      const threads = setEngineThreads(intOption(opts.threads, '--threads'));
      const { dir } = await resolveModelDir(modelArg);
      const model = await loadModel(dir);
      const { cancel, done } = cancelOnSigint();
      try {
        const ctx = intOption(opts.ctx, '--ctx', 2) ?? Math.min(512, model.architecture.contextLength);
        if (ctx > model.architecture.contextLength) {
          throw new UserError(`--ctx ${ctx} is longer than the model's context (${model.architecture.contextLength} tokens)`, 'BAD_SETTING');
        }
        const maxWindows = intOption(opts.maxWindows, '--max-windows');
        const windows = llamaCpp
          ? llamaCppWindows(model.tokenizer, readLlamaCppText(opts.text), ctx, maxWindows)
          : perplexityWindows(model.tokenizer, readEvalText(opts.text), ctx, maxWindows);
        const engine = createEngine(model);
        const settings = {
          ctx,
          cancel,
          decodePath: opts.decodePath === true,
          onProgress: opts.json || !process.stderr.isTTY ? undefined : (p: { window: number; windows: number; ppl: number }) =>
            process.stderr.write(`\r  window ${p.window}/${p.windows}  ppl ${p.ppl.toFixed(4)}   `),
        };
        const r = llamaCpp
          ? await evaluatePerplexityLlamaCpp(engine, windows, model.architecture.vocabSize, settings)
          : await evaluatePerplexity(engine, windows, settings);
        if (!opts.json && process.stderr.isTTY) process.stderr.write('\n');
        const out = { model: dir, text: opts.text, convention: opts.convention, decodePath: opts.decodePath === true, ...r, threads };
        if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        else {
          process.stdout.write(
            [
              `Perplexity     ${r.ppl.toFixed(4)}`,
              `tokens scored  ${r.tokensScored.toLocaleString('en-US')} (${r.windows} windows of ${ctx} tokens${llamaCpp ? ', second halves, llama.cpp convention' : ''}${opts.decodePath ? ', token by token through the decode path' : ''})`,
              `speed          ${r.tokensPerSecond.toFixed(1)} tokens/s (${r.seconds.toFixed(2)} s, ${threads} threads)`,
            ].join('\n') + '\n',
          );
        }
      } catch (err) {
        if (isCancelled(err)) throw new UserError('Evaluation cancelled.', 'CANCELLED');
        throw err;
      } finally {
        done();
        model.close();
      }
    });
}
