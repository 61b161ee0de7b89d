// The studio's long jobs in the job process: a quantization run (the quantize job's own pipeline,
// its events passed on as progress data) and a chat reply (the engine's generation, each new piece
// of text passed on as it becomes whole). Rows of kinds.ts.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { ImportGgufResult } from '../contract/channels.js';
import { ChatMessage, ChatStats, Sampling } from '../contract/runs.js';
import { importGguf, LOSSY_NOTE } from '../engine/gguf/index.js';
import { inspectModel } from '../engine/model/inspect.js';
import { loadModel, type LoadedModel } from '../engine/model/index.js';
import { defaultEvalText, runQuantizeJob } from '../engine/quantize/job.js';
import { createQuantizedEngine, openQuantizedWeights } from '../engine/quantize/qmodel.js';
import { QuantizeSettingsInput, resolveSettings, SettingsError } from '../engine/quantize/settings.js';
import { createEngine } from '../engine/runtime/engine.js';
import { generate } from '../engine/runtime/generation.js';
import { UserError } from '../util/errors.js';
import { defineJobKind } from './runtime.js';

/** How much perplexity evaluation a studio run does after quantizing (a few windows keep it short). */
const EVAL_WINDOWS = 8;
const EVAL_CTX = 256;

export const quantizeKind = defineJobKind({
  params: z.object({ modelDir: z.string().min(1), out: z.string().min(1), settings: QuantizeSettingsInput }),
  result: z.object({ out: z.string() }),
  run: async (p, ctx) => {
    let settings;
    try {
      settings = resolveSettings(p.settings);
    } catch (err) {
      if (err instanceof SettingsError) throw new UserError(err.message, err.code);
      throw err;
    }
    const r = await runQuantizeJob({
      model: p.modelDir,
      out: p.out,
      settings,
      // Perplexity where the WikiText-2 test text is at hand (the Compare view plots it).
      evaluation: existsSync(defaultEvalText()) ? { textFile: defaultEvalText(), ctx: EVAL_CTX, maxWindows: EVAL_WINDOWS, full: true } : null,
      onEvent: (e) => ctx.progress({ data: e, ...(e.type === 'eta' && e.layersTotal ? { fraction: e.layersDone / e.layersTotal } : {}) }),
      cancel: ctx.cancel,
    });
    return { out: r.out };
  },
});

const IMPORT_PHASES = { checking: 'Reading the GGUF header', tensors: 'Converting tensors', hashing: 'Checksumming the source', finishing: 'Writing the model folder', done: 'Imported' } as const;

export const importGgufKind = defineJobKind({
  params: z.object({ file: z.string().min(1), outDir: z.string().min(1), force: z.boolean().default(false) }),
  result: ImportGgufResult,
  run: async (p, ctx) => {
    const r = await importGguf(p.file, p.outDir, {
      force: p.force,
      signal: ctx.signal,
      onProgress: (e) =>
        ctx.progress({
          message: e.phase === 'tensors' && e.tensor ? `${IMPORT_PHASES.tensors}: ${e.tensor}` : IMPORT_PHASES[e.phase],
          ...(e.total > 0 ? { fraction: e.done / e.total } : {}),
          data: e,
        }),
    });
    const inspection = await inspectModel({ path: r.outDir });
    return { inspection, lossy: r.lossy, note: r.lossy ? LOSSY_NOTE : 'Imported from an unquantized GGUF file; converted to float16.', warnings: r.warnings, seconds: r.seconds };
  },
});

/** The engine of a model folder: the studio's quantized format or full precision. */
function engineOf(model: LoadedModel) {
  if (!model.quantization) return { engine: createEngine(model), close: () => {} };
  const weights = openQuantizedWeights(model.dir, model.config, model.architecture);
  return { engine: createQuantizedEngine(model.architecture, weights), close: () => weights.close() };
}

const ChatStatsResult = ChatStats.extend({ text: z.string() });

export const chatKind = defineJobKind({
  params: z.object({ modelDir: z.string().min(1), messages: z.array(ChatMessage).min(1), sampling: Sampling, template: z.boolean() }),
  result: ChatStatsResult,
  run: async (p, ctx) => {
    const model = await loadModel(p.modelDir);
    const { engine, close } = engineOf(model);
    try {
      const templated = p.template && model.chatTemplate !== null;
      let promptIds: number[];
      if (templated) {
        const rendered = model.chatTemplate!(p.messages, { addGenerationPrompt: true });
        // A template that writes the BOS token itself must not get a second one.
        const writesBos = model.tokenizer.bosToken !== null && rendered.startsWith(model.tokenizer.bosToken);
        promptIds = model.tokenizer.encode(rendered, { addBos: writesBos ? false : undefined });
      } else {
        // No template (base models such as stories260k): the conversation is continued as plain text.
        promptIds = model.tokenizer.encode(p.messages.map((m) => m.content).join('\n'));
      }
      const limit = model.architecture.contextLength;
      if (promptIds.length >= limit) {
        throw new UserError(`The conversation is ${promptIds.length} tokens long but ${path.basename(model.dir)} reads at most ${limit}; start a new chat.`, 'CONTEXT_FULL');
      }
      const t0 = performance.now();
      let tokens = 0;
      const r = await generate(engine, model.tokenizer, promptIds, limit, {
        maxTokens: Math.min(p.sampling.maxTokens, limit - promptIds.length),
        temperature: p.sampling.temperature,
        topP: p.sampling.topP,
        seed: p.sampling.seed,
        cancel: ctx.cancel,
        onText: (text) => {
          tokens++;
          const seconds = (performance.now() - t0) / 1000;
          ctx.progress({ data: { type: 'token', text, tokens, tokensPerSecond: seconds > 0 ? tokens / seconds : 0 } });
        },
      });
      return {
        text: r.text,
        tokens: r.ids.length,
        promptTokens: r.promptIds.length,
        tokensPerSecond: r.decodeTokensPerSecond,
        prefillTokensPerSecond: r.prefillTokensPerSecond,
        stopReason: r.stopReason,
        templated,
      };
    } finally {
      close();
      model.close();
    }
  },
});
