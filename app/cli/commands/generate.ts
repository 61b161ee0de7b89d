// `quip generate <model> --prompt TEXT [--chat] [--max-tokens N] [--temperature T] [--top-p P]
// [--seed S] [--threads T] [--json]`: streams the continuation to stdout (statistics to stderr), with
// the model's chat template applied under --chat; stops at end-of-sequence. Ctrl-C stops it while the
// template renders, during prefill and between decoded tokens.
import type { Command } from 'commander';

import { loadModel } from '../../engine/model/index.js';
import { createEngine, setEngineThreads } from '../../engine/runtime/native-model.js';
import { generate } from '../../engine/runtime/generation.js';
import { renderPromptIds } from '../../engine/runtime/chat.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { UserError } from '../../util/errors.js';
import { cancelOnSigint } from '../cancel.js';
import { addSamplingOptions, intOption, samplingOptions } from '../options.js';

const SAMPLING = { maxTokens: 128, minMaxTokens: 0, maxTokensHelp: 'most tokens to generate', temperature: 0.8 };

export function registerGenerate(program: Command): void {
  const command = program
    .command('generate')
    .description('Generate text from a prompt, streaming tokens; prints prefill and decode speed')
    .argument('<model>', 'model folder (or hub id)')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--chat', "wrap the prompt as a user message in the model's chat template");
  addSamplingOptions(command, SAMPLING)
    .option('--threads <t>', 'threads (default: all cores)')
    .option('--json', 'print one JSON object at the end instead of streaming')
    .action(async (modelArg: string, opts: Record<string, string | boolean | undefined>) => {
      const threads = setEngineThreads(intOption(opts.threads as string | undefined, '--threads'));
      const { dir } = await resolveModelDir(modelArg);
      const model = await loadModel(dir);
      const { cancel, done } = cancelOnSigint();
      try {
        const prompt = String(opts.prompt);
        let promptIds: number[];
        if (opts.chat) {
          if (!model.chatTemplate) throw new UserError(`${dir} has no chat template; leave out --chat to continue the prompt as plain text.`, 'NO_CHAT_TEMPLATE');
          // The chat's own prompt builder (template, then BOS unless the template writes it); the render
          // is bounded in time and size, and Ctrl-C interrupts it (a UserError CANCELLED).
          try {
            promptIds = renderPromptIds(model.tokenizer, model.chatTemplate, [{ role: 'user', content: prompt }]);
          } catch (err) {
            if ((err as UserError).code !== 'CANCELLED') throw err;
            process.stderr.write(`\nquip: stopped (Ctrl-C) while rendering the chat template.\n`);
            process.exitCode = 130;
            return;
          }
        } else {
          promptIds = model.tokenizer.encode(prompt);
        }
        const json = !!opts.json;
        if (!json) process.stdout.write(opts.chat ? '' : prompt);
        const r = await generate(createEngine(model), model.tokenizer, promptIds, model.architecture.contextLength, {
          ...samplingOptions(opts, SAMPLING),
          cancel,
          onText: json ? undefined : (t) => process.stdout.write(t),
        });
        if (json) {
          process.stdout.write(`${JSON.stringify({ model: dir, prompt, chat: !!opts.chat, threads, ...r }, null, 2)}\n`);
        } else {
          process.stdout.write('\n');
          process.stderr.write(
            `\n[${r.stopReason}] prompt ${r.promptIds.length} tokens: ${r.prefillTokensPerSecond.toFixed(1)} tokens/s prefill; ` +
              `${r.ids.length} generated: ${r.decodeTokensPerSecond.toFixed(1)} tokens/s decode (${threads} threads)\n`,
          );
        }
      } finally {
        done();
        model.close();
      }
    });
}
