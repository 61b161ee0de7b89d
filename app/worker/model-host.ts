// The `modelHost` job: a model loaded once, serving requests until the studio unloads it (cancels the
// job). Requests arrive through the job protocol's `input` message (HostInput) and are answered with
// progress data (HostEvent) tagged with their request id. Generations run one at a time in arrival
// order over a ChatHost (a kept KV cache per conversation); each has its own native cancel flag, so
// a stop ends that request within a decode step and the next one goes on.
import { z } from 'zod';

import { HostEvent, HostGenerate, HostInput } from '../contract/loaded-models.js';
import { loadModel } from '../engine/model/index.js';
import { cancelFlag } from '../engine/native.js';
import { ChatHost } from '../engine/runtime/chat-host.js';
import { createEngine } from '../engine/runtime/native-model.js';
import { UserError } from '../util/errors.js';
import { defineJobKind } from './runtime.js';

/** Resident memory of this process (the host reports its own; the studio cannot measure another process portably). */
function rss(): number | null {
  try {
    return process.memoryUsage.rss();
  } catch {
    return null;
  }
}

export const modelHostKind = defineJobKind({
  params: z.object({
    modelDir: z.string().min(1),
    kvBudgetBytes: z.number().int().positive().optional(),
    maxContext: z.number().int().positive().optional(),
  }),
  events: HostEvent,
  result: z.object({ served: z.number().int() }),
  run: async (p, ctx) => {
    // Ctrl-C in a terminal reaches the whole process group, this forked host included; it is meant for
    // the CLI in front (`quip chat` stops the reply, `quip serve` unloads), which ends this process
    // through the job protocol. A listener keeps SIGINT from killing the model mid-conversation.
    process.on('SIGINT', () => {});
    const t0 = performance.now();
    const model = await loadModel(p.modelDir);
    const host = new ChatHost(
      { engine: createEngine(model), tokenizer: model.tokenizer, chatTemplate: model.chatTemplate, architecture: model.architecture },
      { kvBudgetBytes: p.kvBudgetBytes, maxContext: p.maxContext },
    );
    const send = (e: HostEvent) => ctx.progress({ data: e });
    const flags = new Map<string, Int32Array>();
    let served = 0;
    let chain: Promise<void> = Promise.resolve();

    const serve = async (req: z.output<typeof HostGenerate>, flag: Int32Array) => {
      if (flag[0] !== 0) {
        send({ type: 'error', requestId: req.requestId, error: { message: 'The request was cancelled.', code: 'CANCELLED' } });
        return;
      }
      try {
        const r = await host.generate(req, {
          cancel: flag,
          onText: (text, tokens) => send({ type: 'token', requestId: req.requestId, text, tokens }),
        });
        served++;
        send({
          type: 'done',
          requestId: req.requestId,
          text: r.text,
          stats: {
            tokens: r.ids.length,
            promptTokens: r.promptTokens,
            reusedTokens: r.reusedTokens,
            timeToFirstTokenMs: r.timeToFirstTokenMs,
            tokensPerSecond: r.decodeTokensPerSecond,
            prefillTokensPerSecond: r.prefillTokensPerSecond,
            stopReason: r.stopReason,
            templated: r.templated,
            contextLength: r.contextLength,
          },
        });
      } catch (err) {
        const code = err instanceof UserError ? err.code : 'INTERNAL';
        send({ type: 'error', requestId: req.requestId, error: { message: err instanceof Error ? err.message : String(err), code } });
      } finally {
        flags.delete(req.requestId);
      }
    };

    ctx.onInput((data) => {
      const parsed = HostInput.safeParse(data);
      if (!parsed.success) {
        const requestId = (data as { requestId?: unknown })?.requestId;
        if (typeof requestId === 'string') send({ type: 'error', requestId, error: { message: `Invalid request: ${z.prettifyError(parsed.error)}`, code: 'INVALID_REQUEST' } });
        else ctx.log(`model host: ignored an invalid input: ${z.prettifyError(parsed.error)}`);
        return;
      }
      const msg = parsed.data;
      switch (msg.type) {
        case 'generate': {
          const flag = cancelFlag();
          flags.set(msg.requestId, flag);
          chain = chain.then(() => serve(msg, flag));
          break;
        }
        case 'cancel': {
          const flag = flags.get(msg.requestId);
          if (flag) Atomics.store(flag, 0, 1);
          break;
        }
        case 'count':
          try {
            send({ type: 'count', requestId: msg.requestId, ...host.count(msg) });
          } catch (err) {
            send({ type: 'error', requestId: msg.requestId, error: { message: err instanceof Error ? err.message : String(err), code: err instanceof UserError ? err.code : 'INTERNAL' } });
          }
          break;
        case 'drop':
          // After what is queued, so a request in flight keeps its session.
          chain = chain.then(() => void host.drop(msg.conversationId));
          break;
        case 'memory':
          send({ type: 'memory', requestId: msg.requestId, rssBytes: rss(), kvBytes: host.kvBytes(), sessions: host.list().length });
          break;
      }
    });

    send({ type: 'ready', contextLength: host.contextLength, templated: model.chatTemplate !== null, loadSeconds: (performance.now() - t0) / 1000, rssBytes: rss() });
    // Serve until unloaded: the studio cancels this job; what is running stops, then the process goes.
    if (!ctx.signal.aborted) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    for (const f of flags.values()) Atomics.store(f, 0, 1);
    await chain;
    model.close();
    return { served };
  },
});
