// Loaded models: what the studio sends a model's long-lived job process (the `modelHost` job kind,
// through the job protocol's `input` message) and the events it answers with (as progress data),
// each tagged with the request id; plus what the studio shows of a loaded model.
import { z } from 'zod';

import { ChatMessage } from './runs.js';

/** One generation: the whole conversation (or a plain prompt) and how to sample. */
export const HostGenerate = z
  .object({
    type: z.literal('generate'),
    requestId: z.string().min(1).max(200),
    /** The conversation whose KV cache to keep; null: the pooled session sharing the longest prefix. */
    conversationId: z.string().min(1).max(200).nullable().default(null),
    messages: z.array(ChatMessage).min(1).optional(),
    /** A plain prompt, continued as it is (no template). */
    prompt: z.string().optional(),
    template: z.boolean().default(true),
    temperature: z.number().min(0).max(5).default(0.7),
    topP: z.number().gt(0).max(1).default(0.95),
    maxTokens: z.number().int().min(1).max(1 << 20).default(128),
    seed: z.number().int().min(0).max(0xffffffff).default(0),
    stop: z.array(z.string().min(1)).max(16).default([]),
  })
  .refine((r) => (r.messages === undefined) !== (r.prompt === undefined), { message: 'give either messages or a prompt' });
export type HostGenerate = z.output<typeof HostGenerate>;
export type HostGenerateInput = z.input<typeof HostGenerate>;

export const HostInput = z.union([
  HostGenerate,
  /** Stop a request: its generation ends (stopReason 'cancelled') within a decode step. */
  z.object({ type: z.literal('cancel'), requestId: z.string() }),
  /** The prompt's token count against the context, without generating. */
  z.object({
    type: z.literal('count'),
    requestId: z.string(),
    messages: z.array(ChatMessage).min(1).optional(),
    prompt: z.string().optional(),
    template: z.boolean().default(true),
  }),
  /** Forget a conversation's cache. */
  z.object({ type: z.literal('drop'), conversationId: z.string() }),
  /** The host's resident memory and kept sessions (answered at once, even while generating). */
  z.object({ type: z.literal('memory'), requestId: z.string() }),
]);
export type HostInput = z.input<typeof HostInput>;

export const HostStopReason = z.enum(['eos', 'stop', 'max-tokens', 'context-full', 'cancelled']);

export const HostStats = z.object({
  /** Generated tokens. */
  tokens: z.number().int(),
  promptTokens: z.number().int(),
  /** Prompt tokens taken from the cache (the prefix shared with the previous turn). */
  reusedTokens: z.number().int(),
  timeToFirstTokenMs: z.number().nullable(),
  /** Decode speed. */
  tokensPerSecond: z.number(),
  prefillTokensPerSecond: z.number(),
  stopReason: HostStopReason,
  templated: z.boolean(),
  contextLength: z.number().int(),
});
export type HostStats = z.infer<typeof HostStats>;

export const HostEvent = z.discriminatedUnion('type', [
  /** The model is loaded and serving. */
  z.object({ type: z.literal('ready'), contextLength: z.number().int(), templated: z.boolean(), loadSeconds: z.number(), rssBytes: z.number().nullable() }),
  z.object({ type: z.literal('token'), requestId: z.string(), text: z.string(), tokens: z.number().int() }),
  z.object({ type: z.literal('done'), requestId: z.string(), text: z.string(), stats: HostStats }),
  z.object({ type: z.literal('error'), requestId: z.string(), error: z.object({ message: z.string(), code: z.string() }) }),
  z.object({ type: z.literal('count'), requestId: z.string(), promptTokens: z.number().int(), contextLength: z.number().int() }),
  z.object({
    type: z.literal('memory'),
    requestId: z.string(),
    rssBytes: z.number().nullable(),
    kvBytes: z.number(),
    sessions: z.number().int(),
  }),
]);
export type HostEvent = z.infer<typeof HostEvent>;

/** A loaded model as the studio shows it (the loaded-models panel). */
export const LoadedModelInfo = z.object({
  modelDir: z.string(),
  name: z.string(),
  state: z.enum(['loading', 'ready']),
  pid: z.number().int().nullable(),
  /** Resident memory of its process; null where it cannot be read. */
  residentBytes: z.number().nullable(),
  contextLength: z.number().int().nullable(),
  loadedAt: z.string(),
  lastUsedAt: z.string(),
  /** Requests waiting behind the one being served. */
  queued: z.number().int(),
  busy: z.boolean(),
});
export type LoadedModelInfo = z.infer<typeof LoadedModelInfo>;
