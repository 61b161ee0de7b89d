// `quip bench chat --model DIR [--turns 8] [--max-tokens 64] [--threads T] [--json]`: a scripted
// multi-turn conversation (each user turn ~60 tokens, greedy replies of up to 64 tokens), timed per
// turn with the kept session (the prompt's cached prefix reused, only the new turn prefilled) beside
// the same conversation re-prefilled in full in a fresh session, in the same run. Both go through
// ChatHost, the loaded model's chat path. Goal (issue #18): the last turn's time to first token
// within 1.5x of the first turn's.
import os from 'node:os';

import type { Command } from 'commander';

import { loadModel, type ChatMessage } from '../engine/model/index.js';
import { ChatHost } from '../engine/runtime/chat-host.js';
import { createEngine, setEngineThreads } from '../engine/runtime/native-model.js';
import { resolveModelDir } from '../services/hub/index.js';
import { intOption } from '../cli/options.js';

/** User turns of about 60 tokens each (a planning conversation, so replies stay on topic). */
export const CHAT_BENCH_TURNS = [
  'I am planning a three day trip to Lisbon in early spring with two friends who love food, old buildings and long walks. We do not want to rent a car. Could you suggest how we should split the days between neighbourhoods so that we are not rushing?',
  'That sounds good. On the first day we arrive around noon at the airport and will be tired after an early flight. What would be an easy afternoon near the old town, and where could we eat a simple dinner without booking a table weeks ahead?',
  'For the second day we would like to see the monastery and the tower in Belem, but we heard the queues can be very long. Is it better to go early in the morning, and how should we travel there from the centre by public transport?',
  'One of my friends is vegetarian and the other does not eat fish at all, which seems hard in a city famous for seafood. Could you give us a few kinds of dishes or places that would work for all three of us during the whole trip?',
  'We also want to take a day trip to Sintra on the third day. How early should we leave, which palaces are worth the entrance fee if we can only visit two, and is it realistic to walk between them or should we take a bus?',
  'The weather forecast now says it might rain on the second day. If that happens, what indoor museums or markets would you recommend instead of Belem, and could we simply swap the second and third days without losing anything important?',
  'We have a budget of about one hundred euros per person per day, not counting the hotel. Does that seem enough for food, transport, tickets and maybe a fado evening, or should we plan to cut something, and if so what would you cut first?',
  'Finally, could you write the whole plan again as a short list, one line per part of each day, including the rain alternative, so that I can paste it into our group chat and everyone can see what we are doing and when?',
];

export interface ChatBenchTurn {
  turn: number;
  userTokens: number;
  promptTokens: number;
  /** Kept session: prompt tokens reused from the cache, and prefilled now. */
  reusedTokens: number;
  prefilledTokens: number;
  keptTtftMs: number;
  keptTokensPerSecond: number;
  replyTokens: number;
  /** Fresh session: the whole prompt prefilled. */
  freshTtftMs: number;
  freshTokensPerSecond: number;
  /** Greedy: the kept session's reply equals the fresh one's. */
  sameText: boolean;
}

export interface ChatBenchResult {
  model: string;
  threads: number;
  cpu: string;
  loadAverage: number[];
  maxTokens: number;
  turns: ChatBenchTurn[];
  /** Last turn's TTFT over the first's, kept session and fresh. */
  keptRatio: number;
  freshRatio: number;
  goalMet: boolean;
}

