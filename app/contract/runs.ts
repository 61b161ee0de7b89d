// The contract's runs and chat: quantization runs in the studio home (queued, running, finished,
// interrupted), their live events, estimates before a start, and streamed chat with any model folder.
// The settings and per-layer metrics are the quantize job's own schemas (pure zod), not copies.
import { z } from 'zod';

import { EvaluationInput, EvaluationSettings, PhaseSeconds, PHASES, LayerMetrics, PerplexityRecord, QuantizeSettings, QuantizeSettingsInput } from '../domain/quantize/index.js';
import { conversationProblem, MAX_MESSAGES, MAX_PATH_CHARS, MAX_SHORT_CHARS, MAX_CONVERSATION_CHARS, RUN_NAME_HINT, SafeName } from './limits.js';

export { EvaluationInput, EvaluationSettings, QuantizeSettings, QuantizeSettingsInput, LayerMetrics };

export const RunState = z.enum(['queued', 'running', 'done', 'error', 'cancelled', 'interrupted']);
export type RunState = z.infer<typeof RunState>;

export const RunPhase = z.enum(PHASES);
export type RunPhase = z.infer<typeof RunPhase>;

/** One finished linear layer as the chart draws it: the run record's per-layer metrics. */
export const RunLayer = LayerMetrics;
export type RunLayer = z.infer<typeof RunLayer>;

/** One epoch of fine-tuning: in-block (block set) or end-to-end (block null). */
export const FineTuneEpoch = z.object({
  stage: z.enum(['block', 'e2e']),
  block: z.number().int().nullable(),
  /** The linear group tuned after (in-block: 'qkv', 'o', 'gateUp'); null end-to-end. */
  group: z.string().nullable().default(null),
  epoch: z.number().int(),
  trainLoss: z.number(),
  heldOutLoss: z.number().nullable(),
});
export type FineTuneEpoch = z.infer<typeof FineTuneEpoch>;

export const RunFailure = z.object({ message: z.string(), code: z.string() });

