// `quip eval <model> --text FILE --ctx N [--max-windows K] [--threads T] [--convention ours|llama.cpp] [--decode-path] [--json]`:
// perplexity with our convention (rows joined by blank lines, non-overlapping windows of N tokens, BOS
// where the tokenizer adds it) or llama.cpp's (runtime/perplexity-llamacpp.ts), printing ppl, tokens
// scored and tokens/s. Ctrl-C cancels between blocks.
import type { Command } from 'commander';

import { loadModel } from '../../engine/model/index.js';
import { isCancelled } from '../../engine/native.js';
import { createEngine, setEngineThreads } from '../../engine/runtime/native-model.js';
import { evaluatePerplexity, perplexityWindows, readEvalText } from '../../engine/runtime/perplexity.js';
import { evaluateKlDivergenceLlamaCpp } from '../../engine/runtime/kl-divergence.js';
import { evaluatePerplexityLlamaCpp, llamaCppWindows, PERPLEXITY_CONVENTIONS, readLlamaCppText } from '../../engine/runtime/perplexity-llamacpp.js';
import { describePerplexity, formatPerplexity, perplexityPlusMinus, textName } from '../../domain/quantize/evaluation.js';
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
    .option('--kl-base <model>', "also the KL divergence against this (16-bit) model, in llama-perplexity --kl-divergence's convention (implies --convention llama.cpp)")
    .option('--json', 'print one JSON object')
    .action(async (modelArg: string, opts: { text: string; ctx?: string; maxWindows?: string; threads?: string; convention: string; decodePath?: boolean; klBase?: string; json?: boolean }, cmd: Command) => {
      if (!(PERPLEXITY_CONVENTIONS as readonly string[]).includes(opts.convention)) {
        throw new UserError(`--convention must be ${PERPLEXITY_CONVENTIONS.join(' or ')}, got "${opts.convention}"`, 'BAD_SETTING');
      }
      if (opts.klBase !== undefined) {
        if (cmd.getOptionValueSource('convention') !== 'default' && opts.convention !== 'llama.cpp') {
          throw new UserError("--kl-base measures in llama.cpp's convention; leave out --convention or give --convention llama.cpp", 'BAD_SETTING');
        }
        if (opts.decodePath) throw new UserError('--kl-base scores the batched forward; leave out --decode-path', 'BAD_SETTING');
        opts.convention = 'llama.cpp';
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
        if (opts.klBase !== undefined) {
          await klDivergence(opts.klBase, { dir, text: opts.text, engine, vocab: model.architecture.vocabSize, windows, ctx, cancel, threads, json: opts.json === true });
          return;
        }
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
        const out = { model: dir, text: opts.text, textName: textName(opts.text), plusMinus: perplexityPlusMinus(r.ppl, r.stdErr), convention: opts.convention, decodePath: opts.decodePath === true, ...r, threads };
        if (opts.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        else {
          process.stdout.write(
            [
              `Perplexity     ${formatPerplexity(r.ppl, r.stdErr)}${r.stdErr !== null ? ` (± one standard error of the mean over ${r.windows} windows)` : ''}`,
              `text           ${describePerplexity({ dataset: opts.text, ctx, windows: r.windows })}`,
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

/** `quip eval <model> --kl-base <dir>`: the base loaded beside the model, both scored window by window. */
async function klDivergence(
  baseArg: string,
  o: { dir: string; text: string; engine: ReturnType<typeof createEngine>; vocab: number; windows: Int32Array[]; ctx: number; cancel: Int32Array; threads: number; json: boolean },
): Promise<void> {
  const { dir: baseDir } = await resolveModelDir(baseArg);
  const base = await loadModel(baseDir);
  try {
    if (base.architecture.vocabSize !== o.vocab) {
      throw new UserError(`--kl-base ${baseDir} has a vocabulary of ${base.architecture.vocabSize} tokens, the model ${o.vocab}: KL divergence needs the same tokenizer.`, 'BAD_SETTING');
    }
    if (o.ctx > base.architecture.contextLength) {
      throw new UserError(`--ctx ${o.ctx} is longer than the base model's context (${base.architecture.contextLength} tokens)`, 'BAD_SETTING');
    }
    const progress = o.json || !process.stderr.isTTY ? undefined : (p: { window: number; windows: number; kld: number; ppl: number }) =>
      process.stderr.write(`\r  window ${p.window}/${p.windows}  KLD ${p.kld.toFixed(5)}  ppl ${p.ppl.toFixed(4)}   `);
    const r = await evaluateKlDivergenceLlamaCpp(o.engine, createEngine(base), o.windows, o.vocab, { ctx: o.ctx, cancel: o.cancel, onProgress: progress });
    if (progress) process.stderr.write('\n');
    const out = { model: o.dir, base: baseDir, text: o.text, convention: 'llama.cpp', ...r, threads: o.threads };
    if (o.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else {
      process.stdout.write(
        [
          `Perplexity       ${r.ppl.toFixed(4)}   (base ${r.basePpl.toFixed(4)}, ${r.ppl >= r.basePpl ? '+' : ''}${(100 * (r.ppl / r.basePpl - 1)).toFixed(2)}%)`,
          `Mean KLD         ${r.kld.toFixed(6)} +- ${r.kldPlusMinus.toFixed(6)}   (median ${r.kldMedian.toFixed(6)}, max ${r.kldMax.toFixed(6)})`,
          `Same top token   ${(100 * r.sameTop).toFixed(3)} +- ${(100 * r.sameTopPlusMinus).toFixed(3)} %`,
          `tokens scored    ${r.tokensScored.toLocaleString('en-US')} (${r.windows} windows of ${o.ctx} tokens, second halves, llama.cpp's --kl-divergence convention)`,
          `time             ${r.seconds.toFixed(2)} s (${o.threads} threads, both models)`,
        ].join('\n') + '\n',
      );
    }
  } finally {
    base.close();
  }
}