export async function runChatBench(o: { model: string; turns?: number; maxTokens?: number; threads?: number; system?: string; onTurn?: (t: ChatBenchTurn) => void }): Promise<ChatBenchResult> {
  const threads = setEngineThreads(o.threads);
  const turns = o.turns ?? 8;
  const maxTokens = o.maxTokens ?? 64;
  const { dir } = await resolveModelDir(o.model);
  const model = await loadModel(dir);
  try {
    const host = new ChatHost({ engine: createEngine(model), tokenizer: model.tokenizer, chatTemplate: model.chatTemplate, architecture: model.architecture });
    const messages: ChatMessage[] = [{ role: 'system', content: o.system ?? 'You are a helpful travel assistant. Answer briefly.' }];
    const sampling = { template: true, temperature: 0, topP: 1, seed: 0, maxTokens };
    // Warm-up (page in the weights, first-call costs) on a throwaway conversation.
    await host.generate({ ...sampling, maxTokens: 4, conversationId: 'warmup', messages: [{ role: 'user', content: 'Hello' }] });
    host.drop('warmup');
    const rows: ChatBenchTurn[] = [];
    for (let t = 0; t < turns; t++) {
      const user = CHAT_BENCH_TURNS[t % CHAT_BENCH_TURNS.length];
      messages.push({ role: 'user', content: user });
      const kept = await host.generate({ ...sampling, conversationId: 'kept', messages });
      host.drop('fresh');
      const fresh = await host.generate({ ...sampling, conversationId: 'fresh', messages });
      host.drop('fresh');
      const row: ChatBenchTurn = {
        turn: t + 1,
        userTokens: model.tokenizer.encode(user, { addBos: false }).length,
        promptTokens: kept.promptTokens,
        reusedTokens: kept.reusedTokens,
        prefilledTokens: kept.prefilledTokens,
        keptTtftMs: kept.timeToFirstTokenMs ?? NaN,
        keptTokensPerSecond: kept.decodeTokensPerSecond,
        replyTokens: kept.ids.length,
        freshTtftMs: fresh.timeToFirstTokenMs ?? NaN,
        freshTokensPerSecond: fresh.decodeTokensPerSecond,
        sameText: kept.text === fresh.text,
      };
      rows.push(row);
      o.onTurn?.(row);
      messages.push({ role: 'assistant', content: kept.text });
    }
    const keptRatio = rows.at(-1)!.keptTtftMs / rows[0].keptTtftMs;
    const freshRatio = rows.at(-1)!.freshTtftMs / rows[0].freshTtftMs;
    return { model: dir, threads, cpu: os.cpus()[0]?.model ?? 'unknown', loadAverage: os.loadavg(), maxTokens, turns: rows, keptRatio, freshRatio, goalMet: keptRatio <= 1.5 };
  } finally {
    model.close();
  }
}

export function formatChatBench(r: ChatBenchResult): string {
  const head = ['turn', 'user tok', 'prompt tok', 'reused', 'prefilled', 'kept TTFT ms', 'fresh TTFT ms', 'kept tok/s', 'fresh tok/s', 'reply tok', 'same text'];
  const rows = r.turns.map((t) => [
    String(t.turn),
    String(t.userTokens),
    String(t.promptTokens),
    String(t.reusedTokens),
    String(t.prefilledTokens),
    t.keptTtftMs.toFixed(0),
    t.freshTtftMs.toFixed(0),
    t.keptTokensPerSecond.toFixed(1),
    t.freshTokensPerSecond.toFixed(1),
    String(t.replyTokens),
    t.sameText ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i])).join(' | ')} |`;
  const n = r.turns.length;
  return [
    `Chat bench: ${r.model}, ${r.threads} threads, ${r.cpu}, load ${r.loadAverage.map((x) => x.toFixed(2)).join(' ')}; greedy replies up to ${r.maxTokens} tokens`,
    '',
    line(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    '',
    `Turn ${n} TTFT / turn 1 TTFT: kept session ${r.keptRatio.toFixed(2)}x, full re-prefill ${r.freshRatio.toFixed(2)}x. Goal (kept <= 1.5x): ${r.goalMet ? 'met' : 'NOT met'}.`,
  ].join('\n');
}

export function registerChatBench(bench: Command): void {
  bench
    .command('chat')
    .description('Time to first token and tokens/s per turn of a scripted conversation: kept KV cache beside full re-prefill, same run')
    .requiredOption('--model <dir>', 'model folder (or hub id); one with a chat template')
    .option('--turns <n>', 'turns (default 8)')
    .option('--max-tokens <n>', 'most tokens per reply (default 64)')
    .option('--threads <t>', 'threads (default: all cores)')
    .option('--json', 'print one JSON object')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      const s = (k: string) => opts[k] as string | undefined;
      const r = await runChatBench({
        model: s('model')!,
        turns: intOption(s('turns'), '--turns'),
        maxTokens: intOption(s('maxTokens'), '--max-tokens'),
        threads: intOption(s('threads'), '--threads'),
        onTurn: opts.json ? undefined : (t) => process.stderr.write(`  ... turn ${t.turn}: kept ${t.keptTtftMs.toFixed(0)} ms, fresh ${t.freshTtftMs.toFixed(0)} ms to the first token\n`),
      });
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatChatBench(r)}\n`);
    });
}
