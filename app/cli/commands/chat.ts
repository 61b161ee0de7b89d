// `quip chat <model> [--system TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--seed S]
// [--threads T]`: an interactive chat in the terminal over the model's loaded host (the same path as
// the studio and `quip serve`): each turn reuses the conversation's KV cache and prints its speed and
// the reused prompt tokens to stderr. Ctrl-C during a reply stops the reply; Ctrl-C at the prompt or
// Ctrl-D exits. "/reset" starts over. Piped input is read one turn per line.
import readline from 'node:readline';

import type { Command } from 'commander';

import type { ChatMessage } from '../../contract/runs.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { JobClient } from '../../services/jobs/client.js';
import { nodeJobProcesses } from '../../services/jobs/node-process.js';
import { ModelManager, type GenerateHandle } from '../../services/models/manager.js';
import { errorMessage } from '../../util/errors.js';
import { addSamplingOptions, intOption, samplingOptions } from '../options.js';

const SAMPLING = { maxTokens: 512, minMaxTokens: 1, maxTokensHelp: 'most tokens per reply', temperature: 0.7 };

export function registerChat(program: Command): void {
  const command = program
    .command('chat')
    .description('Chat with a model in the terminal; the conversation stays cached between turns')
    .argument('<model>', 'model folder (or hub id)')
    .option('--system <text>', 'a system prompt');
  addSamplingOptions(command, SAMPLING)
    .option('--no-template', "continue the conversation as plain text instead of the model's chat template")
    .option('--threads <t>', 'threads (default: all cores)')
    .action(async (modelArg: string, opts: Record<string, string | boolean | undefined>) => {
      const sampling = samplingOptions(opts, SAMPLING);
      const threads = intOption(opts.threads as string | undefined, '--threads');
      const { dir } = await resolveModelDir(modelArg);
      const jobs = new JobClient({ spawn: nodeJobProcesses() });
      const models = new ModelManager({ jobs, threads: async () => threads, idleMs: 0 });
      const tty = process.stdin.isTTY === true;
      try {
        process.stderr.write(`Loading ${dir} ... `);
        const info = await models.load(dir);
        process.stderr.write(`ready (context ${info.contextLength} tokens). Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt quits; /reset starts over.\n`);
        const system: ChatMessage[] = opts.system ? [{ role: 'system', content: String(opts.system) }] : [];
        let messages: ChatMessage[] = [...system];
        let current: GenerateHandle | null = null;
        const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: tty ? '> ' : '' });
        const interrupt = () => {
          if (current) current.cancel();
          else rl.close();
        };
        rl.on('SIGINT', interrupt);
        process.on('SIGINT', interrupt);
        rl.prompt();
        for await (const line of rl) {
          const text = line.trim();
          if (!text) {
            rl.prompt();
            continue;
          }
          if (text === '/reset') {
            models.drop(dir, 'cli');
            messages = [...system];
            process.stderr.write('(new conversation)\n');
            rl.prompt();
            continue;
          }
          const turn: ChatMessage[] = [...messages, { role: 'user', content: text }];
          current = models.generate(
            dir,
            { conversationId: 'cli', messages: turn, template: opts.template !== false, ...sampling },
            { onToken: (t) => void process.stdout.write(t) },
          );
          try {
            const { text: reply, stats } = await current.result;
            process.stdout.write('\n');
            messages = [...turn, { role: 'assistant', content: reply }];
            const ttft = stats.timeToFirstTokenMs === null ? '-' : `${stats.timeToFirstTokenMs.toFixed(0)} ms`;
            process.stderr.write(
              `[${stats.stopReason}] ${stats.tokens} tokens, ${stats.tokensPerSecond.toFixed(1)} tokens/s; first token after ${ttft}; ` +
                `prompt ${stats.promptTokens} tokens, ${stats.reusedTokens} reused from the cache (${stats.promptTokens + stats.tokens} of ${stats.contextLength} context)\n`,
            );
          } catch (err) {
            process.stdout.write('\n');
            process.stderr.write(`quip chat: ${errorMessage(err)}\n`);
          } finally {
            current = null;
          }
          rl.prompt();
        }
        process.off('SIGINT', interrupt);
      } finally {
        await models.close();
        await jobs.shutdown();
      }
    });
}