export const RunSummary = z.object({
  runId: z.string(),
  /** The output folder's name in runs/ (also the quantized model's name). */
  name: z.string(),
  /** The finished model folder, or the partial folder while it is not finished. */
  dir: z.string(),
  modelDir: z.string().nullable(),
  modelName: z.string().nullable(),
  /** Resolved settings; null for a CLI run known only from its checkpoint. */
  settings: QuantizeSettings.nullable(),
  state: RunState,
  phase: RunPhase.nullable(),
  error: RunFailure.nullable(),
  /** 'studio' when started here; 'cli' when found in runs/ (e.g. `quip quantize --out`). */
  origin: z.enum(['studio', 'cli']),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
  layersDone: z.number().int(),
  layersTotal: z.number().int().nullable(),
  etaSeconds: z.number().nullable(),
  bitsPerWeight: z.number().nullable(),
  /** Bytes of the weight files (.safetensors; config and tokenizer not counted): the one size every
   * face shows (app/engine/model/safetensors.ts weightFileBytes; New run's estimate predicts it). */
  bytesOnDisk: z.number().nullable(),
  perplexity: z.number().nullable(),
  perplexityFull: z.number().nullable(),
  /** What the perplexity was measured on (text, window length and count), its +- and whether the run
   * calibrated on that text (domain/quantize/evaluation.ts words it). Absent while not measured. */
  perplexityInfo: PerplexityRecord.nullable().optional(),
  /** The run's time: every session's active time, resumes included (domain runSeconds). */
  seconds: z.number().nullable(),
  meanProxyLoss: z.number().nullable(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const RunLogLine = z.object({ at: z.number(), level: z.enum(['info', 'warning', 'error']), message: z.string() });
export type RunLogLine = z.infer<typeof RunLogLine>;

export const RunDetail = RunSummary.extend({
  layers: z.array(RunLayer),
  fineTune: z.array(FineTuneEpoch),
  log: z.array(RunLogLine),
  timings: z.record(z.string(), z.number()),
});
export type RunDetail = z.infer<typeof RunDetail>;

/** A run's id is its folder name in runs/: one safe name, never a path (see limits.ts). */
export const RunId = z.object({ runId: SafeName('run id') });

export const EstimateInput = z.object({
  modelDir: z.string().trim().min(1, 'Choose a model first.').max(MAX_PATH_CHARS),
  settings: QuantizeSettingsInput,
  /** The perplexity measured after quantizing; left out: the defaults (EVAL_DEFAULTS, WikiText-2 test). */
  evaluation: EvaluationInput.optional(),
});

export const RunEstimate = z.object({
  settings: QuantizeSettings,
  threads: z.number().int(),
  tokens: z.number().int(),
  /** allocation: a target bits per weight's sensitivity pass (0 or absent with uniform bits). */
  seconds: z.object({ calibration: z.number(), hessians: z.number(), quantization: z.number(), finetune: z.number(), evaluation: z.number(), allocation: z.number().optional(), total: z.number() }),
  peakBytes: z.number(),
  /**
   * The time on this machine: every phase (calibration, quantization, fine-tuning, evaluation) and the
   * fixed costs, scaled by what finished jobs here took (machine-rates.ts), as a best guess in a range.
   * basis: the built-in rates ('default', while the first probe runs: probing), a probe, or runs.
   */
  time: z
    .object({
      seconds: z.number(),
      low: z.number(),
      high: z.number(),
      basis: z.enum(['default', 'probe', 'runs']),
      observations: z.number().int(),
      probing: z.boolean(),
      phases: PhaseSeconds,
    })
    .optional(),
  /** How the perplexity will be measured (null: not at all); absent from older studios. */
  evaluation: EvaluationSettings.nullable().optional(),
  /** Expected bytes of the weight files the run writes (.safetensors; the size every face shows). */
  outputBytes: z.number(),
  /** Linear layers that will be quantized. */
  layers: z.number().int(),
});
export type RunEstimate = z.infer<typeof RunEstimate>;

/**
 * A new run's name: one safe folder name (not ".", "..", a path, a hidden or a Windows-reserved
 * name) of letters, digits, "-", "_" and "."; not ending like an unfinished run's folder.
 */
export const RunName = SafeName('run name', {
  hint: RUN_NAME_HINT,
  extra: (name) =>
    /[^\w.-]/.test(name)
      ? `A run name can't contain "${/[^\w.-]/.exec(name)![0]}"; ${RUN_NAME_HINT}.`
      : /\.partial-[0-9a-f]+$/.test(name)
        ? `A run name can't end in ".partial-<hex>" (the studio names unfinished runs so).`
        : name.length > 120
          ? 'A run name can be at most 120 characters long.'
          : null,
});

export const StartRunInput = EstimateInput.extend({
  /** Output folder name in runs/; default "<model>-<bits>bit-<codebook>-<time>". */
  name: z.string().trim().pipe(RunName).optional(),
});

export const RevealResult = z.object({
  path: z.string(),
  /** false in the browser face: there is no file manager to open; the UI shows the path. */
  supported: z.boolean(),
});

/** What a run.event carries; every event names its run. */
export const RunEventBody = z.discriminatedUnion('type', [
  z.object({ type: z.literal('state'), run: RunSummary }),
  z.object({ type: z.literal('phase'), phase: RunPhase, message: z.string() }),
  z.object({ type: z.literal('layer'), layer: RunLayer }),
  z.object({ type: z.literal('eta'), layersDone: z.number().int(), layersTotal: z.number().int(), elapsedSeconds: z.number(), etaSeconds: z.number().nullable() }),
  z.object({ type: z.literal('log'), line: RunLogLine }),
  z.object({ type: z.literal('fineTune'), epoch: FineTuneEpoch }),
]);
export type RunEventBody = z.infer<typeof RunEventBody>;
export const RunEvent = z.object({ runId: z.string(), at: z.number(), body: RunEventBody });
export type RunEvent = z.infer<typeof RunEvent>;

// ---- chat ---------------------------------------------------------------------------------------

export const ChatRole = z.enum(['system', 'user', 'assistant']);
/** A conversation's messages together fit one conversation (limits.ts: a 1M-token context's text). */
function conversationFits(messages: ReadonlyArray<{ content: string }>, ctx: z.RefinementCtx) {
  const problem = conversationProblem(messages);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
}
export const ChatMessage = z.object({ role: ChatRole, content: z.string().max(MAX_CONVERSATION_CHARS) });
export type ChatMessage = z.infer<typeof ChatMessage>;

export const Sampling = z.object({
  temperature: z.number().min(0).max(5).default(0.7),
  topP: z.number().gt(0).max(1).default(0.95),
  maxTokens: z.number().int().min(1).max(8192).default(128),
  seed: z.number().int().min(0).max(0xffffffff).default(0),
});
export type Sampling = z.infer<typeof Sampling>;

export const ChatSendInput = z.object({
  modelDir: z.string().trim().min(1, 'Choose a model to chat with.').max(MAX_PATH_CHARS),
  messages: z.array(ChatMessage).min(1, 'Write a message first.').max(MAX_MESSAGES).superRefine(conversationFits),
  sampling: Sampling.default(Sampling.parse({})),
  /** Apply the model's chat template; false continues the last message as plain text. */
  template: z.boolean().default(true),
  /** The conversation whose KV cache the loaded model keeps (e.g. "<chatId>:<pane>"); absent: the pooled session sharing the longest prefix. */
  conversationId: z.string().regex(/^[\w:.-]+$/).max(200).optional(),
});

export const ChatStats = z.object({
  tokens: z.number().int(),
  promptTokens: z.number().int(),
  tokensPerSecond: z.number(),
  prefillTokensPerSecond: z.number(),
  /** 'stop': a stop string ended the reply (the text ends before it). */
  stopReason: z.enum(['eos', 'stop', 'max-tokens', 'context-full', 'cancelled']),
  /** Whether the model's chat template was applied (false for models without one). */
  templated: z.boolean(),
  /** Prompt tokens whose keys/values the loaded model's cache already held (0 when none or unknown). */
  reusedTokens: z.number().int().optional(),
  /** From the request reaching the loaded model to the first token (prefill included); null when none. */
  timeToFirstTokenMs: z.number().nullable().optional(),
  /** The model's context in tokens (for a context meter: promptTokens + tokens of contextLength). */
  contextLength: z.number().int().nullable().optional(),
});
export type ChatStats = z.infer<typeof ChatStats>;

export const ChatToken = z.discriminatedUnion('type', [
  z.object({ streamId: z.string(), type: z.literal('token'), text: z.string(), tokens: z.number().int(), tokensPerSecond: z.number() }),
  z.object({ streamId: z.string(), type: z.literal('done'), text: z.string(), stats: ChatStats }),
  z.object({ streamId: z.string(), type: z.literal('error'), error: RunFailure }),
]);
export type ChatToken = z.infer<typeof ChatToken>;

export const StreamId = z.object({ streamId: z.string().min(1).max(MAX_SHORT_CHARS) });

/** A system prompt is instructions, not a document: 64 Ki characters is far more than any needs. */
export const MAX_SYSTEM_PROMPT_CHARS = 64 * 1024;

export const SavedMessage = ChatMessage.extend({ stats: ChatStats.nullable().optional() });
export const ChatPane = z.object({
  modelDir: z.string().max(MAX_PATH_CHARS),
  modelName: z.string().max(MAX_SHORT_CHARS),
  messages: z.array(SavedMessage).max(MAX_MESSAGES).superRefine(conversationFits),
});
/** A saved chat's id is its file name in chats/ (<id>.json). */
const ChatIdString = SafeName('chat id', {
  hint: 'use letters, digits, "-" and "_"',
  extra: (id) => (/^[\w-]+$/.test(id) ? null : `A chat id can only use letters, digits, "-" and "_".`),
});
export const ChatRecord = z.object({
  chatId: ChatIdString,
  title: z.string().max(MAX_SHORT_CHARS),
  panes: z.array(ChatPane).min(1).max(2),
  sampling: Sampling,
  /** Sent first, as the system message, with every turn of this chat ('' : none). Chats saved before it have none. */
  systemPrompt: z.string().max(MAX_SYSTEM_PROMPT_CHARS).default(''),
  updatedAt: z.string().max(MAX_SHORT_CHARS),
});
export type ChatRecord = z.infer<typeof ChatRecord>;
export const ChatId = z.object({ chatId: ChatIdString });
