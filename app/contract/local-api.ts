// What the studio shows of its loaded models and of its OpenAI-compatible local server (the "Local
// server" switch), and the chat's token count for the context meter. Pure zod: the renderer imports it.
import { z } from 'zod';

import { MAX_PATH_CHARS, MAX_SHORT_CHARS } from './limits.js';
import { LoadedModelInfo } from './loaded-models.js';
import { ChatMessage } from './runs.js';

/** The loaded models with the limits that govern them (the loaded-models panel). */
export const LoadedModels = z.object({
  /** Most recently used first. */
  models: z.array(LoadedModelInfo),
  /** Resident memory all loaded models together may use; the least recently used idle one is unloaded to make room. */
  memoryBudgetBytes: z.number(),
  /** This machine's RAM (the default budget is half of it). */
  totalMemoryBytes: z.number(),
  /** A model unused this long unloads itself; 0: never. */
  idleUnloadMinutes: z.number(),
});
export type LoadedModels = z.infer<typeof LoadedModels>;

export const ModelDirInput = z.object({ modelDir: z.string().trim().min(1, 'Choose a model.').max(MAX_PATH_CHARS) });

/** chat.count: the prompt the next chat.send would carry, counted by the model's own tokenizer and template. */
export const ChatCountInput = z.object({
  modelDir: z.string().trim().min(1, 'Choose a model to chat with.').max(MAX_PATH_CHARS),
  messages: z.array(ChatMessage).min(1, 'Write a message first.'),
  template: z.boolean().default(true),
});
export const ChatCount = z.object({
  promptTokens: z.number().int(),
  /** The most positions one conversation of this model holds (prompt and reply together). */
  contextLength: z.number().int(),
});
export type ChatCount = z.infer<typeof ChatCount>;

/** One answered request of the local server (its request log). */
export const ApiRequestLog = z.object({
  at: z.string(),
  method: z.string(),
  path: z.string(),
  status: z.number().int(),
  model: z.string().nullable(),
  ms: z.number(),
  promptTokens: z.number().int().optional(),
  completionTokens: z.number().int().optional(),
  error: z.string().optional(),
});
export type ApiRequestLog = z.infer<typeof ApiRequestLog>;

export const ApiStatus = z.object({
  running: z.boolean(),
  /** e.g. http://127.0.0.1:11435/v1 while running; null when stopped. */
  baseUrl: z.string().nullable(),
  /** The address it binds (127.0.0.1 unless the person chose another). */
  host: z.string(),
  port: z.number().int(),
  /** Listening beyond this machine: anyone on the network who has the key can use the models. */
  exposed: z.boolean(),
  /** Every request must send "Authorization: Bearer <apiKey>" (a random key per studio home). */
  apiKey: z.string(),
  /** Access-Control-Allow-Origin it sends; null: none (browsers on other origins are refused). */
  cors: z.string().nullable(),
  /** Why the last start failed (e.g. the port is in use); null when it did not. */
  error: z.string().nullable(),
  /** The latest requests, newest first. */
  log: z.array(ApiRequestLog),
});
export type ApiStatus = z.infer<typeof ApiStatus>;

/** Binding another address than loopback is a choice a person makes, never a default. */
const Host = z
  .string()
  .trim()
  .min(1)
  .max(255)
  .regex(/^[\w.:-]+$/, 'Give an IP address such as 127.0.0.1 or 0.0.0.0.');
const Port = z.number().int().min(1).max(65535);
/** The one origin browsers may call from ("*": any); it becomes a header, so nothing else goes. */
const Cors = z
  .string()
  .trim()
  .max(MAX_SHORT_CHARS)
  .regex(/^(\*|https?:\/\/[\w.-]+(:\d{1,5})?)$/, 'Give one origin such as http://localhost:3000, or * for any.');

export const ApiSetInput = z
  .object({
    enabled: z.boolean(),
    port: Port.optional(),
    host: Host.optional(),
    cors: Cors.nullable().optional(),
  })
  .strict();
export type ApiSetInput = z.input<typeof ApiSetInput>;

export { Cors as ApiCors, Host as ApiHost, Port as ApiPort };
